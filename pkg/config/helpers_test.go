package config

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config/configtest"
)

// lineOf returns the 1-based line of the first occurrence of sub in s.
func lineOf(t testing.TB, s, sub string) int {
	t.Helper()
	i := strings.Index(s, sub)
	if i < 0 {
		t.Fatalf("lineOf: %q not found", sub)
	}
	return strings.Count(s[:i], "\n") + 1
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

// problemCase is one edit of the base config and the problem it must cause: field and
// message, on the line holding at (default: the last line of new). An empty field
// means the edit must cause no problem at all.
type problemCase struct {
	name       string
	old, new   string
	field, msg string
	at         string
	warning    bool
}

func checkProblemCases(t *testing.T, cases []problemCase) {
	t.Helper()
	base := baseYAML(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := edit(t, base, tc.old, tc.new)
			_, ps := loadValidate(t, "x.yaml", text)
			if tc.field == "" {
				if len(ps) != 0 {
					t.Fatalf("want no problems, got:%s", dump(ps))
				}
				return
			}
			at := tc.at
			if at == "" {
				lines := strings.Split(strings.TrimRight(tc.new, "\n"), "\n")
				at = lines[len(lines)-1]
			}
			wantLine := lineOf(t, text, at)
			for _, p := range ps {
				if p.Field != tc.field || !strings.Contains(p.Message, tc.msg) {
					continue
				}
				if p.Line != wantLine || p.Col < 1 {
					t.Errorf("at %d:%d, want line %d (%q): %s", p.Line, p.Col, wantLine, at, p)
				}
				if p.Warning != tc.warning {
					t.Errorf("warning = %v: %s", p.Warning, p)
				}
				if !strings.HasPrefix(p.String(), "cfg/disagg/perf/x.yaml:") {
					t.Errorf("String() = %q", p.String())
				}
				return
			}
			t.Fatalf("want %s: %s in:%s", tc.field, tc.msg, dump(ps))
		})
	}
}

var (
	baseYAML  = configtest.BaseYAML
	edit      = configtest.Edit
	writeFile = configtest.WriteFile
	setupTree = configtest.SetupTree
)

const (
	idPerfA = configtest.IDPerfA
	idPerfB = configtest.IDPerfB
	idAcc   = configtest.IDAcc
	idWide  = configtest.IDWide
	idH100  = configtest.IDH100
	idBad   = configtest.IDBad

	accuracySections = configtest.AccuracySections
)
