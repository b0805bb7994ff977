package config_test

import (
	"fmt"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// Select the committed debug list on a GB200 cluster, as `planner list` does.
func ExampleSelect() {
	res, err := config.Select(config.Selection{
		ConfigDir: "../../test_configs",
		TestList:  "debug.txt", // found under testlist/ beside the config folder
		Flags:     config.Env{"SLURM_ACCOUNT": "benchmark"},
	}, config.Env{"GPU_TYPE": "GB200_NVL72"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range res.Tests {
		fmt.Println(t.ID, t.Config.Nodes(), "nodes")
	}
	fmt.Println(len(res.Skipped), "skipped,", len(res.Invalid), "invalid")
	// Output:
	// disagg_accuracy_qwen3-235b-a22b-fp4_1k1k_ctx1_gen1_tep4_bs32_eplb0_mtp0_ccb-NIXL 2 nodes
	// disagg_perf_deepseek-r1-fp4_1k1k_ctx1_gen4_tep8_bs32_eplb0_mtp0_ccb-NIXL 9 nodes
	// 0 skipped, 0 invalid
}

// A misspelled key is refused with its position and the key it probably meant.
func ExampleLoadBytes() {
	_, problems := config.LoadBytes("test_configs/disagg/perf/x.yaml", []byte("benchmark:\n  concurency_list: \"1 2\"\n"))
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// test_configs/disagg/perf/x.yaml:2:3: benchmark.concurency_list: unknown key "concurency_list" in benchmark: did you mean "concurrency_list"?
}
