package config

import (
	"fmt"
	"slices"
	"strings"
)

// boolExpr is a pytest-style -k / -m expression: words joined by and, or, not and
// parentheses. A nil expression matches everything.
type boolExpr struct {
	op          string // "word", "and", "or", "not"
	word        string
	left, right *boolExpr
}

func (e *boolExpr) match(word func(string) bool) bool {
	if e == nil {
		return true
	}
	switch e.op {
	case "and":
		return e.left.match(word) && e.right.match(word)
	case "or":
		return e.left.match(word) || e.right.match(word)
	case "not":
		return !e.left.match(word)
	}
	return word(e.word)
}

type exprParser struct {
	toks    []string
	i       int
	allowed []string // when set, the only words allowed
}

const maxExprLen = 4096

// parseBoolExpr parses an expression; allowed limits the words (nil allows any).
func parseBoolExpr(s string, allowed []string) (*boolExpr, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if len(s) > maxExprLen {
		return nil, fmt.Errorf("expression is longer than %d characters", maxExprLen)
	}
	p := &exprParser{toks: tokenize(s), allowed: allowed}
	e, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.i])
	}
	return e, nil
}

func tokenize(s string) []string {
	var toks []string
	var cur strings.Builder
	flush := func() {
		if cur.Len() > 0 {
			toks = append(toks, cur.String())
			cur.Reset()
		}
	}
	for _, r := range s {
		switch r {
		case '(', ')':
			flush()
			toks = append(toks, string(r))
		case ' ', '\t', '\n', '\r':
			flush()
		default:
			cur.WriteRune(r)
		}
	}
	flush()
	return toks
}

func (p *exprParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *exprParser) or(depth int) (*boolExpr, error) {
	l, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	for p.peek() == "or" {
		p.i++
		r, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		l = &boolExpr{op: "or", left: l, right: r}
	}
	return l, nil
}

func (p *exprParser) and(depth int) (*boolExpr, error) {
	l, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	for p.peek() == "and" {
		p.i++
		r, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		l = &boolExpr{op: "and", left: l, right: r}
	}
	return l, nil
}

func (p *exprParser) not(depth int) (*boolExpr, error) {
	if depth > 100 {
		return nil, fmt.Errorf("expression is nested too deeply")
	}
	switch t := p.peek(); t {
	case "":
		return nil, fmt.Errorf("expression ends early")
	case "not":
		p.i++
		e, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return &boolExpr{op: "not", left: e}, nil
	case "(":
		p.i++
		e, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing ')'")
		}
		p.i++
		return e, nil
	case ")", "and", "or":
		return nil, fmt.Errorf("unexpected %q", t)
	default:
		p.i++
		if p.allowed != nil && !slices.Contains(p.allowed, t) {
			return nil, fmt.Errorf("unknown marker %q (known: %s)", t, strings.Join(p.allowed, ", "))
		}
		return &boolExpr{op: "word", word: t}, nil
	}
}

// KMatcher compiles a pytest-style -k expression (words, and, or, not, parentheses)
// into a test over ids: a word matches an id that contains it, ignoring case. An empty
// expression matches every id.
func KMatcher(expr string) (func(id string) bool, error) {
	e, err := parseBoolExpr(expr, nil)
	if err != nil {
		return nil, fmt.Errorf("-k %q: %w", expr, err)
	}
	return func(id string) bool {
		return e.match(func(word string) bool { return strings.Contains(strings.ToLower(id), strings.ToLower(word)) })
	}, nil
}
