package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/metrics"
)

func jobs(name string) string {
	return filepath.Join("..", "..", "pkg", "metrics", "testdata", "jobs", name)
}

type doc struct {
	Valid   bool             `json:"valid"`
	Partial bool             `json:"partial"`
	Reasons []string         `json:"reasons"`
	Rows    []map[string]any `json:"rows"`
}

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		rows     int
		first    map[string]any // fields of the first row
		reason   string         // a substring of some reason
		stderr   string
		textWant string
	}{
		{name: "perf with config", args: []string{"--config", "testdata/disagg/perf/two_gen.yaml", "--json", jobs("disagg_ok")},
			code: 0, rows: 6, first: map[string]any{"concurrency": 1.0, "metric": "SERVER_MEDIAN_TTFT", "value": 180.0}},
		{name: "flags after PATH", args: []string{jobs("disagg_ok"), "--config", "testdata/disagg/perf/two_gen.yaml", "--json"},
			code: 0, rows: 6},
		{name: "perf without config keeps printed concurrency", args: []string{"--type", "disagg", "--category", "perf", "--json", jobs("disagg_ok")},
			code: 0, rows: 6, first: map[string]any{"concurrency": 2.0}},
		{name: "failed requests", args: []string{"--config", "testdata/disagg/perf/two_gen.yaml", "--json", jobs("disagg_failed")},
			code: 1, rows: 6, reason: "concurrency 2 (6_bench.log:137): 3 failed requests"},
		{name: "failed requests allowed by flag", args: []string{"--config", "testdata/disagg/perf/two_gen.yaml", "--json", "--max-failed-requests", "5", jobs("disagg_failed")},
			code: 1, rows: 6, reason: "successful requests 37 != total requests 40"},
		{name: "single log file", args: []string{"--type", "wideep", "--category", "perf", "--json", filepath.Join(jobs("wideep_ok"), "6_bench.log")},
			code: 0, rows: 24, first: map[string]any{"concurrency": 16.0, "metric": "SERVER_MEAN_TTFT"}},
		{name: "custom metrics", args: []string{"--config", "testdata/disagg/perf/custom.yaml", "--json", jobs("custom")},
			code: 0, rows: 6, first: map[string]any{"concurrency": 1.0, "metric": "OUTPUT_TPUT", "value": 1000.5}},
		{name: "accuracy verdicts", args: []string{"--config", "testdata/disagg/accuracy/gsm8k.yaml", "--json", jobs("accuracy_fail")},
			code: 1, rows: 2, first: map[string]any{"dataset": "gsm8k", "filter": "flexible-extract", "value": 0.9462, "passed": true},
			reason: "exact_match 0.9012 < threshold 0.9134"},
		{name: "accuracy without datasets", args: []string{"--type", "disagg", "--category", "accuracy", "--json", jobs("accuracy_gsm8k")},
			code: 0, rows: 4, first: map[string]any{"threshold": nil, "passed": nil, "value": 0.9462}},
		{name: "text output", args: []string{"--config", "testdata/disagg/perf/two_gen.yaml", jobs("disagg_timeout")},
			code: 1, textWant: "disagg perf: NOT VALID (partial)\n  - concurrency 4 (6_bench.log:"},
		{name: "no path", args: []string{"--type", "disagg", "--category", "perf"}, code: 2, stderr: "missing argument"},
		{name: "two paths", args: []string{"--type", "disagg", "--category", "perf", "a", "b"}, code: 2, stderr: `unexpected argument "b"`},
		{name: "bad type", args: []string{"--type", "moe", "--category", "perf", "x"}, code: 2, stderr: `--type must be one of disagg, wideep, got "moe"`},
		{name: "missing category", args: []string{"--type", "disagg", "x"}, code: 2, stderr: "--category must be one of"},
		{name: "contradicting config", args: []string{"--config", "testdata/disagg/perf/two_gen.yaml", "--category", "accuracy", "x"}, code: 2, stderr: "--category accuracy contradicts the config's category perf"},
		{name: "unknown flag", args: []string{"--bogus", "x"}, code: 2, stderr: "unknown flag -bogus"},
		{name: "missing config", args: []string{"--config", "testdata/nope.yaml", "x"}, code: 2, stderr: "nope.yaml"},
		{name: "missing log folder", args: []string{"--type", "disagg", "--category", "perf", "--json", "testdata/no-such-dir"}, code: 1, reason: "log path:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runParse(tt.args, &out, &errOut)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
			if tt.stderr != "" && !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", errOut.String(), tt.stderr)
			}
			if tt.textWant != "" && !strings.Contains(out.String(), tt.textWant) {
				t.Errorf("stdout:\n%s\ndoes not contain %q", out.String(), tt.textWant)
			}
			if code == 2 || tt.textWant != "" {
				return
			}
			var d doc
			if err := json.Unmarshal(out.Bytes(), &d); err != nil {
				t.Fatalf("not one JSON document: %v\n%s", err, out.String())
			}
			if d.Valid != (code == 0) || d.Reasons == nil {
				t.Errorf("valid=%v reasons=%v with exit %d", d.Valid, d.Reasons, code)
			}
			if len(d.Rows) != tt.rows {
				t.Errorf("%d rows, want %d: %v", len(d.Rows), tt.rows, d.Rows)
			}
			for k, v := range tt.first {
				if got, ok := d.Rows[0][k]; !ok || got != v {
					t.Errorf("first row %s = %v (present %v), want %v", k, got, ok, v)
				}
			}
			if tt.reason != "" && !strings.Contains(strings.Join(d.Reasons, "\n"), tt.reason) {
				t.Errorf("no reason contains %q: %v", tt.reason, d.Reasons)
			}
		})
	}
}

func TestDatasetDefaultsFill(t *testing.T) {
	sigma := 20.0
	d := metrics.ResolveDataset(configDataset("humaneval", 0.8, &sigma))
	if d.Alpha != 0.002 || d.Sigma != 20 || d.NumSamples != 164 || !d.HigherIsBetter || d.Expected != 0.8 {
		t.Errorf("got %+v", d)
	}
}

// countingWriter counts the Write calls that reach it, as the system calls on a file would.
type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

func TestParseBuffersOutput(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		args := []string{"--type", "disagg", "--category", "perf", jobs("disagg_ok")}
		if asJSON {
			args = append([]string{"--json"}, args...)
		}
		var out countingWriter
		var errOut bytes.Buffer
		if code := runParse(args, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		if out.writes != 1 || !strings.Contains(out.String(), "VALID") && !asJSON {
			t.Errorf("json=%v: %d writes for %d bytes, want 1:\n%s", asJSON, out.writes, out.Len(), out.String())
		}
	}
}

// The reasons and warnings are written as they are, one line each, without an allocation
// per line: a long log may carry tens of thousands of warnings.
func TestWriteTextWarnings(t *testing.T) {
	res := metrics.Result{Reasons: []string{"r1 %d", "r2"}}
	for i := range 1000 {
		res.Warnings = append(res.Warnings, "w "+strconv.Itoa(i)+" 100%")
	}
	in := metrics.Input{TestType: "disagg", Category: "perf"}
	var out bytes.Buffer
	out.Grow(64 << 10)
	allocs := testing.AllocsPerRun(1, func() {
		out.Reset()
		if err := writeText(&out, in, res); err != nil {
			t.Fatal(err)
		}
	})
	want := "disagg perf: NOT VALID\n  - r1 %d\n  - r2\n"
	for _, w := range res.Warnings {
		want += "  warning: " + w + "\n"
	}
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if allocs > 100 {
		t.Errorf("%v allocations for %d lines", allocs, len(res.Warnings)+len(res.Reasons))
	}
}
