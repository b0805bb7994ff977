// Package pyre translates the Python re syntax the seed framework's extractor patterns
// are written in (verbose mode, named groups, Python escapes) into Go regexp syntax, and
// refuses with a position what Go cannot express.
package pyre

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error says why an extractor pattern cannot be used, and where.
type Error struct {
	Pattern string
	Offset  int // byte offset into Pattern; -1 when the error is not tied to a position
	Msg     string
}

func (e *Error) Error() string {
	if e.Offset < 0 {
		return "extractor pattern: " + e.Msg
	}
	if strings.Contains(e.Pattern, "\n") {
		line := 1 + strings.Count(e.Pattern[:min(e.Offset, len(e.Pattern))], "\n")
		col := e.Offset - strings.LastIndex(e.Pattern[:min(e.Offset, len(e.Pattern))], "\n")
		return fmt.Sprintf("extractor pattern line %d column %d (%q): %s", line, col, excerpt(e.Pattern, e.Offset), e.Msg)
	}
	return fmt.Sprintf("extractor pattern at offset %d (%q): %s", e.Offset, excerpt(e.Pattern, e.Offset), e.Msg)
}

func excerpt(p string, off int) string {
	if off > len(p) {
		off = len(p)
	}
	end := min(off+12, len(p))
	for end < len(p) && !utf8.RuneStart(p[end]) {
		end++
	}
	return p[off:end]
}

// Check reports whether pattern, written for Python's re module and compiled as the
// seed framework compiles it (re.VERBOSE | re.MULTILINE), can be used here. Constructs Go's
// regexp lacks (backreferences, lookaround, atomic groups, possessive quantifiers,
// conditionals) are refused with a *Error naming the construct.
func Check(pattern string) error {
	_, err := Compile(pattern)
	return err
}

// Compile translates a Python re pattern (re.VERBOSE | re.MULTILINE, as the seed
// compiles its patterns) into Go syntax and compiles it. Verbose whitespace and comments are
// dropped outside character classes and escapes; inline flags (?i) (?s) (?m) (?x) (?a) (?u),
// scoped flags (?i:...), named groups (?P<n>...), (?#...) comments, \Z, \uXXXX and {,n} are
// understood. Character classes such as \d, \w and \s are ASCII, as in Go.
func Compile(pattern string) (*regexp.Regexp, error) {
	expr, err := Translate(pattern)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, &Error{Pattern: pattern, Offset: -1, Msg: err.Error()}
	}
	return re, nil
}

// Translate returns the Go regexp syntax equivalent to a Python re pattern compiled
// with re.VERBOSE | re.MULTILINE. It does not compile the result.
func Translate(pattern string) (string, error) {
	t := translator{src: pattern, verbose: true}
	if err := t.run(); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("(?m")
	for _, f := range "is" {
		if strings.ContainsRune(t.global, f) {
			b.WriteRune(f)
		}
	}
	b.WriteString(")")
	b.WriteString(t.out.String())
	return b.String(), nil
}

type translator struct {
	src     string
	i       int
	out     strings.Builder
	verbose bool
	stack   []bool // verbose state to restore at each open group's ')'
	global  string // global inline flags hoisted to the front, as Python applies them
	// quant says whether the last token was a quantifier, so that a following '+'
	// (possessive in Python 3.11) is recognised.
	quant quantState
}

type quantState int

const (
	none        quantState = iota
	afterGreedy            // after *, +, ?, {m,n}
	afterLazy              // after *?, +?, ??, {m,n}?
)

func (t *translator) fail(off int, format string, args ...any) error {
	return &Error{Pattern: t.src, Offset: off, Msg: fmt.Sprintf(format, args...)}
}

func isPyWhitespace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (t *translator) run() error {
	for t.i < len(t.src) {
		c := t.src[t.i]
		if t.verbose {
			if isPyWhitespace(c) {
				t.i++
				continue
			}
			if c == '#' {
				for t.i < len(t.src) && t.src[t.i] != '\n' {
					t.i++
				}
				continue
			}
		}
		quant := none
		switch c {
		case '\\':
			if err := t.escape(false); err != nil {
				return err
			}
		case '[':
			if err := t.class(); err != nil {
				return err
			}
		case '(':
			if err := t.group(); err != nil {
				return err
			}
		case ')':
			if len(t.stack) > 0 {
				t.verbose = t.stack[len(t.stack)-1]
				t.stack = t.stack[:len(t.stack)-1]
			}
			t.out.WriteByte(')')
			t.i++
		case '*', '+', '?':
			switch {
			case t.quant == afterGreedy && c == '?':
				// Lazy modifier of the quantifier just written.
				t.out.WriteByte('?')
				t.i++
				t.quant = afterLazy
				continue
			case t.quant == afterGreedy && c == '+':
				return t.fail(t.i, "possessive quantifier (such as a*+, a++, a{2}+) is not supported by Go's regexp; drop the trailing '+'")
			case t.quant != none:
				return t.fail(t.i, "multiple repeat: a quantifier follows another quantifier")
			}
			t.out.WriteByte(c)
			t.i++
			quant = afterGreedy
		case '{':
			if n, rep, ok := braceRepeat(t.src[t.i:]); ok {
				if t.quant != none {
					return t.fail(t.i, "multiple repeat: a quantifier follows another quantifier")
				}
				t.out.WriteString(rep)
				t.i += n
				quant = afterGreedy
			} else {
				t.out.WriteString(`\{`)
				t.i++
			}
		default:
			r, size := utf8.DecodeRuneInString(t.src[t.i:])
			t.out.WriteRune(r)
			t.i += size
		}
		t.quant = quant
	}
	if len(t.stack) > 0 {
		return t.fail(len(t.src), "missing ), unterminated group")
	}
	return nil
}

// braceRepeat recognises Python's {m}, {m,}, {,n}, {m,n} (and {,}) at the start of s and
// returns its length and Go spelling. Anything else is a literal '{' in Python.
func braceRepeat(s string) (int, string, bool) {
	j := 1
	lo := ""
	for j < len(s) && isDigit(s[j]) {
		lo += s[j : j+1]
		j++
	}
	if j < len(s) && s[j] == '}' {
		if lo == "" {
			return 0, "", false
		}
		return j + 1, "{" + lo + "}", true
	}
	if j >= len(s) || s[j] != ',' {
		return 0, "", false
	}
	j++
	hi := ""
	for j < len(s) && isDigit(s[j]) {
		hi += s[j : j+1]
		j++
	}
	if j >= len(s) || s[j] != '}' {
		return 0, "", false
	}
	if lo == "" {
		lo = "0"
	}
	return j + 1, "{" + lo + "," + hi + "}", true
}

// escape translates the escape sequence at t.i (a backslash).
func (t *translator) escape(inClass bool) error {
	start := t.i
	if t.i+1 >= len(t.src) {
		return t.fail(start, "trailing backslash at end of pattern")
	}
	c := t.src[t.i+1]
	t.i += 2
	switch {
	case c == '0':
		// Octal: \0 followed by up to two more octal digits.
		j := t.i
		for j < len(t.src) && j < t.i+2 && isOctal(t.src[j]) {
			j++
		}
		v, _ := strconv.ParseUint("0"+t.src[t.i:j], 8, 32)
		t.i = j
		fmt.Fprintf(&t.out, `\x{%x}`, v)
	case c >= '1' && c <= '9':
		return t.digitEscape(start, c, inClass)
	case c == 'x':
		if t.i+2 > len(t.src) || !isHex(t.src[t.i]) || !isHex(t.src[t.i+1]) {
			return t.fail(start, `incomplete escape \x: Python needs exactly two hex digits`)
		}
		t.out.WriteString(`\x` + t.src[t.i:t.i+2])
		t.i += 2
	case c == 'u' || c == 'U':
		if err := t.unicodeEscape(start, c); err != nil {
			return err
		}
	case c == 'N':
		return t.fail(start, `named Unicode escape \N{...} is not supported; write the character or \uXXXX`)
	case c == 'Z' && !inClass:
		t.out.WriteString(`\z`)
	case (c == 'A' || c == 'b' || c == 'B') && !inClass:
		t.out.WriteString(`\` + string(c))
	case c == 'b' && inClass:
		t.out.WriteString(`\x08`) // backspace, as Python reads \b inside a class
	case c == 'd' || c == 'D' || c == 's' || c == 'S' || c == 'w' || c == 'W':
		t.out.WriteString(`\` + string(c))
	case c == 'a' || c == 'f' || c == 'n' || c == 'r' || c == 't' || c == 'v':
		t.out.WriteString(`\` + string(c))
	case c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'):
		return t.fail(start, `bad escape \%c (Python refuses it too)`, c)
	case c < utf8.RuneSelf:
		// Escaped punctuation or whitespace: a literal, kept in verbose mode.
		if isPyWhitespace(c) {
			fmt.Fprintf(&t.out, `\x{%x}`, c)
		} else {
			t.out.WriteString(`\` + string(c))
		}
	default:
		r, size := utf8.DecodeRuneInString(t.src[t.i-1:])
		t.i += size - 1
		t.out.WriteString(regexp.QuoteMeta(string(r)))
	}
	return nil
}

func isHex(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// class translates a character class starting at t.i ('['). Verbose mode does not apply
// inside a class.
func (t *translator) class() error {
	start := t.i
	t.out.WriteByte('[')
	t.i++
	if t.i < len(t.src) && t.src[t.i] == '^' {
		t.out.WriteByte('^')
		t.i++
	}
	first := true
	for t.i < len(t.src) {
		c := t.src[t.i]
		switch {
		case c == ']' && !first:
			t.out.WriteByte(']')
			t.i++
			return nil
		case c == ']' || c == '[':
			// Python: ']' first is a literal; '[' is always a literal (Go would read [: as
			// a POSIX class).
			t.out.WriteString(`\` + string(c))
			t.i++
		case c == '\\':
			if err := t.escape(true); err != nil {
				return err
			}
		default:
			r, size := utf8.DecodeRuneInString(t.src[t.i:])
			t.out.WriteRune(r)
			t.i += size
		}
		first = false
	}
	return t.fail(start, "unterminated character set: missing ]")
}

// unsupportedGroups are the group openings Python's re accepts and Go's regexp lacks.
var unsupportedGroups = []struct{ prefix, msg string }{
	{"(?P=", "named backreference (?P=...) is not supported: Go's regexp has no backreferences"},
	{"(?=", "lookahead (?=...) is not supported by Go's regexp; match the text and use a group instead"},
	{"(?!", "negative lookahead (?!...) is not supported by Go's regexp"},
	{"(?<=", "lookbehind (?<=...) is not supported by Go's regexp; match the text and use a group instead"},
	{"(?<!", "negative lookbehind (?<!...) is not supported by Go's regexp"},
	{"(?>", "atomic group (?>...) is not supported by Go's regexp; use (?:...)"},
	{"(?(", "conditional group (?(id)yes|no) is not supported by Go's regexp"},
}

// group translates the opening of a group at t.i ('(').
func (t *translator) group() error {
	start := t.i
	rest := t.src[t.i:]
	push := func() { t.stack = append(t.stack, t.verbose) }
	if !strings.HasPrefix(rest, "(?") {
		push()
		t.out.WriteByte('(')
		t.i++
		return nil
	}
	for _, u := range unsupportedGroups {
		if strings.HasPrefix(rest, u.prefix) {
			return t.fail(start, "%s", u.msg)
		}
	}
	switch {
	case strings.HasPrefix(rest, "(?:"):
		push()
		t.out.WriteString("(?:")
		t.i += 3
		return nil
	case strings.HasPrefix(rest, "(?P<"):
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return t.fail(start, "missing > in named group")
		}
		name := rest[4:end]
		if !validGroupName(name) {
			return t.fail(start, "bad group name %q", name)
		}
		push()
		t.out.WriteString("(?P<" + name + ">")
		t.i += end + 1
		return nil
	case strings.HasPrefix(rest, "(?#"):
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return t.fail(start, "missing ), unterminated comment")
		}
		t.i += end + 1
		return nil
	case strings.HasPrefix(rest, "(?<"):
		// Go and Python 3.14+ accept (?<name>...).
		end := strings.IndexByte(rest, '>')
		if end < 0 || !validGroupName(rest[3:end]) {
			return t.fail(start, "bad named group")
		}
		push()
		t.out.WriteString("(?P<" + rest[3:end] + ">")
		t.i += end + 1
		return nil
	}
	return t.flags(start, rest)
}

// flags translates inline flags: (?aiLmsux) for the whole pattern, or a scoped group
// (?aiLmsux-imsx:...).
func (t *translator) flags(start int, rest string) error {
	push := func() { t.stack = append(t.stack, t.verbose) }
	j := 2
	on, off := "", ""
	neg := false
	for ; j < len(rest); j++ {
		f := rest[j]
		switch {
		case f == '-' && !neg:
			neg = true
			continue
		case f == ')' || f == ':':
		case strings.IndexByte("aiLmsux", f) >= 0:
			if f == 'L' {
				return t.fail(start, "flag L (locale) is not valid for text patterns")
			}
			if neg && strings.IndexByte("imsx", f) < 0 {
				return t.fail(start, "flag %c cannot be turned off", f)
			}
			if neg {
				off += string(f)
			} else {
				on += string(f)
			}
			continue
		default:
			return t.fail(start, "unknown extension or flag %q", rest[:min(j+1, len(rest))])
		}
		break
	}
	if j >= len(rest) {
		return t.fail(start, "missing ) after inline flags")
	}
	goFlags := func(s string) string {
		var b strings.Builder
		for _, f := range s {
			if strings.ContainsRune("ims", f) {
				b.WriteRune(f)
			}
		}
		return b.String()
	}
	if rest[j] == ')' {
		if neg {
			return t.fail(start, "global flags cannot be turned off; use a scoped group (?-%s:...)", off)
		}
		// Python applies global flags to the whole pattern; hoist them to the front.
		t.global += goFlags(on)
		if strings.ContainsRune(on, 'x') {
			t.verbose = true
		}
		t.i += j + 1
		return nil
	}
	push()
	if strings.ContainsRune(on, 'x') {
		t.verbose = true
	}
	if strings.ContainsRune(off, 'x') {
		t.verbose = false
	}
	gon, goff := goFlags(on), goFlags(off)
	if gon == "" && goff == "" {
		t.out.WriteString("(?:")
	} else if goff == "" {
		t.out.WriteString("(?" + gon + ":")
	} else {
		t.out.WriteString("(?" + gon + "-" + goff + ":")
	}
	t.i += j + 1
	return nil
}

func validGroupName(name string) bool {
	if name == "" || isDigit(name[0]) {
		return false
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// digitEscape translates \1 to \9: Python reads three octal digits as an octal escape;
// otherwise a group reference (always an octal escape or an error inside a class).
func (t *translator) digitEscape(start int, c byte, inClass bool) error {
	if t.i+1 < len(t.src) && isOctal(c) && isOctal(t.src[t.i]) && isOctal(t.src[t.i+1]) {
		v, _ := strconv.ParseUint(t.src[t.i-1:t.i+2], 8, 32)
		if v > 0o377 {
			return t.fail(start, "octal escape %s is outside the range 0-0o377", t.src[start:t.i+2])
		}
		t.i += 2
		fmt.Fprintf(&t.out, `\x{%x}`, v)
		return nil
	}
	if inClass {
		return t.fail(start, "bad escape %s in a character class", t.src[start:t.i])
	}
	end := t.i
	if end < len(t.src) && isDigit(t.src[end]) {
		end++
	}
	return t.fail(start, "backreference %s is not supported: Go's regexp has no backreferences", t.src[start:end])
}

// unicodeEscape translates \uXXXX and \UXXXXXXXX.
func (t *translator) unicodeEscape(start int, c byte) error {
	n := 4
	if c == 'U' {
		n = 8
	}
	if t.i+n > len(t.src) {
		return t.fail(start, `incomplete escape \%c: needs %d hex digits`, c, n)
	}
	for k := 0; k < n; k++ {
		if !isHex(t.src[t.i+k]) {
			return t.fail(start, `incomplete escape \%c: needs %d hex digits`, c, n)
		}
	}
	v, _ := strconv.ParseUint(t.src[t.i:t.i+n], 16, 32)
	if v > utf8.MaxRune {
		return t.fail(start, `escape \%c%s is outside the Unicode range`, c, t.src[t.i:t.i+n])
	}
	t.i += n
	fmt.Fprintf(&t.out, `\x{%x}`, v)
	return nil
}
