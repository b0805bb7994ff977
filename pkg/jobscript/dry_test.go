package jobscript

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// A dry render (Check) skips the built-in templates when builtinSafe says they cannot
// fail. That holds while the templates fail only where builtinSafe looks: this test
// type-checks every built-in template against Data and fails on anything else that could
// fail at execution for some config: a field read through a map, an interface or a
// pointer that may be nil, a function or method not known to be total, an argument of
// the wrong type, index on anything but a server's nodes, or a template construct it
// does not know. When it fails, extend builtinSafe (and this test) to the new case.
func TestBuiltinTemplatesFailOnlyWhereBuiltinSafeLooks(t *testing.T) {
	checked := 0
	for _, tmpl := range builtinTmpl.Templates() {
		if tmpl.Tree == nil || tmpl.Name() == "builtin" {
			continue
		}
		checked++
		for _, e := range checkTemplate(tmpl.Name(), tmpl.Tree) {
			t.Error(e)
		}
	}
	if checked < 7 {
		t.Errorf("checked %d built-in templates, want the 7 of templates/", checked)
	}
	// The check itself refuses what could fail for some configs only.
	for _, src := range []string{
		`{{.Config.WorkerConfig.Gen.SpeculativeConfig.DecodingType}}`, // a nil pointer
		`{{.Config.Benchmark.EnvVar.A}}`,                              // a map key
		`{{range .Servers}}{{index .Nodes 1}}{{end}}`,                 // out of range
		`{{index .Concurrencies 0}}`,
		`{{envprefix .StepEnv}}`, // a list builtinSafe does not try
		`{{add .RunID 1}}`,       // an argument of the wrong type
		`{{shq .Test}}`,          // fmt prints unexported fields
		`{{printf "%s" .RunID}}`, // a function not known to be total
		`{{.Test.Validate}}`,     // a method not known to be total
		`{{template "x" .}}`,
		`{{with .Config}}{{.Environment.ModelPath}}{{end}}`, // fine: reads through Config
	} {
		tmpl, err := template.New("t").Funcs(Funcs()).Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		errs := checkTemplate("t", tmpl.Tree)
		if fine := strings.HasPrefix(src, "{{with .Config}}"); fine != (len(errs) == 0) {
			t.Errorf("%s: check says %q", src, errs)
		}
	}
}

// checkTemplate returns what in a template could fail at execution other than where
// builtinSafe looks.
func checkTemplate(name string, tree *parse.Tree) []string {
	c := &tmplChecker{name: name, funcs: map[string]reflect.Type{}}
	for name, f := range Funcs() {
		c.funcs[name] = reflect.TypeOf(f)
	}
	data := reflect.TypeFor[*Data]()
	c.list(tree.Root, scope{dot: data, vars: map[string]reflect.Type{"$": data}})
	return c.errs
}

// neverNil are the pointers a template may read through: newData sets them.
var neverNil = []reflect.Type{reflect.TypeFor[*Data](), reflect.TypeFor[*config.Test](), reflect.TypeFor[*config.Config]()}

// totalMethods and totalFuncs return a value for every argument, without an error or a
// panic (text/template turns a panic into an error). checkedFuncs return an error only
// for what builtinSafe looks at: a NUL byte (shq, shqjoin) or an env word that
// envPrefix and exportNames refuse (only ever given the lists envLists names).
var (
	totalMethods = []string{"Host", "PortOf", "TaskFileName"}
	totalFuncs   = []string{"join", "nodes", "add", "mul", "not", "and", "or", "len", "eq", "ne"}
	checkedFuncs = []string{"shq", "shqjoin", "envprefix", "exportnames"}
	envLists     = map[reflect.Type][]string{
		reflect.TypeFor[Data]():         {"ServerEnv", "ClientEnv"},
		reflect.TypeFor[Server]():       {"Env"},
		reflect.TypeFor[AccuracyTask](): {"Env"},
	}
)

// printable are the kinds shq is checked for: fmt prints nothing of them but their value.
var printable = []reflect.Kind{reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16,
	reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32,
	reflect.Uint64, reflect.Float32, reflect.Float64}

type scope struct {
	dot  reflect.Type
	vars map[string]reflect.Type
}

func (s scope) with(dot reflect.Type) scope {
	return scope{dot: dot, vars: maps.Clone(s.vars)}
}

type tmplChecker struct {
	name  string
	funcs map[string]reflect.Type
	errs  []string
}

func (c *tmplChecker) fail(n parse.Node, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf("%s: %s: %s", c.name, n, fmt.Sprintf(format, args...)))
}

func (c *tmplChecker) list(l *parse.ListNode, s scope) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		c.node(n, s)
	}
}

func (c *tmplChecker) node(n parse.Node, s scope) {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode:
	case *parse.ActionNode:
		typ := c.pipe(n.Pipe, s)
		for _, v := range n.Pipe.Decl {
			s.vars[v.Ident[0]] = typ
		}
	case *parse.IfNode:
		c.pipe(n.Pipe, s)
		c.list(n.List, s.with(s.dot))
		c.list(n.ElseList, s.with(s.dot))
	case *parse.WithNode:
		typ := c.pipe(n.Pipe, s)
		c.list(n.List, s.with(typ))
		c.list(n.ElseList, s.with(s.dot))
	case *parse.RangeNode:
		typ := c.pipe(n.Pipe, s)
		if typ == nil || typ.Kind() != reflect.Slice && typ.Kind() != reflect.Array {
			c.fail(n, "range over %v, not a list", typ)
			return
		}
		body := s.with(typ.Elem())
		switch len(n.Pipe.Decl) {
		case 1:
			body.vars[n.Pipe.Decl[0].Ident[0]] = typ.Elem()
		case 2:
			body.vars[n.Pipe.Decl[0].Ident[0]] = reflect.TypeFor[int]()
			body.vars[n.Pipe.Decl[1].Ident[0]] = typ.Elem()
		}
		c.list(n.List, body)
		c.list(n.ElseList, s.with(s.dot))
	default:
		c.fail(n, "construct %T is not checked", n)
	}
}

// pipe returns the type a pipeline yields.
func (c *tmplChecker) pipe(p *parse.PipeNode, s scope) reflect.Type {
	var piped reflect.Type
	for _, cmd := range p.Cmds {
		piped = c.command(cmd, s, piped)
		if piped == nil {
			return nil
		}
	}
	return piped
}

// command returns the type a command yields, piped being the previous command's.
func (c *tmplChecker) command(cmd *parse.CommandNode, s scope, piped reflect.Type) reflect.Type {
	var args []reflect.Type
	for _, a := range cmd.Args[1:] {
		args = append(args, c.operand(a, s))
	}
	if piped != nil {
		args = append(args, piped)
	}
	if slices.Contains(args, nil) {
		return nil
	}
	switch first := cmd.Args[0].(type) {
	case *parse.IdentifierNode:
		return c.function(cmd, first.Ident, args)
	case *parse.FieldNode:
		return c.chain(cmd, s.dot, first.Ident, args)
	case *parse.VariableNode:
		v, ok := s.vars[first.Ident[0]]
		if !ok {
			c.fail(cmd, "unknown variable %s", first.Ident[0])
			return nil
		}
		return c.chain(cmd, v, first.Ident[1:], args)
	}
	if len(args) > 0 {
		c.fail(cmd, "arguments to a value")
		return nil
	}
	return c.operand(cmd.Args[0], s)
}

// operand returns the type of a command's argument.
func (c *tmplChecker) operand(n parse.Node, s scope) reflect.Type {
	switch n := n.(type) {
	case *parse.DotNode:
		return s.dot
	case *parse.StringNode:
		return reflect.TypeFor[string]()
	case *parse.BoolNode:
		return reflect.TypeFor[bool]()
	case *parse.NumberNode:
		if n.IsInt {
			return reflect.TypeFor[int]()
		}
	case *parse.PipeNode:
		return c.pipe(n, s)
	case *parse.FieldNode:
		return c.chain(n, s.dot, n.Ident, nil)
	case *parse.VariableNode:
		if v, ok := s.vars[n.Ident[0]]; ok {
			return c.chain(n, v, n.Ident[1:], nil)
		}
	}
	c.fail(n, "operand %T is not checked", n)
	return nil
}

// chain follows fields and methods from typ; args go to the last one.
func (c *tmplChecker) chain(n parse.Node, typ reflect.Type, idents []string, args []reflect.Type) reflect.Type {
	for i, name := range idents {
		last := i == len(idents)-1
		if typ.Kind() == reflect.Pointer && !slices.Contains(neverNil, typ) {
			c.fail(n, "%s read through %v, which may be nil", name, typ)
			return nil
		}
		if typ.Kind() != reflect.Pointer && typ.Kind() != reflect.Struct {
			c.fail(n, "%s read from %v (a map or interface may lack it)", name, typ)
			return nil
		}
		recv := typ
		if typ.Kind() == reflect.Struct {
			recv = reflect.PointerTo(typ)
		}
		if m, ok := recv.MethodByName(name); ok {
			if !slices.Contains(totalMethods, name) || m.Type.NumOut() != 1 {
				c.fail(n, "method %s is not known to return a value for every argument", name)
				return nil
			}
			var margs []reflect.Type
			if last {
				margs = args
			}
			if !assignable(m.Type, 1, margs) {
				c.fail(n, "method %s called with %v", name, margs)
				return nil
			}
			typ = m.Type.Out(0)
			continue
		}
		st := typ
		if st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		f, ok := st.FieldByName(name)
		if !ok || !f.IsExported() {
			c.fail(n, "no field %s in %v", name, st)
			return nil
		}
		if last && len(args) > 0 {
			c.fail(n, "arguments to field %s", name)
			return nil
		}
		typ = f.Type
	}
	return typ
}

// function checks a call of a template function and returns its result's type.
func (c *tmplChecker) function(cmd *parse.CommandNode, name string, args []reflect.Type) reflect.Type {
	switch {
	case name == "index":
		if cmd.String() != "index .Nodes 0" || args[0] != reflect.TypeFor[[]int]() {
			c.fail(cmd, "index is checked only as index .Nodes 0 on a server")
			return nil
		}
		return reflect.TypeFor[int]()
	case name == "len":
		if len(args) != 1 || !slices.Contains([]reflect.Kind{reflect.Slice, reflect.String, reflect.Array}, args[0].Kind()) {
			c.fail(cmd, "len of %v", args)
			return nil
		}
		return reflect.TypeFor[int]()
	case name == "eq" || name == "ne":
		if len(args) != 2 || args[0] != args[1] || args[0].Kind() == reflect.Interface || !args[0].Comparable() {
			c.fail(cmd, "%s of %v", name, args)
			return nil
		}
		return reflect.TypeFor[bool]()
	case name == "not" || name == "and" || name == "or":
		for _, a := range args {
			if a.Kind() != reflect.Bool {
				c.fail(cmd, "%s of %v", name, args)
				return nil
			}
		}
		return reflect.TypeFor[bool]()
	}
	f, ok := c.funcs[name]
	if !ok || !slices.Contains(totalFuncs, name) && !slices.Contains(checkedFuncs, name) {
		c.fail(cmd, "function %s is not known to fail only where builtinSafe looks", name)
		return nil
	}
	if !assignable(f, 0, args) {
		c.fail(cmd, "%s called with %v", name, args)
		return nil
	}
	if f.NumOut() == 2 && !slices.Contains(checkedFuncs, name) {
		c.fail(cmd, "%s returns an error builtinSafe does not look for", name)
		return nil
	}
	if name == "envprefix" || name == "exportnames" {
		c.envArg(cmd)
	}
	if name == "shq" && (!slices.Contains(printable, args[0].Kind()) || args[0].Implements(reflect.TypeFor[fmt.Stringer]())) {
		// fmt would print a struct's unexported fields, which builtinSafe does not walk,
		// and shq quotes what a String method returns.
		c.fail(cmd, "shq of %v, not a plain string, number or bool", args[0])
		return nil
	}
	return f.Out(0)
}

// envArg checks that envprefix and exportnames get one of the lists builtinSafe tries.
func (c *tmplChecker) envArg(cmd *parse.CommandNode) {
	var idents []string
	switch a := cmd.Args[1].(type) {
	case *parse.FieldNode:
		idents = a.Ident
	case *parse.VariableNode:
		idents = a.Ident[1:]
	}
	if len(idents) != 1 {
		c.fail(cmd, "an env list other than a field of the dot or $")
		return
	}
	for _, names := range envLists {
		if slices.Contains(names, idents[0]) {
			return
		}
	}
	c.fail(cmd, "%s is not a list builtinSafe tries", idents[0])
}

// assignable reports whether args fit ft's parameters from the skip-th on.
func assignable(ft reflect.Type, skip int, args []reflect.Type) bool {
	if ft.NumIn()-skip != len(args) || ft.IsVariadic() {
		return false
	}
	for i, a := range args {
		if !a.AssignableTo(ft.In(skip + i)) {
			return false
		}
	}
	return true
}

// The fast path is taken for the golden configs, and a value no script may carry turns
// it off: the dry render then reports exactly the error Render does.
func TestDryRenderReportsWhatRenderDoes(t *testing.T) {
	for _, path := range goldenConfigs {
		base := loadTest(t, path)
		for _, tt := range []struct {
			name   string
			mutate func(c *config.Config)
			safe   bool
		}{
			{"as written", func(c *config.Config) {}, true},
			{"NUL in model path", func(c *config.Config) { c.Environment.ModelPath = "/m\x00" }, false},
			{"NUL in wheel repo", func(c *config.Config) {
				c.Environment.BuildWheel, c.Environment.TrtllmRepo = true, "/r\x00"
			}, false},
			{"NUL in client env", func(c *config.Config) { c.Benchmark.EnvVar = map[string]string{"A": "x\x00"} }, false},
			{"NUL in server env", func(c *config.Config) { c.Environment.ServerEnvVar = "A=\x00" }, false},
			{"NUL in container image", func(c *config.Config) { c.Environment.ContainerImage = "img\x00" }, false},
			{"NUL in a pass-through option", func(c *config.Config) {
				c.WorkerConfig.Gen.Extra = map[string]any{"x": []any{"a\x00"}}
			}, false},
		} {
			t.Run(path[strings.LastIndexByte(path, '/')+1:]+"/"+tt.name, func(t *testing.T) {
				tc := *base
				tc.Config = cloneConfig(t, base.Config)
				tt.mutate(&tc.Config)
				o := goldenOptions(&tc)
				_, want := Render(&tc, o)
				_, got := render(&tc, o, true)
				if errString(got) != errString(want) {
					t.Errorf("dry render: %v\nRender:     %v", got, want)
				}
				req, err := request(&tc, o)
				if err != nil {
					t.Fatal(err)
				}
				d, err := newData(&tc, o, req)
				if err != nil {
					t.Fatal(err)
				}
				if builtinSafe(d) != tt.safe {
					t.Errorf("builtinSafe = %v, want %v", !tt.safe, tt.safe)
				}
			})
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// refusing is a pass-through value yaml.v3 cannot encode.
type refusing struct{}

func (refusing) MarshalYAML() (any, error) { return nil, errors.New("refused") }

// A dry render skips writing a worker's YAML only when workerSafe says it cannot fail;
// otherwise it reports what Render does.
func TestDryRenderWorkerConfigs(t *testing.T) {
	base := loadTest(t, goldenConfigs[0])
	for _, tt := range []struct {
		name  string
		extra map[string]any
		safe  bool
	}{
		{"decoded values", map[string]any{"a": []any{"x\x00\xff", 1, int64(1 << 40), uint64(1 << 63), math.NaN(), nil, true},
			"b": map[string]any{"c": math.Inf(1), "d": map[string]any{}}}, true},
		{"a typed field's key", map[string]any{"max_batch_size": 4}, false},
		{"a value the decoder never makes", map[string]any{"a": []string{"x"}}, false},
		{"a value yaml.v3 refuses", map[string]any{"a": refusing{}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := *base
			tc.Config = cloneConfig(t, base.Config)
			tc.Config.WorkerConfig.Gen.Extra = tt.extra
			if got := workerSafe(&tc.Config.WorkerConfig.Gen); got != tt.safe {
				t.Errorf("workerSafe = %v, want %v", got, tt.safe)
			}
			if tt.extra["max_batch_size"] != nil {
				return // yaml.v3 panics on it, dry or not
			}
			o := goldenOptions(&tc)
			_, want := Render(&tc, o)
			_, got := render(&tc, o, true)
			if errString(got) != errString(want) {
				t.Errorf("dry render: %v\nRender:     %v", got, want)
			}
			if (want == nil) != (tt.name != "a value yaml.v3 refuses") {
				t.Errorf("Render: %v", want)
			}
		})
	}
	spec := base.Config.WorkerConfig.Gen
	spec.SpeculativeConfig = &config.SpeculativeConfig{Extra: map[string]any{"decoding_type": "MTP"}}
	if workerSafe(&spec) {
		t.Error("workerSafe accepts speculative_config's typed key among its pass-through options")
	}
}
