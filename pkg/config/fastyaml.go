package config

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// fastYAML turns the fast path on; tests turn it off to compare the two paths.
var fastYAML = true

// fastYAMLParse returns parseFastYAML's tree, or nil when the fast path is off or
// refuses data.
func fastYAMLParse(data []byte) *yaml.Node {
	if !fastYAML {
		return nil
	}
	return parseFastYAML(data)
}

// parseFastYAML parses the plain subset of YAML that test configs are written in and
// returns the tree yaml.v3's Unmarshal would build for it (a DocumentNode holding a
// block mapping or sequence), comments left out. It returns nil the moment it meets
// anything outside that subset, and the caller then parses the file with yaml.v3, so
// every unusual construct and every syntax error keeps yaml.v3's reading and message.
//
// The subset: block mappings with plain keys (letters, digits, _ - . /), block
// sequences ("- " items), plain and quoted scalars on one line, flow sequences of such
// scalars on one line, "key:" with a nested block or nothing after it, comments and
// blank lines. Refused: tabs, CR, bytes outside printable ASCII (so columns are bytes),
// directives and document markers, anchors, aliases, tags, block scalars, flow
// mappings, "?" keys, "<<", quoted keys, scalars over several lines, backslashes in
// double quotes, duplicate keys, and indentation that is not plainly consistent.
func parseFastYAML(data []byte) *yaml.Node {
	for _, c := range data {
		if c >= 0x7f || c < 0x20 && c != '\n' {
			return nil
		}
	}
	p := &fastParser{src: string(data)}
	if !p.splitLines() || len(p.lines) == 0 {
		return nil
	}
	p.nodes = make([]yaml.Node, 0, 2*len(p.lines)+8)
	p.ptrs = make([]*yaml.Node, 0, 2*len(p.lines)+8)
	first := p.lines[0]
	root := p.block(first.indent)
	if root == nil || p.i != len(p.lines) {
		return nil
	}
	doc := p.node(yaml.DocumentNode, "", "", root.Line, root.Column)
	doc.Content = p.content([]*yaml.Node{root})
	return doc
}

// fastLine is one line that holds content (not blank, not only a comment).
type fastLine struct {
	text   string // the line without its '\n'
	num    int    // line number, from 1
	indent int    // leading spaces
}

// fastMaxDepth bounds the nesting the fast path follows; deeper files go to yaml.v3.
const fastMaxDepth = 100

type fastParser struct {
	src   string
	lines []fastLine
	i     int // the line being parsed
	depth int
	nodes []yaml.Node  // nodes are handed out from here, a chunk at a time
	ptrs  []*yaml.Node // Content slices are carved from here
	stack []*yaml.Node // children of the collections being parsed
}

// splitLines keeps the lines with content and refuses document markers and
// directives.
func (p *fastParser) splitLines() bool {
	p.lines = make([]fastLine, 0, strings.Count(p.src, "\n")+1)
	num := 0
	for rest := p.src; rest != ""; {
		num++
		text := rest
		if i := strings.IndexByte(rest, '\n'); i >= 0 {
			text, rest = rest[:i], rest[i+1:]
		} else {
			rest = ""
		}
		indent := 0
		for indent < len(text) && text[indent] == ' ' {
			indent++
		}
		if indent == len(text) || text[indent] == '#' {
			continue
		}
		if indent == 0 && (strings.HasPrefix(text, "---") || strings.HasPrefix(text, "...") || text[0] == '%') {
			return false
		}
		p.lines = append(p.lines, fastLine{text: text, num: num, indent: indent})
	}
	return true
}

func (p *fastParser) node(kind yaml.Kind, tag, value string, line, col int) *yaml.Node {
	if len(p.nodes) == cap(p.nodes) {
		p.nodes = make([]yaml.Node, 0, 64)
	}
	p.nodes = append(p.nodes, yaml.Node{Kind: kind, Tag: tag, Value: value, Line: line, Column: col})
	return &p.nodes[len(p.nodes)-1]
}

// content copies a collection's children into a slice of their own.
func (p *fastParser) content(children []*yaml.Node) []*yaml.Node {
	n := len(children)
	if n == 0 {
		return nil
	}
	if cap(p.ptrs)-len(p.ptrs) < n {
		p.ptrs = make([]*yaml.Node, 0, max(n, 256))
	}
	start := len(p.ptrs)
	p.ptrs = append(p.ptrs, children...)
	return p.ptrs[start : start+n : start+n]
}

// isEntry reports whether text holds a block sequence entry ("-" then a space or the
// line's end) at column col.
func isEntry(text string, col int) bool {
	return col < len(text) && text[col] == '-' && (col+1 == len(text) || text[col+1] == ' ')
}

// block parses the mapping or sequence that starts on the current line at column col.
func (p *fastParser) block(col int) *yaml.Node {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > fastMaxDepth {
		return nil
	}
	l := p.lines[p.i]
	if isEntry(l.text, col) {
		if col != l.indent {
			return nil // "- - x": a sequence inside an entry on the same line
		}
		return p.sequence(col)
	}
	if keyEnd(l.text, col) < 0 {
		return nil
	}
	return p.mapping(col)
}

// isKeyByte reports whether c may appear in a plain key on the fast path.
func isKeyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/'
}

// keyEnd returns the index of the ':' that ends a plain key starting at col, or -1
// when text has no such key there.
func keyEnd(text string, col int) int {
	i := col
	for i < len(text) && isKeyByte(text[i]) {
		i++
	}
	// A key may not start with '-' (an entry or a negative number's look-alike) and
	// yaml.v3 allows a simple key of at most 1024 characters.
	if i == col || text[col] == '-' || i-col > 1000 {
		return -1
	}
	if i < len(text) && text[i] == ':' && (i+1 == len(text) || text[i+1] == ' ') {
		return i
	}
	return -1
}

// mapping parses a block mapping whose first key is on the current line at column col
// and whose other keys are on later lines indented by exactly col.
func (p *fastParser) mapping(col int) *yaml.Node {
	l := p.lines[p.i]
	m := p.node(yaml.MappingNode, "!!map", "", l.num, col+1)
	base := len(p.stack)
	defer func() { p.stack = p.stack[:base] }()
	var seen map[string]bool
	for first := true; p.i < len(p.lines); first = false {
		l = p.lines[p.i]
		if !first {
			if l.indent < col {
				break
			}
			if l.indent > col {
				return nil
			}
		}
		end := keyEnd(l.text, col)
		if end < 0 {
			return nil
		}
		key := l.text[col:end]
		if !p.newKey(base, key, &seen) {
			return nil // duplicate keys: yaml.v3 and the decoder report them
		}
		k := p.node(yaml.ScalarNode, plainTag(key), key, l.num, col+1)
		r := end + 1
		for r < len(l.text) && l.text[r] == ' ' {
			r++
		}
		var v *yaml.Node
		if r == len(l.text) || l.text[r] == '#' {
			p.i++
			if p.i < len(p.lines) && (p.lines[p.i].indent > col || p.lines[p.i].indent == col && isEntry(p.lines[p.i].text, col)) {
				v = p.block(p.lines[p.i].indent)
			} else {
				// yaml.v3 places an empty value just after the ':'.
				v = p.node(yaml.ScalarNode, "!!null", "", l.num, end+2)
			}
		} else {
			v = p.inline(l, r)
			p.i++
		}
		if v == nil {
			return nil
		}
		p.stack = append(p.stack, k, v)
	}
	m.Content = p.content(p.stack[base:])
	return m
}

// newKey reports whether key is not yet among the keys of the mapping whose pairs
// start at p.stack[base]: a linear search for the few keys a section has, a set (made
// on first need) past that.
func (p *fastParser) newKey(base int, key string, seen *map[string]bool) bool {
	const linear = 16
	n := (len(p.stack) - base) / 2
	if *seen == nil {
		for j := base; j < len(p.stack); j += 2 {
			if p.stack[j].Value == key {
				return false
			}
		}
		if n < linear {
			return true
		}
		*seen = make(map[string]bool, 2*n)
		for j := base; j < len(p.stack); j += 2 {
			(*seen)[p.stack[j].Value] = true
		}
	} else if (*seen)[key] {
		return false
	}
	(*seen)[key] = true
	return true
}

// sequence parses a block sequence whose entries start at column col.
func (p *fastParser) sequence(col int) *yaml.Node {
	l := p.lines[p.i]
	s := p.node(yaml.SequenceNode, "!!seq", "", l.num, col+1)
	base := len(p.stack)
	defer func() { p.stack = p.stack[:base] }()
	for p.i < len(p.lines) {
		l = p.lines[p.i]
		if l.indent != col || !isEntry(l.text, col) {
			break
		}
		r := col + 1
		for r < len(l.text) && l.text[r] == ' ' {
			r++
		}
		var v *yaml.Node
		switch {
		case r == len(l.text) || l.text[r] == '#':
			p.i++
			if p.i < len(p.lines) && p.lines[p.i].indent > col {
				v = p.block(p.lines[p.i].indent)
			} else {
				// yaml.v3 places an empty entry just after the '-'.
				v = p.node(yaml.ScalarNode, "!!null", "", l.num, col+2)
			}
		case isEntry(l.text, r):
			return nil
		case keyEnd(l.text, r) >= 0:
			v = p.block(r)
		default:
			v = p.inline(l, r)
			p.i++
		}
		if v == nil {
			return nil
		}
		p.stack = append(p.stack, v)
	}
	s.Content = p.content(p.stack[base:])
	return s
}

// isIndicator reports whether a scalar may not start with c on the fast path.
func isIndicator(c byte) bool {
	return strings.IndexByte("-?:,[]{}#&*!|>'\"%@`", c) >= 0
}

// inline parses the value that starts at index r of line l and ends the line: a
// scalar or a flow sequence, then spaces and perhaps a comment.
func (p *fastParser) inline(l fastLine, r int) *yaml.Node {
	text := l.text
	var v *yaml.Node
	var end int
	switch c := text[r]; {
	case c == '[':
		v, end = p.flowSequence(l, r)
	case c == '\'' || c == '"':
		v, end = p.quoted(l, r)
	case c == '-' && r+1 < len(text) && text[r+1] != ' ':
		v, end = p.plain(l, r)
	case isIndicator(c):
		return nil
	default:
		v, end = p.plain(l, r)
	}
	if v == nil || !restIsComment(text, end) {
		return nil
	}
	return v
}

// restIsComment reports whether text from i holds only spaces, then perhaps a comment
// that a space sets off.
func restIsComment(text string, i int) bool {
	j := i
	for j < len(text) && text[j] == ' ' {
		j++
	}
	return j == len(text) || text[j] == '#' && j > i
}

// plain parses a plain scalar in block context from index r to the line's end or a
// comment.
func (p *fastParser) plain(l fastLine, r int) (*yaml.Node, int) {
	text := l.text
	end := len(text)
	if i := strings.Index(text[r:], " #"); i >= 0 {
		end = r + i
	}
	for end > r && text[end-1] == ' ' {
		end--
	}
	value := text[r:end]
	// A ": " or a final ':' makes a key; yaml.v3 decides what that means.
	if value == "" || value[len(value)-1] == ':' || strings.Contains(value, ": ") {
		return nil, 0
	}
	return p.node(yaml.ScalarNode, plainTag(value), value, l.num, r+1), end
}

// quoted parses a single- or double-quoted scalar that ends on its line.
func (p *fastParser) quoted(l fastLine, r int) (*yaml.Node, int) {
	text := l.text
	q := text[r]
	style := yaml.DoubleQuotedStyle
	if q == '\'' {
		style = yaml.SingleQuotedStyle
	}
	if q == '"' && strings.IndexByte(text[r+1:], '\\') >= 0 {
		return nil, 0 // escapes are yaml.v3's to read
	}
	var b strings.Builder
	escaped := false
	i := r + 1
	for {
		j := strings.IndexByte(text[i:], q)
		if j < 0 {
			return nil, 0 // continues on the next line
		}
		j += i
		if q == '\'' && j+1 < len(text) && text[j+1] == '\'' {
			escaped = true
			b.WriteString(text[i : j+1])
			i = j + 2
			continue
		}
		value := text[r+1 : j]
		if escaped {
			b.WriteString(text[i:j])
			value = b.String()
		}
		n := p.node(yaml.ScalarNode, "!!str", value, l.num, r+1)
		n.Style = style
		return n, j + 1
	}
}

// flowSequence parses "[a, 'b', "c"]" on one line, entries being scalars.
func (p *fastParser) flowSequence(l fastLine, r int) (*yaml.Node, int) {
	text := l.text
	s := p.node(yaml.SequenceNode, "!!seq", "", l.num, r+1)
	s.Style = yaml.FlowStyle
	base := len(p.stack)
	defer func() { p.stack = p.stack[:base] }()
	i := r + 1
	skip := func() {
		for i < len(text) && text[i] == ' ' {
			i++
		}
	}
	skip()
	if i < len(text) && text[i] == ']' {
		return s, i + 1
	}
	for {
		if i == len(text) {
			return nil, 0
		}
		var v *yaml.Node
		switch c := text[i]; {
		case c == '\'' || c == '"':
			v, i = p.quoted(l, i)
		case c == '-' && i+1 < len(text) && text[i+1] != ' ' || !isIndicator(c):
			start := i
			for i < len(text) && text[i] != ',' && text[i] != ']' {
				if strings.IndexByte(":?#[]{}'\"", text[i]) >= 0 {
					return nil, 0
				}
				i++
			}
			end := i
			for end > start && text[end-1] == ' ' {
				end--
			}
			value := text[start:end]
			v = p.node(yaml.ScalarNode, plainTag(value), value, l.num, start+1)
		default:
			return nil, 0
		}
		if v == nil {
			return nil, 0
		}
		p.stack = append(p.stack, v)
		skip()
		if i == len(text) {
			return nil, 0
		}
		switch text[i] {
		case ']':
			s.Content = p.content(p.stack[base:])
			return s, i + 1
		case ',':
			i++
			skip()
			if i < len(text) && (text[i] == ']' || text[i] == ',') {
				return nil, 0 // a trailing or empty entry
			}
		default:
			return nil, 0
		}
	}
}

// plainTag returns the tag yaml.v3 resolves a plain scalar to (its parser sets it on
// every plain scalar node), answering the common cases without its resolver.
func plainTag(v string) string {
	if v == "<<" {
		return "!!merge" // set by yaml.v3's parser; its resolver alone says !!str
	}
	c := v[0]
	switch {
	case '0' <= c && c <= '9':
		if len(v) <= 18 && (c != '0' || len(v) == 1) {
			digits := true
			for i := 1; i < len(v); i++ {
				if v[i] < '0' || v[i] > '9' {
					digits = false
					break
				}
			}
			if digits {
				return "!!int"
			}
		}
	case strings.IndexByte("yYnNtTfFoO~", c) >= 0:
		// yaml.v3 looks these up in its table of booleans and nulls, and else takes
		// them as strings.
		switch v {
		case "true", "True", "TRUE", "false", "False", "FALSE":
			return "!!bool"
		case "~", "null", "Null", "NULL":
			return "!!null"
		}
		return "!!str"
	case c == '+' || c == '-' || c == '.':
	default:
		return "!!str" // no other first byte starts a number, boolean or null
	}
	n := yaml.Node{Kind: yaml.ScalarNode, Value: v}
	return n.ShortTag()
}
