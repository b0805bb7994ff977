package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Limits that keep any input, however hostile, cheap to reject.
const (
	maxFileSize   = 4 << 20 // bytes
	maxNodeVisits = 200_000 // nodes walked, counting every alias expansion
	maxDepth      = 64
	// maxTokens bounds the YAML nodes a file may make (and so the memory its parse
	// takes): real configs have a few hundred.
	maxTokens = 100_000
)

// Pos is a line and column in a YAML file, both counted from 1.
type Pos struct{ Line, Col int }

// positions records where each field path was written in the file.
type positions struct {
	value map[string]Pos // the value node of a field path
	key   map[string]Pos // the key node of a field path
}

// posOf returns the position of a field path, or of its closest ancestor that was
// written (a missing field points at its section's key).
func (p *positions) posOf(path string) Pos {
	if p == nil {
		return Pos{}
	}
	if pos, ok := p.value[path]; ok {
		return pos
	}
	for path != "" {
		path = parentPath(path)
		if pos, ok := p.key[path]; ok && path != "" {
			return pos
		}
		if pos, ok := p.value[path]; ok {
			return pos
		}
	}
	return Pos{1, 1}
}

// keyPosOf returns the position of a field's key, falling back to posOf.
func (p *positions) keyPosOf(path string) Pos {
	if p != nil {
		if pos, ok := p.key[path]; ok {
			return pos
		}
	}
	return p.posOf(path)
}

// parentPath drops the last element of a field path ("a.b[2]" -> "a.b", "a.b" -> "a").
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// decoder walks a yaml.Node tree into the Config structs, strictly, collecting every
// problem with its position instead of stopping at the first.
type decoder struct {
	file     string
	problems []Problem
	pos      positions
	visits   int
	tooBig   bool
}

func (d *decoder) problem(n *yaml.Node, field, format string, args ...any) {
	p := Problem{File: d.file, Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.problems = append(d.problems, p)
}

// step counts one node visit and reports whether the walk may go on.
func (d *decoder) step(n *yaml.Node, depth int) bool {
	d.visits++
	if d.tooBig {
		return false
	}
	if d.visits > maxNodeVisits || depth > maxDepth {
		d.tooBig = true
		d.problem(n, "", "document is too large or too deeply nested (aliases expand to more than %d nodes or %d levels)", maxNodeVisits, maxDepth)
		return false
	}
	return true
}

// deref follows aliases to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

type pair struct{ key, val *yaml.Node }

// pairs returns a mapping's key/value pairs with merge keys (<<) resolved: explicit keys
// win over merged ones. Duplicate explicit keys are problems.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []pair {
	var out []pair
	seen := map[string]bool{}
	var merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == "") {
			merged = append(merged, d.mergeSources(v, path, depth+1)...)
			continue
		}
		key := d.keyString(k, path)
		if key == "" && k.Kind != yaml.ScalarNode {
			continue
		}
		if seen[key] {
			d.problem(k, joinPath(path, key), "duplicate key %q", key)
			continue
		}
		seen[key] = true
		out = append(out, pair{k, v})
	}
	for _, p := range merged {
		key := p.key.Value
		if !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	return out
}

// mergeSources returns the pairs a merge key's value brings in.
func (d *decoder) mergeSources(v *yaml.Node, path string, depth int) []pair {
	if !d.step(v, depth) {
		return nil
	}
	v = deref(v)
	if v == nil {
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path, depth)
	case yaml.SequenceNode:
		var out []pair
		for _, e := range v.Content {
			out = append(out, d.mergeSources(e, path, depth+1)...)
		}
		return out
	}
	d.problem(v, path, "a merge key (<<) needs a mapping or a list of mappings")
	return nil
}

// keyString returns a mapping key as text; keys must be scalars.
func (d *decoder) keyString(k *yaml.Node, path string) string {
	k = deref(k)
	if k == nil || k.Kind != yaml.ScalarNode {
		d.problem(k, path, "mapping keys must be plain strings")
		return ""
	}
	return k.Value
}

// structInfo describes one struct type's YAML keys.
type structInfo struct {
	fields map[string]int // yaml key -> field index
	keys   []string       // known keys in declaration order
	extra  int            // index of the inline map[string]any, or -1
}

var structInfos sync.Map // reflect.Type -> *structInfo

func infoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	si := &structInfo{fields: map[string]int{}, extra: -1}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			si.extra = i
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		si.fields[name] = i
		si.keys = append(si.keys, name)
	}
	structInfos.Store(t, si)
	return si
}

var (
	concurrenciesType = reflect.TypeFor[Concurrencies]()
	anyMapType        = reflect.TypeFor[map[string]any]()
	taskMapType       = reflect.TypeFor[map[string]AccuracyTask]()
	envMapType        = reflect.TypeFor[EnvMap]()
)

// decode fills v from n. path is the field path used in problems.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, depth int) {
	if !d.step(n, depth) {
		return
	}
	n = deref(n)
	if n == nil {
		return
	}
	d.pos.value[path] = Pos{n.Line, n.Column}
	if kp, ok := d.pos.key[path]; ok && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode) {
		// A problem with a whole section or list points at its key.
		d.pos.value[path] = kp
	}
	if isNull(n) {
		return // an empty value leaves the field unset
	}
	if v.Type() == concurrenciesType {
		list, msg, bad := parseConcurrencies(n)
		if n.Kind == yaml.SequenceNode {
			for i, e := range n.Content {
				d.pos.value[fmt.Sprintf("%s[%d]", path, i)] = Pos{e.Line, e.Column}
			}
		}
		if msg != "" {
			d.problem(bad, path, "%s", msg)
			return
		}
		v.Set(reflect.ValueOf(list))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, depth)
	case reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case reflect.Map:
		if v.Type() == taskMapType && n.Kind == yaml.ScalarNode {
			d.decodeTaskNames(n, v)
			return
		}
		if v.Type() == envMapType && n.Kind == yaml.ScalarNode {
			d.decodeEnvWords(n, v, path)
			return
		}
		d.decodeMap(n, v, path, depth)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.problem(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			d.decode(e, s.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		v.Set(s)
	case reflect.Interface:
		if x := d.toAny(n, path, depth); x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	si := infoOf(v.Type())
	for _, p := range d.pairs(n, path, depth) {
		key := p.key.Value
		fp := joinPath(path, key)
		d.pos.key[fp] = Pos{p.key.Line, p.key.Column}
		if i, ok := si.fields[key]; ok {
			d.decode(p.val, v.Field(i), fp, depth+1)
			continue
		}
		if si.extra >= 0 {
			m := v.Field(si.extra)
			if m.IsNil() {
				m.Set(reflect.MakeMap(anyMapType))
			}
			d.pos.value[fp] = Pos{p.val.Line, p.val.Column}
			x := reflect.New(anyMapType.Elem()).Elem()
			if a := d.toAny(p.val, fp, depth+1); a != nil {
				x.Set(reflect.ValueOf(a))
			}
			m.SetMapIndex(reflect.ValueOf(key), x)
			continue
		}
		where := "in " + path
		if path == "" {
			where = "at the top level"
		}
		if s := closest(key, si.keys); s != "" {
			d.problem(p.key, fp, "unknown key %q %s: did you mean %q?", key, where, s)
		} else {
			d.problem(p.key, fp, "unknown key %q %s (known keys: %s)", key, where, strings.Join(si.keys, ", "))
		}
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "expected a mapping of keys to values, got %s", describe(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	et := v.Type().Elem()
	for _, p := range d.pairs(n, path, depth) {
		key := p.key.Value
		fp := joinPath(path, key)
		d.pos.key[fp] = Pos{p.key.Line, p.key.Column}
		e := reflect.New(et).Elem()
		d.decode(p.val, e, fp, depth+1)
		v.SetMapIndex(reflect.ValueOf(key), e)
	}
}

// decodeTaskNames reads accuracy.tasks written as names ("gsm8k" or "gsm8k,mmlu").
func (d *decoder) decodeTaskNames(n *yaml.Node, v reflect.Value) {
	m := map[string]AccuracyTask{}
	for _, name := range strings.FieldsFunc(n.Value, func(r rune) bool { return r == ',' || r == ' ' }) {
		m[name] = AccuracyTask{}
	}
	v.Set(reflect.ValueOf(m))
}

// decodeEnvWords reads an environment mapping written the older way, as one string
// of NAME=VALUE words separated by white space.
func (d *decoder) decodeEnvWords(n *yaml.Node, v reflect.Value, path string) {
	m := EnvMap{}
	for _, w := range strings.Fields(n.Value) {
		k, val, ok := strings.Cut(w, "=")
		if !ok || !envAssignmentName.MatchString(k) {
			d.problem(n, path, "%q is not a NAME=value assignment (write a mapping of names to values, or \"K=V K=V\")", w)
			return
		}
		m[k] = val
	}
	v.Set(reflect.ValueOf(m))
}

// decodeScalar fills a string, bool, int or float field.
func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, path, "expected %s, got %s", kindName(v.Kind()), describe(n))
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		if tag == "!!bool" {
			d.problem(n, path, "expected a string, got the boolean %s (quote it if you mean the text)", n.Value)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if b, ok := parseBool(n); ok {
			v.SetBool(b)
			return
		}
		d.problem(n, path, "expected true or false, got %s", describe(n))
	case reflect.Int, reflect.Int64, reflect.Int32:
		if tag != "!!int" {
			d.problem(n, path, "expected an integer, got %s", describe(n))
			return
		}
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.problem(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64, reflect.Float32:
		f, ok := parseFloat(n)
		if !ok {
			d.problem(n, path, "expected a finite number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.problem(n, path, "unsupported field type %s", v.Type())
	}
}

func parseBool(n *yaml.Node) (bool, bool) {
	switch n.ShortTag() {
	case "!!bool":
		return strings.EqualFold(n.Value, "true"), true
	case "!!str":
		if n.Style != 0 {
			return false, false // quoted text is never a boolean
		}
		// YAML 1.1 spellings, as the seed's PyYAML reads them.
		switch strings.ToLower(n.Value) {
		case "yes", "on", "y":
			return true, true
		case "no", "off", "n":
			return false, true
		}
	}
	return false, false
}

func parseFloat(n *yaml.Node) (float64, bool) {
	switch n.ShortTag() {
	case "!!int":
		i, err := strconv.ParseInt(n.Value, 0, 64)
		return float64(i), err == nil
	case "!!float":
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// toAny converts a node to plain Go values for options carried through untouched.
func (d *decoder) toAny(n *yaml.Node, path string, depth int) any {
	if !d.step(n, depth) {
		return nil
	}
	n = deref(n)
	if n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for _, p := range d.pairs(n, path, depth) {
			fp := joinPath(path, p.key.Value)
			m[p.key.Value] = d.toAny(p.val, fp, depth+1)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, e := range n.Content {
			s[i] = d.toAny(e, fmt.Sprintf("%s[%d]", path, i), depth+1)
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			return strings.EqualFold(n.Value, "true")
		case "!!int":
			if i, err := strconv.ParseInt(n.Value, 0, 64); err == nil {
				if i == int64(int(i)) {
					return int(i)
				}
				return i
			}
			if u, err := strconv.ParseUint(n.Value, 0, 64); err == nil {
				return u
			}
		case "!!float":
			if f, ok := parseFloat(n); ok {
				return f
			}
			var f float64
			if n.Decode(&f) == nil { // .inf, .nan
				return f
			}
		}
		return n.Value
	}
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		switch n.ShortTag() {
		case "!!str":
			return fmt.Sprintf("the string %q", v)
		case "!!int":
			return "the integer " + v
		case "!!float":
			return "the number " + v
		case "!!bool":
			return "the boolean " + v
		case "!!null":
			return "nothing"
		}
		return fmt.Sprintf("%q", v)
	}
	return "an alias"
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return k.String()
}

// parseConcurrencies reads "1 2 4", "1,2,4", [1, 2, 4] or a single 8. On failure it
// returns a message and the offending node.
func parseConcurrencies(n *yaml.Node) (Concurrencies, string, *yaml.Node) {
	n = deref(n)
	switch n.Kind {
	case yaml.ScalarNode:
		fields := strings.FieldsFunc(n.Value, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
		list := make(Concurrencies, 0, len(fields))
		for _, f := range fields {
			c, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Sprintf("concurrency %q is not an integer (write \"1 2 4\" or [1, 2, 4])", f), n
			}
			list = append(list, c)
		}
		return list, "", nil
	case yaml.SequenceNode:
		list := make(Concurrencies, 0, len(n.Content))
		for _, e := range n.Content {
			e = deref(e)
			if e == nil || e.Kind != yaml.ScalarNode || e.ShortTag() != "!!int" {
				return nil, fmt.Sprintf("concurrency list entries must be integers, got %s", describe(e)), e
			}
			c, err := strconv.Atoi(e.Value)
			if err != nil {
				return nil, fmt.Sprintf("concurrency %s is out of range", e.Value), e
			}
			list = append(list, c)
		}
		return list, "", nil
	}
	return nil, "expected a list of integers such as \"1 2 4\" or [1, 2, 4], got " + describe(n), n
}

// UnmarshalYAML accepts "1 2 4", "1,2,4", [1, 2, 4] or a single integer.
func (c *Concurrencies) UnmarshalYAML(n *yaml.Node) error {
	list, msg, _ := parseConcurrencies(n)
	if msg != "" {
		return errors.New(msg)
	}
	*c = list
	return nil
}

// MarshalYAML writes the list in flow style, [1, 2, 4].
func (c Concurrencies) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range c {
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)})
	}
	return n, nil
}

// parserErrors are the messages of yaml.v3's parser (not its scanner), whose "line N"
// counts from 0 where the scanner's counts from 1.
var parserErrors = map[string]bool{
	"did not find expected ',' or ']'": true, "did not find expected ',' or '}'": true,
	"did not find expected '-' indicator": true, "did not find expected <document start>": true,
	"did not find expected <stream-start>": true, "did not find expected key": true,
	"did not find expected node content": true, "found duplicate %TAG directive": true,
	"found duplicate %YAML directive": true, "found incompatible YAML document": true,
	"found undefined tag handle": true,
}

var (
	yamlLineRe = regexp.MustCompile(`line (\d+)`)
	anchorRe   = regexp.MustCompile(`unknown anchor '([^']*)'`)
)

// decodeConfig parses one YAML document into a Config, strictly. fatal is true when
// the file could not be read as a mapping of sections at all, so that field rules
// would only add noise.
func decodeConfig(file string, data []byte) (cfg Config, pos *positions, problems []Problem, fatal bool) {
	hint := min(bytes.Count(data, []byte("\n"))+1, 4096)
	d := &decoder{file: file, pos: positions{value: make(map[string]Pos, hint), key: make(map[string]Pos, hint)}}
	if len(data) > maxFileSize {
		d.problem(nil, "", "file is %d bytes, more than the %d a test config may have", len(data), maxFileSize)
		return cfg, &d.pos, fixLines(d.problems), true
	}
	if n := countTokens(data); n > maxTokens {
		// yaml.v3 builds the whole node tree before anything can be checked, at some
		// hundred bytes a node: a key-heavy file is refused before it is parsed.
		d.problem(nil, "", "file has %d or more keys, values and lines, more than the %d a test config may have", n, maxTokens)
		return cfg, &d.pos, fixLines(d.problems), true
	}
	var root yaml.Node
	// The decoder sees every document but reads through an io.Reader; a single document
	// (the common case) parses faster from memory, and fastest on the fast path, which
	// builds yaml.v3's tree for the plain YAML configs are written in and leaves
	// anything else to yaml.v3.
	var dec *yaml.Decoder
	var err error
	if bytes.Contains(data, []byte("\n---")) || bytes.Contains(data, []byte("\n...")) {
		dec = yaml.NewDecoder(bytes.NewReader(data))
		err = dec.Decode(&root)
	} else if doc := fastYAMLParse(data); doc != nil {
		root = *doc
	} else if err = yaml.Unmarshal(data, &root); err == nil && root.Kind == 0 {
		err = io.EOF
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			d.problem(nil, "", "file is empty: a test config needs at least the metadata, slurm, benchmark, hardware and worker_config sections")
			return cfg, &d.pos, fixLines(d.problems), true
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		p := Problem{File: file, Message: "YAML syntax error: " + msg}
		if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
			p.Line, _ = strconv.Atoi(m[1])
			p.Message = "YAML syntax error: " + strings.TrimSpace(yamlLineRe.ReplaceAllString(msg, ""))
			p.Message = strings.Replace(p.Message, "YAML syntax error: :", "YAML syntax error:", 1)
			if parserErrors[strings.TrimPrefix(p.Message, "YAML syntax error: ")] {
				p.Line++ // yaml.v3 prints a parser error's line counting from 0
			}
		} else if m := anchorRe.FindStringSubmatch(msg); m != nil {
			if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
				p.Line = bytes.Count(data[:i], []byte("\n")) + 1
				p.Col = i - bytes.LastIndexByte(data[:i], '\n')
			}
		}
		if l := problemLine(data, p.Message); l > 0 {
			p.Line = l
		}
		if p.Line == 0 {
			p.Line = 1 // the error is somewhere in the file; point at its start
		}
		return cfg, &d.pos, []Problem{p}, true
	}
	if dec != nil {
		var extra yaml.Node
		if err := dec.Decode(&extra); err == nil {
			d.problem(&extra, "", "a test config is one YAML document; found a second one")
		} else if !errors.Is(err, io.EOF) {
			d.problem(nil, "", "after the first document: %s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			d.problem(doc, "", "file is empty")
			return cfg, &d.pos, fixLines(d.problems), true
		}
		doc = doc.Content[0]
	}
	if dn := deref(doc); dn != nil && dn.Kind != yaml.MappingNode {
		if isNull(dn) {
			d.problem(dn, "", "file has no content: a test config needs at least the metadata, slurm, benchmark, hardware and worker_config sections")
		} else {
			d.problem(dn, "", "a test config must be a mapping of sections (metadata:, slurm:, ...), got %s", describe(dn))
		}
		return cfg, &d.pos, fixLines(d.problems), true
	}
	d.decode(doc, reflect.ValueOf(&cfg).Elem(), "", 0)
	d.pos.value[""] = Pos{1, 1}
	return cfg, &d.pos, fixLines(d.problems), d.tooBig
}

// problemLine finds the line a YAML syntax error is on. yaml.v3 names the line of the
// enclosing collection when it knows one ("did not find expected key" points at the
// mapping's first key) and the line before a tab; the first prefix of the file, cut at a
// line's end, that fails with the same message ends on the line at fault. Files over
// 256 KiB keep yaml.v3's line (the search parses each prefix).
func problemLine(data []byte, message string) int {
	if len(data) > 256<<10 {
		return 0
	}
	var node yaml.Node
	line := 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += i + 1
		}
		line++
		if err := yaml.Unmarshal(data[:end], &node); err != nil {
			msg := strings.TrimPrefix(err.Error(), "yaml: ")
			msg = "YAML syntax error: " + strings.TrimSpace(yamlLineRe.ReplaceAllString(msg, ""))
			msg = strings.Replace(msg, "YAML syntax error: :", "YAML syntax error:", 1)
			if msg == message {
				return line
			}
		}
		i = end
	}
	return 0
}

// fixLines gives file-level problems without a position the first line.
func fixLines(ps []Problem) []Problem {
	for i := range ps {
		if ps[i].Line == 0 {
			ps[i].Line, ps[i].Col = 1, 1
		}
	}
	return ps
}

// closest returns the candidate nearest to s by edit distance, or one that contains s
// as a word ("name" -> "dataset_name"), or "" when none is close.
func closest(s string, candidates []string) string {
	ls := strings.ToLower(s)
	best, bestD := "", math.MaxInt
	for _, c := range candidates {
		if dist := editDistance(ls, strings.ToLower(c)); dist < bestD {
			best, bestD = c, dist
		}
	}
	if bestD <= max(2, len(s)/3) {
		return best
	}
	if len(s) >= 3 {
		for _, c := range candidates {
			lc := strings.ToLower(c)
			if strings.HasSuffix(lc, "_"+ls) || strings.HasPrefix(lc, ls+"_") || strings.Contains(ls, lc) {
				return c
			}
		}
	}
	return ""
}

// editDistance is the Levenshtein distance between two strings.
func editDistance(a, b string) int {
	if len(a) > 256 || len(b) > 256 {
		if a == b {
			return 0
		}
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// countTokens counts the bytes that start or end a YAML node (':', ',', '[', '{',
// '-' and line ends), an upper bound on the nodes a file can make give or take one per
// line; it stops counting past maxTokens.
func countTokens(data []byte) int {
	n := 0
	for _, c := range data {
		switch c {
		case ':', ',', '[', '{', '-', '\n':
			n++
			if n > maxTokens {
				return n
			}
		}
	}
	return n
}
