package jobscript

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"plain", "plain"},
		{"/a/b-c_d.e:f,g+h@i%j=k", "/a/b-c_d.e:f,g+h@i%j=k"},
		{"=x", "'=x'"},
		{"~", "'~'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$(id)", "'$(id)'"},
		{"`id`", "'`id`'"},
		{"${HOME}", "'${HOME}'"},
		{"a\nb", "'a\nb'"},
		{"*", "'*'"},
		{`\`, `'\'`},
		{"'", `''\'''`},
	}
	for _, tt := range tests {
		got, err := Quote(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Quote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := Quote("a\x00b"); err == nil {
		t.Error("Quote accepted a NUL byte")
	}
}

// hostile values that must reach a command unchanged through bash.
var hostile = []string{
	"", " ", "plain", "it's", `"double"`, "$(touch PWNED)", "`touch PWNED`", "${HOME}", "$HOME",
	"a\nb\n", "\t", "*", "?", "[a]", "~", "~root", "!x", "a;b", "a&&b", "a|b", "a>b", "<b", "#c",
	"-n", "--", "\\", "'\\''", "\x01\x7f", "ünïcode ✓", "=", "a=b", "{a,b}", "$'x'", "\r",
}

// roundTrip has bash print each quoted word NUL-terminated and returns what it printed.
func roundTrip(t testing.TB, words []string) []string {
	t.Helper()
	line, err := QuoteArgs(words)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", "printf '%s\\0' "+line)
	cmd.Dir = t.TempDir()
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bash: %v: %s\nline: %s", err, stderr.String(), line)
	}
	got := strings.Split(out.String(), "\x00")
	return got[:len(got)-1]
}

func TestQuoteRoundTripsThroughBash(t *testing.T) {
	got := roundTrip(t, hostile)
	if len(got) != len(hostile) {
		t.Fatalf("bash saw %d words, want %d: %q", len(got), len(hostile), got)
	}
	for i := range hostile {
		if got[i] != hostile[i] {
			t.Errorf("word %d: bash saw %q, want %q", i, got[i], hostile[i])
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Quote(s)
		if strings.IndexByte(s, 0) >= 0 {
			if err == nil {
				t.Fatal("NUL accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if q == "" {
			t.Fatal("empty word")
		}
		if got := roundTrip(t, []string{s, "end"}); len(got) != 2 || got[0] != s || got[1] != "end" {
			t.Fatalf("Quote(%q) = %s; bash saw %q", s, q, got)
		}
	})
}

// unquote reads one word in the form Quote writes (bare, or '...' runs joined by \'),
// the way bash does.
func unquote(q string) (string, bool) {
	if !strings.ContainsAny(q, `'\`) {
		return q, isBare(q)
	}
	var b strings.Builder
	for q != "" {
		switch {
		case strings.HasPrefix(q, `\'`):
			b.WriteByte('\'')
			q = q[2:]
		case q[0] == '\'':
			end := strings.IndexByte(q[1:], '\'')
			if end < 0 {
				return "", false
			}
			b.WriteString(q[1 : 1+end])
			q = q[2+end:]
		default:
			return "", false
		}
	}
	return b.String(), true
}

// FuzzQuoteUnquote checks the quoting structure on many more inputs than FuzzQuote,
// which runs bash for each.
func FuzzQuoteUnquote(f *testing.F) {
	for _, h := range hostile {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Quote(s)
		if err != nil {
			if strings.IndexByte(s, 0) < 0 {
				t.Fatal(err)
			}
			return
		}
		got, ok := unquote(q)
		if !ok || got != s {
			t.Fatalf("Quote(%q) = %q, reads back as %q (%v)", s, q, got, ok)
		}
	})
}
