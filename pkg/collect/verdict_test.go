package collect

import (
	"math"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/slurm"
)

// TestEveryEndLeavesARow: a test that never measured anything still has one row (for
// the Parquet dataset) with its verdict, reasons and state, and no CSV line.
func TestEveryEndLeavesARow(t *testing.T) {
	spec := &events.JobSpec{TestID: "disagg_perf_x", TestType: "disagg", Category: "perf", Model: "m"}
	for _, ev := range []events.JobCompleted{
		{TestID: "disagg_perf_x", State: events.StateInvalid, Reasons: []string{"x.yaml:3:5: benchmark.concurrency_list: not a number"}},
		{TestID: "disagg_perf_x", State: events.StateSubmitFailed, Reasons: []string{"submission failed: sbatch: invalid partition"}},
		{TestID: "disagg_perf_x", JobID: "7", State: slurm.Cancelled, Reasons: []string{"cancelled by planner cancel"}, LogDir: t.TempDir()},
		{TestID: "disagg_perf_x", JobID: "8", State: slurm.Failed, ExitCode: 1, LogDir: t.TempDir()},
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
