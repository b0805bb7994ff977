package config

import "testing"

const refsTail = "    max_seq_len: 2251\n    cache_transceiver_config:\n      backend: NIXL\n"

func refsCase(name, refs, field, msg, at string) problemCase {
	return problemCase{name: name, old: refsTail, new: refsTail + "references:\n" + refs, field: field, msg: msg, at: at}
}

func TestReferencesValidation(t *testing.T) {
	checkProblemCases(t, []problemCase{
		refsCase("valid bounds and values", "  - metric: SERVER_MEDIAN_TTFT\n    gpu: GB200\n    concurrency: 16\n    max: 2000\n"+
			"  - metric: output_tok_s_per_gpu\n    value: 1450\n    tolerance: 0.05\n"+
			"  - metric: OUTPUT_THROUGHPUT\n    baseline: {last: 5}\n    tolerance: 0.1\n", "", "", ""),
		refsCase("negative tolerance", "  - metric: output_tok_s_per_gpu\n    value: 1450\n    tolerance: -0.05\n",
			"references[0].tolerance", "must be 0 or more", "    tolerance: -0.05"),
		refsCase("percent for a fraction", "  - metric: output_tok_s_per_gpu\n    value: 1450\n    tolerance: 50\n",
			"references[0].tolerance", "write a fraction", "    tolerance: 50"),
		refsCase("value without tolerance", "  - metric: output_tok_s_per_gpu\n    value: 1450\n",
			"references[0].tolerance", "is required with value", "  - metric: output_tok_s_per_gpu"),
		refsCase("unknown metric", "  - metric: SERVER_MEDIAN_TFTT\n    max: 1\n",
			"references[0].metric", `did you mean "SERVER_MEDIAN_TTFT"`, "  - metric: SERVER_MEDIAN_TFTT"),
		refsCase("unknown key", "  - metric: SERVER_MEDIAN_TTFT\n    maximum: 1\n",
			"references[0].maximum", `did you mean "max"`, "    maximum: 1"),
		refsCase("no bound", "  - metric: SERVER_MEDIAN_TTFT\n    gpu: GB200\n",
			"references[0]", "needs min, max, value or baseline", "  - metric: SERVER_MEDIAN_TTFT"),
		refsCase("two kinds", "  - metric: SERVER_MEDIAN_TTFT\n    max: 5\n    value: 3\n    tolerance: 0.1\n",
			"references[0]", "one kind of reference", "  - metric: SERVER_MEDIAN_TTFT"),
		refsCase("min above max", "  - metric: OUTPUT_THROUGHPUT\n    min: 5\n    max: 3\n",
			"references[0].min", "above max", "    min: 5"),
		refsCase("unknown gpu", "  - metric: OUTPUT_THROUGHPUT\n    gpu: TPU9\n    min: 5\n",
			"references[0].gpu", "unknown GPU type", "    gpu: TPU9"),
		refsCase("baseline with both", "  - metric: OUTPUT_THROUGHPUT\n    baseline: {run: r1, last: 3}\n    tolerance: 0.1\n",
			"references[0].baseline", "one of run", "    baseline: {run: r1, last: 3}"),
		refsCase("string for a number", "  - metric: OUTPUT_THROUGHPUT\n    min: lots\n",
			"references[0].min", "", "    min: lots"),
		{name: "concurrency never run", old: refsTail, new: refsTail + "references:\n  - metric: OUTPUT_THROUGHPUT\n    concurrency: 3\n    min: 1\n",
			field: "references[0].concurrency", msg: "never applies", at: "    concurrency: 3", warning: true},
	})
}
