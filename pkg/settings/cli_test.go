package settings

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name           string
		args           []string
		min, max       int
		ok             bool
		code           int
		stdout, stderr string
		pos            []string
	}{
		{"flags only", []string{"--test-list", "x"}, 0, 0, true, 0, "", "", nil},
		{"stray positional", []string{"--test-list", "x", "oops"}, 0, 0, false, 2, "", `unexpected argument "oops"`, nil},
		{"flags after positional", []string{"RUN", "--test-list", "x"}, 1, 1, true, 0, "", "", []string{"RUN"}},
		{"missing positional", nil, 1, 1, false, 2, "", "missing argument", nil},
		{"misspelled flag", []string{"--test-lst", "x"}, 0, 0, false, 2, "", "did you mean --test-list?", nil},
		{"misspelled short", []string{"-kk", "x"}, 0, 0, false, 2, "", "did you mean -k?", nil},
		{"help", []string{"-h"}, 1, 1, false, 0, "usage: planner list", "", nil},
		{"help after a bad flag", []string{"--bogus", "-h"}, 0, 0, false, 2, "", "unknown flag", nil},
		{"version", []string{"--version"}, 0, 0, false, 0, "planner ", "", nil},
		{"dash dash", []string{"--", "-k"}, 0, 1, true, 0, "", "", []string{"-k"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := flag.NewFlagSet("planner list", flag.ContinueOnError)
			fs.String("test-list", "", "")
			fs.String("k", "", "")
			fs.Usage = func() { fs.Output().Write([]byte("usage: planner list\n")) }
			var out, errw bytes.Buffer
			pos, code, ok := Parse(fs, c.args, c.min, c.max, &out, &errw)
			if ok != c.ok || code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errw.String(), c.stderr) {
				t.Errorf("ok %v code %d stdout %q stderr %q", ok, code, out.String(), errw.String())
			}
			if c.stderr == "" && errw.Len() > 0 {
				t.Errorf("stderr %q", errw.String())
			}
			if strings.Join(pos, " ") != strings.Join(c.pos, " ") {
				t.Errorf("positional %q, want %q", pos, c.pos)
			}
		})
	}
}
