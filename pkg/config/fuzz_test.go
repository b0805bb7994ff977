package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the loader and validator: they must never panic or
// hang, and every problem must name the file and a line.
func FuzzLoad(f *testing.F) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base)
	f.Add([]byte(""))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("metadata: &a {x: *a}\n"))
	f.Add([]byte("a: &a [1]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"))
	f.Add([]byte("metadata:\n  model_name: x\n  model_name: y\n"))
	f.Add([]byte("benchmark:\n  concurrency_list: \"1 x\"\n"))
	f.Add([]byte("worker_config:\n  gen:\n    <<: [*x]\n"))
	f.Add([]byte("worker_config:\n  gen: &g\n    <<: *g\n"))
	f.Add([]byte("{{{{"))
	f.Add([]byte("? [a]\n: b\n"))
	f.Add([]byte("metadata: !!binary aGVsbG8=\n"))
	f.Add([]byte(strings.Replace(string(base), "  streaming: true", "  streaming: [1", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		tt, _ := LoadBytes("f/disagg/perf/x.yaml", data)
		tt.Resolve(Env{"SLURM_PARTITION": "p"}, nil)
		ps := tt.Validate()
		_ = tt.Hash()
		_ = tt.Metrics()
		for _, p := range ps {
			if p.File != "f/disagg/perf/x.yaml" || p.Line < 1 {
				t.Fatalf("problem without file or line: %#v", p)
			}
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

// FuzzSlurmValues checks the SLURM value parsers never panic and that what they accept
// is safe.
func FuzzSlurmValues(f *testing.F) {
	for _, s := range []string{"02:00:00", "1-00:00", "--gres=gpu:4 --exclusive", `--x="a b"`, "-vN2", "UNLIMITED", "99999999:99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseJobTime(s); err == nil && (d < 0 || d > maxJobTime) {
			t.Fatalf("ParseJobTime(%q) = %v", s, d)
		}
		args, err := SplitExtraArgs(s)
		if err == nil {
			for _, a := range args {
				if !strings.HasPrefix(a, "-") || strings.ContainsAny(a, ";$`\n\r<>\\") {
					t.Fatalf("SplitExtraArgs(%q) accepted %q", s, a)
				}
			}
		}
		if CheckSlurmName(s) == nil && strings.ContainsAny(s, " ;$`\n,/") {
			t.Fatalf("CheckSlurmName(%q) accepted", s)
		}
		_, _ = parseBoolExpr(s, nil)
	})
}
