package plan

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// Baselines come from the results dataset: one named run's value, or the median of the
// last N passing runs of the test on its GPU type, per concurrency; too little history
// is marked insufficient rather than failing.
func TestBaselineReferences(t *testing.T) {
	root := filepath.Join(t.TempDir(), "results")
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	write := func(run, test, gpu, verdict string, day int, ttft4, ttft8 float64) {
		var rows []results.Row
		for c, v := range map[int64]float64{4: ttft4, 8: ttft8} {
			rows = append(rows, results.Row{RunID: run, TestID: test, GPUType: gpu, Verdict: verdict, Concurrency: c,
				Metric: "SERVER_MEDIAN_TTFT", Value: v, Judged: true, End: t0.Add(time.Duration(day) * 24 * time.Hour),
				OutputTokSPerGPU: results.Float(v * 10)})
		}
		if _, err := results.WriteParquet(root, run, test, rows); err != nil {
			t.Fatal(err)
		}
	}
	// Oldest to newest; the failed run, the other test and the other GPU never count.
	for day, v := range []float64{100, 200, 110, 120, 130} {
		write(fmt.Sprintf("r%d", day), "t", "GB200", "pass", day, v, v*2)
	}
	write("r9", "t", "GB200", "fail", 9, 1, 1)
	write("r8", "other", "GB200", "pass", 8, 5, 5)
	write("r7", "t", "H100", "pass", 7, 7, 7)

	tol := 0.1
	spec := &events.JobSpec{TestID: "t", GPUType: "GB200"}
	hist := &history{root: root}
	got, err := resolveReferences([]config.Reference{
		{Metric: "SERVER_MEDIAN_TTFT", Baseline: &config.Baseline{Last: 3}, Tolerance: &tol},
		{Metric: "output_tok_s_per_gpu", Concurrency: 4, Baseline: &config.Baseline{Run: "r1"}, Tolerance: &tol},
		{Metric: "SERVER_MEDIAN_TTFT", Baseline: &config.Baseline{Last: 6}, Tolerance: &tol},
		{Metric: "SERVER_MEDIAN_TTFT", Max: results.Float(500)},
	}, spec, hist)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range got {
		v := "-"
		if r.Value != nil {
			v = fmt.Sprint(*r.Value)
		}
		lines = append(lines, fmt.Sprintf("%s c%d value %s tol %v insufficient %v (%s)", r.Metric, r.Concurrency, v, r.Tolerance, r.Insufficient, r.Source))
	}
	want := []string{
		// The last three passing runs are r4, r3, r2: medians 120 and 240.
		"SERVER_MEDIAN_TTFT c4 value 120 tol 0.1 insufficient false (median of the last 3 passing runs)",
		"SERVER_MEDIAN_TTFT c8 value 240 tol 0.1 insufficient false (median of the last 3 passing runs)",
		"output_tok_s_per_gpu c4 value 2000 tol 0.1 insufficient false (run r1)",
		"SERVER_MEDIAN_TTFT c4 value - tol 0.1 insufficient true (insufficient data: 5 passing run(s) on GB200, baseline wants 6)",
		"SERVER_MEDIAN_TTFT c8 value - tol 0.1 insufficient true (insufficient data: 5 passing run(s) on GB200, baseline wants 6)",
		"SERVER_MEDIAN_TTFT c0 value - tol 0 insufficient false ()",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got[5].Max == nil || *got[5].Max != 500 {
		t.Errorf("max bound lost: %+v", got[5])
	}
}
