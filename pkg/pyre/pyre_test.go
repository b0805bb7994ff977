package pyre

import (
	"errors"
	"strings"
	"testing"
)

func TestCompilePatternAccepts(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		input   string
		want    []string // submatches of the first match, group 1 onwards
	}{
		{"verbose whitespace and comments", `
			Median\ TTFT\ \(ms\):\s+([\d.]+)  # the median
			(?:.*\n)*?                        # anything in between
			.*Benchmark\ with\ concurrency\ (\d+)\ done`,
			"Median TTFT (ms):   12.50\nfoo\nbar\nBenchmark with concurrency 8 done\n",
			[]string{"12.50", "8"}},
		{"class keeps spaces and hash", `([# a]+)x`, "# a #x", []string{"# a #"}},
		{"inline ignorecase", `(?i)median\s+(\d+)`, "MEDIAN 42", []string{"42"}},
		{"inline dotall", `(?s)a(.*)b`, "a\n\nb", []string{"\n\n"}},
		{"inline verbose flag", `(?x) a (b) c`, "abc", []string{"b"}},
		{"scoped flags", `(?i:abc)(d)`, "ABCd", []string{"d"}},
		{"scoped verbose off", `(?-x:a b)(c)`, "a bc", []string{"c"}},
		{"named group", `(?P<ttft>\d+)ms`, "17ms", []string{"17"}},
		{"comment group", `a(?#skip me)(b)`, "ab", []string{"b"}},
		{"multiline anchors", `^c=(\d+)$`, "x\nc=4\ny", []string{"4"}},
		{"\\Z is end of text", `(\d+)\Z`, "a 12", []string{"12"}},
		{"{,n} repeat", `a{,2}(b)`, "aab", []string{"b"}},
		{"literal brace", `\{(\w+)}`, "{x}", []string{"x"}},
		{"octal and hex escapes", `\101\x42(\u0043)`, "ABC", []string{"C"}},
		{"escaped space in verbose", `a\ (b)`, "a b", []string{"b"}},
		{"lazy quantifier", `a(.+?)c`, "abcbc", []string{"b"}},
		{"bracket first literal", `([]a]+)`, "]a]", []string{"]a]"}},
		{"open bracket in class", `([[a]+)`, "[a[", []string{"[a["}},
		{"table pattern", `\|([a-zA-Z0-9_-]+)\|.*?\|([\w-]+)\|.*?\|exact_match\|.*?\|([0-9.]+)\|`,
			"|gsm8k|3|flexible-extract|5|exact_match|↑|0.9454|±|0.0063|",
			[]string{"gsm8k", "flexible-extract", "0.9454"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re, err := Compile(tt.pattern)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			m := re.FindStringSubmatch(tt.input)
			if m == nil {
				t.Fatalf("no match of %q (Go %q) in %q", tt.pattern, re.String(), tt.input)
			}
			if got := m[1:]; strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") {
				t.Errorf("groups = %q, want %q (Go %q)", got, tt.want, re.String())
			}
			if err := Check(tt.pattern); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestCompilePatternRefuses(t *testing.T) {
	tests := []struct {
		name, pattern, wantMsg string
	}{
		{"backreference", `(a)\1`, "backreference"},
		{"two digit backreference", `(a)\12`, "backreference"},
		{"named backreference", `(?P<x>a)(?P=x)`, "backreference"},
		{"lookahead", `a(?=b)`, "lookahead"},
		{"negative lookahead", `a(?!b)`, "lookahead"},
		{"lookbehind", `(?<=a)b`, "lookbehind"},
		{"negative lookbehind", `(?<!a)b`, "lookbehind"},
		{"atomic", `(?>a+)b`, "atomic"},
		{"possessive star", `a*+b`, "possessive"},
		{"possessive plus", `a++b`, "possessive"},
		{"possessive brace", `a{2}+b`, "possessive"},
		{"conditional", `(a)?(?(1)b|c)`, "conditional"},
		{"multiple repeat", `a**`, "multiple repeat"},
		{"trailing backslash", `a\`, "trailing backslash"},
		{"bad escape", `\q`, "bad escape"},
		{"unterminated class", `[abc`, "missing ]"},
		{"unterminated group", `(abc`, "missing )"},
		{"unbalanced close", `abc)`, "unexpected )"},
		{"named unicode", `\N{DASH}`, `\N`},
		{"repeat too large", `a{2000}`, "invalid repeat count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.pattern)
			if err == nil {
				t.Fatalf("Check(%q) = nil, want error mentioning %q", tt.pattern, tt.wantMsg)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if _, err := Compile(tt.pattern); err == nil {
				t.Errorf("Compile accepted %q", tt.pattern)
			}
		})
	}
}

func TestPatternErrorPosition(t *testing.T) {
	err := Check("Median\\ TTFT\n  (?<=x)y\n")
	if err == nil || !strings.Contains(err.Error(), "line 2 column 3") || !strings.Contains(err.Error(), "lookbehind") {
		t.Errorf("got %v", err)
	}
	err = Check(`ab\1`)
	if err == nil || !strings.Contains(err.Error(), `offset 2 ("\\1")`) {
		t.Errorf("got %v", err)
	}
	var pe *Error
	if !errors.As(err, &pe) || pe.Offset != 2 {
		t.Errorf("not a *Error at offset 2: %#v", err)
	}
}
