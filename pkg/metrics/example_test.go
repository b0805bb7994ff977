package metrics_test

import (
	"fmt"

	"github.com/disaggbench/disaggbench/pkg/metrics"
)

func ExampleJudge() {
	res := metrics.Judge("testdata/jobs/disagg_failed", metrics.Input{
		TestType: "disagg", Category: "perf",
		Concurrencies: []int{1, 2, 4}, NumGenServers: 2, JobState: "COMPLETED",
	})
	fmt.Println("valid:", res.Valid)
	for _, r := range res.Reasons {
		fmt.Println(r)
	}
	fmt.Println(res.Perf[0].Concurrency, res.Perf[0].Metric, res.Perf[0].Value, res.Perf[0].Unit)
	// Output:
	// valid: false
	// concurrency 2 (6_bench.log:137): 3 failed requests (at most 0 allowed)
	// concurrency 2 (6_bench.log:137): successful requests 37 != total requests 40
	// 1 SERVER_MEDIAN_TTFT 180 ms
}

func ExampleDataset_Threshold() {
	d := metrics.DatasetDefaults("gsm8k")
	d.Expected = 0.9454
	fmt.Printf("%.4f %v %v\n", d.Threshold(), d.Pass(0.9401), d.Pass(0.9012))
	// Output: 0.9134 true false
}
