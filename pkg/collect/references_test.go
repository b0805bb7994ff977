package collect_test

import (
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

func fp(v float64) *float64 { return &v }

// A reference the run cannot meet fails the test with the metric, concurrency, value
// and bound in the reason, in the rows and in the Parquet rows; a generous one passes;
// one beaten by more than its tolerance is flagged as an improvement.
func TestReferencesJudgeTheRun(t *testing.T) {
	judge := func(rs ...events.Reference) (*events.Result, int) {
		spec := &events.JobSpec{TestID: "disagg_perf_x", TestType: "disagg", Category: "perf", GPUType: "GB200",
			Concurrencies: []int{1, 2, 4}, NumGenServers: 2, CtxGPUs: 4, GenGPUs: 4, References: rs}
		start := time.Now().Add(-time.Minute)
		ev := &events.JobCompleted{Header: events.NewHeader("r"), TestID: spec.TestID, JobID: "7", State: scheduler.Completed,
			Start: start, End: start.Add(time.Minute), LogDir: "../metrics/testdata/jobs/disagg_ok"}
		res, rows := collect.Judge(ev, spec, 0)
		failing := 0
		for _, r := range rows {
			if r.Verdict == "fail" {
				failing++
			}
		}
		return res, failing
	}
	res, failing := judge()
	if !res.Passed || failing != 0 {
		t.Fatalf("without references the log passes: %v %v", res.Passed, res.Reasons)
	}

	res, failing = judge(events.Reference{Metric: "SERVER_MEDIAN_TTFT", Concurrency: 4, Max: fp(150)})
	if res.Passed || res.RefVerdict != "regression" || failing == 0 {
		t.Fatalf("a broken bound passed: %+v", res)
	}
	if got := strings.Join(res.Reasons, "; "); !strings.Contains(got, "SERVER_MEDIAN_TTFT at concurrency 4 = 191.3, above its maximum 150") {
		t.Errorf("reasons %q", got)
	}
	marked := 0
	for _, r := range res.Rows {
		if r.RefVerdict != "" {
			marked++
			if r.Metric != "SERVER_MEDIAN_TTFT" || r.Concurrency != 4 || r.RefBound == nil || *r.RefBound != 150 {
				t.Errorf("row %+v", r)
			}
		}
	}
	if marked != 1 {
		t.Errorf("%d rows carry a reference verdict, want 1", marked)
	}

	// Generous bounds on every concurrency pass; a derived metric's value beaten by far
	// is an improvement.
	res, _ = judge(events.Reference{Metric: "SERVER_MEDIAN_TTFT", Max: fp(10000)},
		events.Reference{Metric: "output_tok_s_per_gpu", Concurrency: 8, Value: fp(100), Tolerance: 0.05})
	if !res.Passed || res.RefVerdict != "improvement" || len(res.Improvements) != 1 || !strings.Contains(res.Improvements[0], "output_tok_s_per_gpu at concurrency 8") {
		t.Fatalf("generous references: passed %v, %s, %q, reasons %q", res.Passed, res.RefVerdict, res.Improvements, res.Reasons)
	}
	// Another GPU type's reference does not apply; insufficient history never fails.
	res, _ = judge(events.Reference{Metric: "SERVER_MEDIAN_TTFT", GPU: "H100", Max: fp(1)},
		events.Reference{Metric: "OUTPUT_THROUGHPUT", Insufficient: true, Source: "insufficient data: 0 passing runs"})
	if !res.Passed || res.RefVerdict != "insufficient data" {
		t.Fatalf("H100 bound or insufficient history failed the test: %+v", res)
	}
	// A reference for a concurrency the test never reached is a regression.
	res, _ = judge(events.Reference{Metric: "SERVER_MEDIAN_TTFT", Concurrency: 256, Max: fp(1e9)})
	if res.Passed || !strings.Contains(strings.Join(res.Reasons, ";"), "at concurrency 256: the test reported no value") {
		t.Fatalf("missing value passed: %+v", res.Reasons)
	}
}
