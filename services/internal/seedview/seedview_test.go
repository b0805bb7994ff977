package seedview

import (
	"bytes"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/submit"
)

// The view is the seed framework's, to the byte: its banner, each batch's range and each
// job id, with the notices a run of 12 tests in batches of 3 gives.
func TestViewIsTheSeeds(t *testing.T) {
	var out bytes.Buffer
	show := New(&out)
	show(submit.RunAccepted{RunID: "r1", BatchSize: 3, Policy: "sliding", Tests: 12, Batches: 4})
	show(submit.BatchStarted{RunID: "r1", Batch: 3, From: 9, To: 12})
	show(submit.JobSubmitted{RunID: "r1", TestID: "disagg_perf_t00", JobID: "1001", Pos: 1, Of: 3})
	show(submit.NotSubmitted{RunID: "r1", TestID: "disagg_perf_t01", Reason: "sbatch: error: invalid partition"})
	rule := strings.Repeat("=", 70)
	want := rule + "\nBatch Manager Initialized (run r1)\nBatch size: 3 jobs per batch\nPolicy: sliding\n" + rule +
		"\n\nTotal test configs: 12\nTotal batches: 4\n\n" +
		rule + "\nSubmitting Batch 3\nRange: [9:12] (3 jobs)\n" + rule + "\n\n" +
		"  [  1/3] Job 1001 <- disagg_perf_t00\n" +
		"  [  x] disagg_perf_t01 not submitted: sbatch: error: invalid partition\n"
	if out.String() != want {
		t.Errorf("view:\n%s\nwant:\n%s", out.String(), want)
	}
	if got := Text(submit.RunAccepted{RunID: "r2", Tests: 5, Batches: 1}); !strings.Contains(got, "Batch size: no limit\n") {
		t.Errorf("a run without a batch size: %q", got)
	}
}
