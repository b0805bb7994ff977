package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// writeRun writes a run's rows: per test and concurrency a judged median TTFT and an
// output throughput row carrying the per-GPU throughput.
func writeRun(t *testing.T, out, run string, tests []string, ttft, tput float64) {
	t.Helper()
	root := filepath.Join(out, "results")
	for _, test := range tests {
		var rows []results.Row
		for _, c := range []int64{4, 8} {
			base := results.Row{RunID: run, TestID: test, GPUType: "GB200", Verdict: "pass", Concurrency: c, End: time.Now()}
			r1 := base
			r1.Metric, r1.Value, r1.Judged = "SERVER_MEDIAN_TTFT", ttft*float64(c), true
			r2 := base
			r2.Metric, r2.Value, r2.OutputTokSPerGPU = "OUTPUT_THROUGHPUT", tput*float64(c), results.Float(tput*float64(c)/8)
			rows = append(rows, r1, r2)
		}
		if _, err := results.WriteParquet(root, run, test, rows); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompareRuns(t *testing.T) {
	out := t.TempDir()
	writeRun(t, out, "ra", []string{"disagg_perf_a", "disagg_perf_gone"}, 10, 1000)
	writeRun(t, out, "rb", []string{"disagg_perf_a", "disagg_perf_new"}, 11, 1100) // TTFT +10% (worse), throughput +10% (better)

	var stdout, stderr bytes.Buffer
	code := runCompare([]string{"ra", "rb", "--output-path", out, "--format", "json", "--threshold", "0%"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("0%% threshold: exit %d, want 1: %s", code, stderr.String())
	}
	var doc struct {
		A, B    string
		Deltas  []map[string]any
		OnlyInA []string `json:"tests_only_in_a"`
		OnlyInB []string `json:"tests_only_in_b"`
		Worse   int
		Better  int
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatal(err, stdout.String())
	}
	// Every row of both runs: 3 tests x 2 concurrencies x (TTFT, output_tok_s_per_gpu);
	// OUTPUT_THROUGHPUT is not judged, so only --all lists it.
	if len(doc.Deltas) != 12 || doc.Worse != 2 || doc.Better != 2 || doc.A != "ra" ||
		strings.Join(doc.OnlyInA, ",") != "disagg_perf_gone" || strings.Join(doc.OnlyInB, ",") != "disagg_perf_new" {
		t.Errorf("comparison %d deltas, %d worse, %d better, only %v / %v", len(doc.Deltas), doc.Worse, doc.Better, doc.OnlyInA, doc.OnlyInB)
	}
	for _, d := range doc.Deltas {
		if d["test"] == "disagg_perf_a" && d["metric"] == "SERVER_MEDIAN_TTFT" && (d["verdict"] != "worse" || d["change_pct"].(float64) < 9.99) {
			t.Errorf("TTFT delta %v", d)
		}
	}
	stdout.Reset()
	if code := runCompare([]string{"ra", "rb", "--output-path", out, "--threshold", "50%", "--format", "markdown"}, &stdout, &stderr); code != 0 {
		t.Errorf("50%% threshold: exit %d", code)
	}
	if !strings.Contains(stdout.String(), "| disagg_perf_a | 4 | SERVER_MEDIAN_TTFT | 40 | 44 | +10.0% | same |") {
		t.Errorf("markdown:\n%s", stdout.String())
	}
	stdout.Reset()
	if code := runCompare([]string{"ra", "rb", "--output-path", out, "--all", "-k", "perf_a or gone and not gone", "--format", "json"}, &stdout, &stderr); code != 1 {
		t.Errorf("--all -k: exit %d", code)
	}
	_ = json.Unmarshal(stdout.Bytes(), &doc)
	if len(doc.Deltas) != 6 {
		t.Errorf("--all -k: %d deltas, want 6 (TTFT, OUTPUT_THROUGHPUT, per GPU at 2 concurrencies)", len(doc.Deltas))
	}
	stderr.Reset()
	if code := runCompare([]string{"ra", "rc", "--output-path", out}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `no run "rc"`) {
		t.Errorf("unknown run: exit %d, %s", code, stderr.String())
	}
	if code := runCompare([]string{"ra", "--output-path", out}, &stdout, &stderr); code != 2 {
		t.Errorf("one run: exit %d", code)
	}
	if code := runCompare([]string{"ra", "rb", "--threshold", "lots", "--output-path", out}, &stdout, &stderr); code != 2 {
		t.Errorf("bad threshold: exit %d", code)
	}
}

// Suggested references paste into a config that then validates.
func TestReferencesSuggest(t *testing.T) {
	out := t.TempDir()
	writeRun(t, out, "r1", []string{"disagg_perf_a"}, 10, 1000)
	writeRun(t, out, "r2", []string{"disagg_perf_a"}, 11, 900)
	writeRun(t, out, "r3", []string{"disagg_perf_a"}, 12, 1100)
	var stdout, stderr bytes.Buffer
	if code := runReferences([]string{"suggest", "r1", "r2", "r3", "--output-path", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	y := stdout.String()
	for _, want := range []string{"# disagg_perf_a (from 3 run(s))\nreferences:\n", "  - metric: SERVER_MEDIAN_TTFT\n    concurrency: 4\n    value: 44\n    tolerance: 0.1\n",
		"  - metric: output_tok_s_per_gpu\n    concurrency: 8\n    value: 1000\n    tolerance: 0.1\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("suggestion lacks %q:\n%s", want, y)
		}
	}
	cfg := strings.Replace(baseYAML(t), "worker_config:", strings.SplitN(y, "\n", 2)[1]+"worker_config:", 1)
	tc, _ := config.LoadBytes("cfg/disagg/perf/x.yaml", []byte(cfg))
	tc.Resolve(nil, nil)
	for _, p := range tc.Validate() {
		if !p.Warning {
			t.Errorf("suggested references do not validate: %s", p)
		}
	}
	if len(tc.Config.References) != 4 {
		t.Errorf("%d references decoded, want 4", len(tc.Config.References))
	}
}
