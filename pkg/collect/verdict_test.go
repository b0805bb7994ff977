package collect

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// TestEveryEndLeavesARow: a test that never measured anything still has one row (for
// the Parquet dataset) with its verdict, reasons and state, and no CSV line.
func TestEveryEndLeavesARow(t *testing.T) {
	spec := &events.JobSpec{TestID: "disagg_perf_x", TestType: "disagg", Category: "perf", Model: "m"}
	for _, ev := range []events.JobCompleted{
		{TestID: "disagg_perf_x", State: events.StateInvalid, Reasons: []string{"x.yaml:3:5: benchmark.concurrency_list: not a number"}},
		{TestID: "disagg_perf_x", State: events.StateSubmitFailed, Reasons: []string{"submission failed: sbatch: invalid partition"}},
		{TestID: "disagg_perf_x", JobID: "7", State: scheduler.Cancelled, Reasons: []string{"cancelled by planner cancel"}, LogDir: t.TempDir()},
		{TestID: "disagg_perf_x", JobID: "8", State: scheduler.Failed, ExitCode: 1, LogDir: t.TempDir()},
	} {
		ev.RunID = "r"
		res, rows := Judge(&ev, spec, 0)
		if res.Passed {
			t.Fatalf("%s: passed", ev.State)
		}
		if len(rows) != 1 {
			t.Fatalf("%s: %d rows, want one verdict row", ev.State, len(rows))
		}
		r := rows[0]
		if r.Verdict != "fail" || r.Reasons == "" || r.SlurmState != ev.State || r.Metric != "" || !math.IsNaN(r.Value) || r.RunID != "r" || r.JobID != ev.JobID {
			t.Errorf("%s: row %+v", ev.State, r)
		}
		if recs := results.CSVRecords(rows); len(recs) != 0 {
			t.Errorf("%s: a verdict row became CSV lines %q", ev.State, recs)
		}
	}
}

// The workers' per-concurrency iteration slices become recorded rows (Parquet and the
// event), at the concurrency the client ran, never CSV lines.
func TestIterationRows(t *testing.T) {
	dir := t.TempDir()
	block := "============ Serving Benchmark Result ============\nTotal requests: 4\nSuccessful requests: 4\nFailed requests: 0\n" +
		"Total generated tokens: 40\nMedian TTFT (ms): 10\nMedian E2EL (ms): 100\n==================================================\n"
	os.WriteFile(filepath.Join(dir, "6_bench.log"), []byte("Benchmarking with concurrency 4 ... 4 prompts\n"+block+"Benchmark with concurrency 4 done\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "concurrency_2"), 0o755)
	os.WriteFile(filepath.Join(dir, "concurrency_2", "gen_only_0.txt"), []byte(
		"iter = 1, host_step_time = 12.5ms, num_scheduled_requests: 2, states = {'num_ctx_requests': 0, 'num_ctx_tokens': 0, 'num_generation_tokens': 2}\n"), 0o644)
	spec := &events.JobSpec{TestID: "disagg_perf_x", TestType: "disagg", Category: "perf", Model: "m", NumGenServers: 2, Concurrencies: []int{2}}
	ev := events.JobCompleted{TestID: "disagg_perf_x", JobID: "9", State: scheduler.Completed, LogDir: dir}
	ev.RunID = "r"
	res, rows := Judge(&ev, spec, 0)
	if !res.Passed {
		t.Fatalf("failed: %v", res.Reasons)
	}
	var found bool
	for _, r := range rows {
		if r.Metric == "gen_only_median_step_time" {
			found = true
			if r.Concurrency != 4 || r.Value != 12.5 || r.Unit != "ms" || r.Judged {
				t.Errorf("row %+v", r)
			}
		}
	}
	if !found {
		t.Errorf("no iteration row in %d rows", len(rows))
	}
	for _, rec := range results.CSVRecords(results.CSVRows(rows)) {
		if strings.Contains(strings.Join(rec, ","), "gen_only") {
			t.Errorf("an iteration row became a CSV line: %q", rec)
		}
	}
}

// TestEndsFailWithTheirReasonAndAttempt: a job that ran out of memory, exited non-zero
// or failed on its nodes with no retry left fails with the scheduler's words for it,
// and its rows carry the attempt that ended.
func TestEndsFailWithTheirReasonAndAttempt(t *testing.T) {
	spec := &events.JobSpec{TestID: "disagg_perf_x", TestType: "disagg", Category: "perf", Model: "m"}
	for _, tc := range []struct {
		ev   events.JobCompleted
		want string
	}{
		{events.JobCompleted{JobID: "7", State: scheduler.OutOfMemory, Detail: "OUT_OF_MEMORY", ExitCode: 0, Attempt: 1}, "job 7 ended OUT_OF_MEMORY (exit code 0)"},
		{events.JobCompleted{JobID: "8", State: scheduler.Failed, Detail: "FAILED", ExitCode: 3, Attempt: 1}, "job 8 ended FAILED (exit code 3)"},
		{events.JobCompleted{JobID: "9", State: scheduler.NodeFail, Detail: "NODE_FAIL", Attempt: 3,
			Reasons: []string{"job 9 ended NODE_FAIL on attempt 3; no retry left (--max-retries 2)"}}, "no retry left"},
	} {
		ev := tc.ev
		ev.RunID, ev.TestID, ev.LogDir = "r", spec.TestID, t.TempDir()
		res, rows := Judge(&ev, spec, 0)
		if res.Passed || res.Attempt != ev.Attempt {
			t.Errorf("%s: passed %v, attempt %d", ev.State, res.Passed, res.Attempt)
		}
		found := false
		for _, r := range res.Reasons {
			found = found || strings.Contains(r, tc.want)
		}
		if !found {
			t.Errorf("%s: reasons %q, want one with %q", ev.State, res.Reasons, tc.want)
		}
		for _, r := range rows {
			if r.Attempt != int32(ev.Attempt) || r.Verdict != "fail" {
				t.Errorf("%s: row attempt %d verdict %s, want %d fail", ev.State, r.Attempt, r.Verdict, ev.Attempt)
			}
		}
	}
}
