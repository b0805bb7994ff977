package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// baseYAML is a valid disagg perf config.
func baseYAML(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces one exact occurrence of old with new in s.
func edit(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}

// lineOf returns the 1-based line of the first occurrence of sub in s.
func lineOf(t testing.TB, s, sub string) int {
	t.Helper()
	i := strings.Index(s, sub)
	if i < 0 {
		t.Fatalf("lineOf: %q not found", sub)
	}
	return strings.Count(s[:i], "\n") + 1
}

// writeFile writes data to dir/rel, creating folders.
func writeFile(t testing.TB, dir, rel, data string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadValidate loads YAML text as a disagg perf test and validates it.
func loadValidate(t testing.TB, name, text string) (*Test, []Problem) {
	t.Helper()
	tt, _ := LoadBytes(filepath.Join("cfg", "disagg", "perf", name), []byte(text))
	tt.Resolve(nil, nil)
	return tt, tt.Validate()
}

func errorsOnly(ps []Problem) []Problem {
	var out []Problem
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

func dump(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}
