package results_test

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/disaggbench/disaggbench/pkg/results"
)

// A collector writes one test's rows exactly once, even when it crashes and the job's
// completion is delivered again: the claim is stored (here in a variable; in the pipeline
// in a KV bucket) before and after the append.
func ExampleCSVAppender_AppendOnce() {
	out, _ := os.MkdirTemp("", "results")
	defer os.RemoveAll(out)
	csvPath := filepath.Join(out, results.CSVFile)
	start := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	rows := []results.Row{{
		RunID: "run1", TestID: "disagg_perf_model_1k1k", Category: "perf",
		Model: "model", Precision: "fp4", Concurrency: 8, Metric: "SERVER_MEDIAN_TTFT",
		Value: 123.4, Unit: "ms", Passed: true, Verdict: "pass",
		Start: start, End: start.Add(90 * time.Second),
	}}

	appender := results.NewCSVAppender(csvPath)
	payload := results.EncodeCSV(rows)
	claim, _ := appender.Prepare(payload) // store it before appending
	for attempt := range 2 {              // the second attempt is a redelivery
		batch := []results.CSVAppend{{Payload: payload, Claim: claim}}
		if err := appender.AppendOnce(batch); err != nil {
			fmt.Println(err)
			return
		}
		claim = batch[0].Done // store it after appending
		fmt.Printf("attempt %d wrote=%v\n", attempt+1, batch[0].Wrote)
	}
	if _, err := results.WriteParquet(filepath.Join(out, results.ResultsDir), "run1", rows[0].TestID, rows); err != nil {
		fmt.Println(err)
		return
	}
	data, _ := os.ReadFile(csvPath)
	fmt.Print(string(data))
	ds, _ := results.ReadDataset(filepath.Join(out, results.ResultsDir))
	fmt.Println(len(ds), "parquet row,", ds[0].Metric, ds[0].Value)
	// Output:
	// attempt 1 wrote=true
	// attempt 2 wrote=false
	// network_name,network_hash,sm_clk,mem_clk,gpu_idx,perf_case_name,test_name,original_test_name,perf_metric,total_time__sec,start_timestamp,end_timestamp,state,command,threshold,absolute_threshold,metric_type
	// disagg_perf_model_1k1k_con:8,test_benchmark[disagg_perf_model_1k1k]_con:8,0,0,,test_benchmark[disagg_perf_model_1k1k]_con:8,test_benchmark[disagg_perf_model_1k1k]_con:8,test_benchmark[disagg_perf_model_1k1k]_con:8,123.4,90.0,2026-11-27 01:00:00,2026-11-27 01:01:30,valid,disagg_benchmark --model=model --fp4 --concurrency=8,,,SERVER_MEDIAN_TTFT
	// 1 parquet row, SERVER_MEDIAN_TTFT 123.4
}
