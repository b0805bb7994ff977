package config

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestValidateRules(t *testing.T) {
	const mtp3 = "      max_tokens_in_buffer: 8448\n"
	checkProblemCases(t, []problemCase{
		{"mtp tokens", mtp3, mtp3 + "    speculative_config:\n      decoding_type: MTP\n      num_nextn_predict_layers: 3\n",
			"worker_config.gen.max_num_tokens", "must be at least max_batch_size * (mtp + 1) = 32 * 4 = 128, got 32", "    max_num_tokens: 32", false},
		{"mtp tokens above", "    max_batch_size: 32\n    max_num_tokens: 32\n", "    max_batch_size: 32\n    max_num_tokens: 256\n    speculative_config:\n      decoding_type: MTP\n      num_nextn_predict_layers: 3\n",
			"worker_config.gen.max_num_tokens", "is above max_batch_size * (mtp + 1) = 32 * 4 = 128, got 256", "    max_num_tokens: 256", true},
		{"streaming false", "  streaming: true", "  streaming: false", "benchmark.streaming", "must be true", "", false},
		{"streaming missing", "  streaming: true\n", "", "benchmark.streaming", "is required and must be true", "benchmark:", false},
		{"ctx seq len", "    max_num_tokens: 4608\n    max_seq_len: 2251", "    max_num_tokens: 4608\n    max_seq_len: 2048", "worker_config.ctx.max_seq_len", "2048 must exceed input_length + output_length = 2048", "", false},
		{"gen seq len", "    max_num_tokens: 32\n    max_seq_len: 2251", "    max_num_tokens: 32\n    max_seq_len: 1000", "worker_config.gen.max_seq_len", "must exceed", "", false},
		{"concurrency over batch", `"1 2 4 8 16 32"`, `"1 2 64"`, "benchmark.concurrency_list", "concurrency 64 exceeds gen max_batch_size 32 = 32", "", false},
		{"concurrency entry line", `"1 2 4 8 16 32"`, "\n    - 1\n    - 64", "benchmark.concurrency_list[1]", "concurrency 64 exceeds", "", false},
		{"concurrency zero", `"1 2 4 8 16 32"`, `"0 2"`, "benchmark.concurrency_list", "must be > 0, got 0", "", false},
		{"concurrency negative", `"1 2 4 8 16 32"`, "[1, -2]", "benchmark.concurrency_list[1]", "must be > 0, got -2", "", false},
		{"concurrency empty", `"1 2 4 8 16 32"`, `""`, "benchmark.concurrency_list", "at least one", "", false},
		{"concurrency twice", `"1 2 4 8 16 32"`, `[1, 2, 2]`, "benchmark.concurrency_list[2]", "listed twice", "", true},
		{"mode", "  mode: e2e", "  mode: ctx_only", "benchmark.mode", `"ctx_only" is not one of e2e, gen_only, gen_only_no_context`, "", false},
		{"backend case", "      backend: NIXL\n      max_tokens_in_buffer", "      backend: nixl\n      max_tokens_in_buffer", "worker_config.gen.cache_transceiver_config.backend", `"nixl" must be written "NIXL"`, "      backend: nixl", false},
		{"backend unknown", "      backend: NIXL\n      max_tokens_in_buffer", "      backend: MPI\n      max_tokens_in_buffer", "worker_config.gen.cache_transceiver_config.backend", "not one of UCX, NIXL, DEFAULT", "      backend: MPI", false},
		{"job time", `  job_time: "02:00:00"`, `  job_time: "2h"`, "slurm.job_time", `job time "2h"`, "", false},
		{"job time missing", "  job_time: \"02:00:00\"\n", "", "slurm.job_time", "is required", "slurm:", false},
		{"partition space", "  partition: batch", `  partition: "my partition"`, "slurm.partition", "' ' is not allowed", "", false},
		{"account semicolon", "  account: benchmark", `  account: "a;b"`, "slurm.account", "';' is not allowed", "", false},
		{"job name dollar", "  account: benchmark", "  account: benchmark\n  job_name: job$name", "slurm.job_name", "'$' is not allowed", "", false},
		{"extra args", `  extra_args: "--gres=gpu:4"`, `  extra_args: "--gres=gpu:4; reboot"`, "slurm.extra_args", "';'", "", false},
		{"extra args no dash", `  extra_args: "--gres=gpu:4"`, `  extra_args: "--gres gpu:4"`, "slurm.extra_args", "not an option", "", false},
		{"gpus per node", "  gpus_per_node: 4", "  gpus_per_node: 3", "worker_config.gen.tensor_parallel_size", "tp*pp*cp = 8 GPUs, which does not fit gpus_per_node 3", "    tensor_parallel_size: 8", false},
		{"moe ep divides", "    moe_expert_parallel_size: 8", "    moe_expert_parallel_size: 3", "worker_config.gen.moe_expert_parallel_size", "3 must divide tensor_parallel_size 8", "", false},
		{"missing model name", "  model_name: deepseek-r1-fp4\n", "", "metadata.model_name", "is required", "metadata:", false},
		{"missing gen servers", "  num_gen_servers: 4\n", "", "hardware.num_gen_servers", "is required", "hardware:", false},
		{"zero tp", "    tensor_parallel_size: 4\n", "    tensor_parallel_size: 0\n", "worker_config.ctx.tensor_parallel_size", "must be > 0, got 0", "", false},
		{"hardware gpu type", "  num_gen_servers: 4\n", "  num_gen_servers: 4\n  gpu_type: A100\n", "hardware.gpu_type", `unknown GPU type "A100"`, "  gpu_type: A100", false},
		{"unknown gpu", "  supported_gpus: [GB200]", "  supported_gpus: [GB200, A100]", "metadata.supported_gpus[1]", `unknown GPU type "A100"`, "", false},
		{"container image", "  container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc2\n", "", "environment.container_image", "is required (or set CONTAINER_IMAGE)", "environment:", false},
		{"benchmark client", "  streaming: true\n", "  streaming: true\n  client: go\n", "benchmark.client", `"go"`, "", false},
		{"env assignments", "  model_path: /models/DeepSeek-R1-0528-FP4-v2\n", "  model_path: /models/DeepSeek-R1-0528-FP4-v2\n  worker_env_var: \"A=1 B\"\n", "environment.worker_env_var", `"B" is not a NAME=value`, "", false},
		{"env newline", "  model_path: /models/DeepSeek-R1-0528-FP4-v2\n", "  model_path: /models/DeepSeek-R1-0528-FP4-v2\n  server_env_var: \"A=1\\nB=2\"\n", "environment.server_env_var", "newlines", "", false},
		{"model path shell", "  model_path: /models/DeepSeek-R1-0528-FP4-v2\n", "  model_path: /models/$(reboot)\n", "environment.model_path", "'$'", "", false},
		{"profile range", "hardware:\n", "profiling:\n  gen_profile_range: \"30-10\"\nhardware:\n", "profiling.gen_profile_range", "starts after it ends", "gen_profile_range", false},
		{"lookbehind pattern", "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    extractor_pattern: '(?<=TTFT)\\s+([0-9.]+) (\\d+)'\n", "benchmark.metrics.extractor_pattern", "extractor pattern", "", false},
		{"formula metric name", "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    extractor_pattern: 'TTFT:\\s+([0-9.]+) E2EL:\\s+([0-9.]+) c=(\\d+)'\n    metric_names: [\"=cmd|' /C calc'!A0\", SERVER_MEDIAN_E2EL]\n", "benchmark.metrics.metric_names[0]", "run as a formula", "", false},
		{"group count", "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    extractor_pattern: 'TTFT:\\s+([0-9.]+)'\n", "benchmark.metrics.extractor_pattern", "has 1 groups; a perf pattern needs one per metric name (2) plus the concurrency last", "", false},
		{"metrics log escape", "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    log_file: ../../etc/passwd\n", "benchmark.metrics.log_file", "inside the job's log folder", "", false},
		{"benchmark ratio", "  multi_round: 8\n", "  multi_round: 8\n  benchmark_ratio: 1.5\n", "benchmark.benchmark_ratio", "between 0 and 1", "", false},
		{"benchmark type", "  precision: fp4\n", "  precision: fp4\n  benchmark_type: 8k1k\n", "metadata.benchmark_type", `"8k1k" does not match`, "", true},
	})
}

func TestValidateReportsAllAtOnce(t *testing.T) {
	text := edit(t, baseYAML(t), "  streaming: true", "  streaming: false")
	text = edit(t, text, "  mode: e2e", "  mode: fast")
	text = edit(t, text, "  partition: batch", "  partition: a;b")
	_, ps := loadValidate(t, "x.yaml", text)
	fields := map[string]bool{}
	for _, p := range errorsOnly(ps) {
		fields[p.Field] = true
	}
	for _, f := range []string{"benchmark.streaming", "benchmark.mode", "slurm.partition"} {
		if !fields[f] {
			t.Errorf("missing %s in:%s", f, dump(ps))
		}
	}
	for i := 1; i < len(ps); i++ {
		if ps[i-1].Line > ps[i].Line {
			t.Errorf("problems not sorted by line:%s", dump(ps))
		}
	}
}

func TestAttentionDPConcurrency(t *testing.T) {
	text := edit(t, baseYAML(t), "    enable_attention_dp: false", "    enable_attention_dp: true")
	text = edit(t, text, `"1 2 4 8 16 32"`, `"256"`)
	_, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) {
		t.Fatalf("256 <= 32*8 with attention DP refused:%s", dump(ps))
	}
	text = edit(t, text, `"256"`, `"257"`)
	_, ps = loadValidate(t, "x.yaml", text)
	if len(errorsOnly(ps)) != 1 || !strings.Contains(ps[0].Message, "32 * 8 (attention DP) = 256") {
		t.Fatalf("257 > 256:%s", dump(ps))
	}
}

func TestFileNameWarnings(t *testing.T) {
	name := "deepseek-r1-fp4_8k1k_ctx2_gen2_dep8_bs64_eplb288_mtp3_ccb-UCX.yaml"
	_, ps := loadValidate(t, name, baseYAML(t))
	if HasErrors(ps) {
		t.Fatalf("file name mismatches must only warn:%s", dump(ps))
	}
	want := []string{"benchmark.input_length", "hardware.num_ctx_servers", "hardware.num_gen_servers",
		"worker_config.gen.enable_attention_dp", "worker_config.gen.max_batch_size", "worker_config.gen.moe_config",
		"worker_config.gen.speculative_config", "worker_config.gen.cache_transceiver_config"}
	got := map[string]bool{}
	for _, p := range ps {
		got[p.Field] = true
	}
	for _, f := range want {
		if !got[f] {
			t.Errorf("no warning for %s in:%s", f, dump(ps))
		}
	}
	// Tokens between ctx{N} and gen{M} describe the ctx workers; ccb-X-suffix is backend X.
	_, ps = loadValidate(t, "m_1k1k_ctx1_tep4_bs4_gen4_tep8_bs32_eplb0_mtp0_ccb-NIXL-python.yaml", baseYAML(t))
	if len(ps) != 1 || ps[0].Field != "worker_config.ctx.enable_attention_dp" {
		t.Errorf("ctx tokens:%s", dump(ps))
	}
	// The matching name warns about nothing.
	_, ps = loadValidate(t, "deepseek-r1-fp4_1k1k_ctx1_gen4_tep8_bs32_eplb0_mtp0_ccb-NIXL.yaml", baseYAML(t))
	if len(ps) != 0 {
		t.Errorf("matching name warned:%s", dump(ps))
	}
}

func TestAccuracyCategory(t *testing.T) {
	load := func(text string) []Problem {
		tt, _ := LoadBytes("cfg/disagg/accuracy/x.yaml", []byte(text))
		tt.Resolve(nil, nil)
		return tt.Validate()
	}
	ps := load(baseYAML(t))
	for _, f := range []string{"accuracy.enable_accuracy_test", "accuracy.tasks", "metadata.accuracy.datasets"} {
		found := false
		for _, p := range ps {
			found = found || p.Field == f
		}
		if !found {
			t.Errorf("accuracy test without %s accepted:%s", f, dump(ps))
		}
	}
	good := baseYAML(t) + accuracySections
	good = edit(t, good, "  supported_gpus: [GB200]\n", "  supported_gpus: [GB200]\n  accuracy:\n    datasets:\n      - dataset_name: gsm8k\n        expected_value: 0.9454\n        filter_type: flexible-extract\n")
	if ps := load(good); len(ps) != 0 {
		t.Fatalf("valid accuracy test:%s", dump(ps))
	}
	for _, tc := range []struct{ old, new, field, msg string }{
		{"        filter_type: flexible-extract\n", "        filter_type: loose\n", "metadata.accuracy.datasets[0].filter_type", "not one of"},
		{"        expected_value: 0.9454\n", "", "metadata.accuracy.datasets[0].expected_value", "is required"},
		{"      - dataset_name: gsm8k\n", "      - name: gsm8k\n", "metadata.accuracy.datasets[0].name", `did you mean "dataset_name"`},
		{"        filter_type: flexible-extract\n", "        filter_type: flexible-extract\n        sigma: 0.5\n", "metadata.accuracy.datasets[0].sigma", "looks like a fraction"},
		{"        filter_type: flexible-extract\n", "        filter_type: flexible-extract\n        alpha: 1.5\n", "metadata.accuracy.datasets[0].alpha", "between 0 and 1"},
		{"        filter_type: flexible-extract\n", "        filter_type: flexible-extract\n        threshold_type: absolute\n", "metadata.accuracy.datasets[0].threshold_type", "not one of hypothesis_test"},
		{"  enable_accuracy_test: true\n", "  enable_accuracy_test: false\n", "accuracy.enable_accuracy_test", "must be true"},
	} {
		ps := load(edit(t, good, tc.old, tc.new))
		found := false
		for _, p := range ps {
			found = found || (p.Field == tc.field && strings.Contains(p.Message, tc.msg))
		}
		if !found {
			t.Errorf("%s: want %q in:%s", tc.field, tc.msg, dump(ps))
		}
	}
}

func TestMetricsInBothPlaces(t *testing.T) {
	text := edit(t, baseYAML(t), "  supported_gpus: [GB200]\n", "  supported_gpus: [GB200]\n  metrics:\n    log_file: a.log\n")
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) || tt.Metrics().LogFile != "a.log" {
		t.Fatalf("metadata.metrics alone:%s", dump(ps))
	}
	text = edit(t, text, "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    log_file: b.log\n")
	_, ps = loadValidate(t, "x.yaml", text)
	want := lineOf(t, text, "  metrics:\n    log_file: b.log")
	for _, p := range ps {
		if p.Field == "benchmark.metrics" && strings.Contains(p.Message, "keep one") && p.Line == want {
			return
		}
	}
	t.Fatalf("both metrics accepted:%s", dump(ps))
}

// TestSeedStyleConfig reads a config written the way the seed framework commits them:
// placeholders for site values, unquoted job_time and concurrency_list, null options.
func TestSeedStyleConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/seed_style.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := "cfg/disagg/perf/Qwen3-235B-A22B-FP4_1k1k_ctx1_gen1_dep16_bs64_eplb0_mtp3_ccb-NIXL.yaml"
	tt, _ := LoadBytes(path, data)
	tt.Resolve(nil, nil)
	ps := tt.Validate()
	want := []string{"slurm.partition", "slurm.account", "benchmark.dataset_file", "environment.container_mount",
		"environment.container_image", "environment.model_path", "environment.work_dir"}
	var got []string
	for _, p := range ps {
		if !strings.Contains(p.Message, "is a placeholder: set ") {
			t.Errorf("unexpected problem: %s", p)
		}
		got = append(got, p.Field)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("placeholder fields = %v, want %v", got, want)
	}
	env := Env{"SLURM_PARTITION": "batch", "SLURM_ACCOUNT": "benchmark", "CONTAINER_IMAGE": "img:1", "CONTAINER_MOUNT": "/a:/a",
		"MODEL_DIR": "/models", "WORK_DIR": "/w", "DATASET_DIR": "/datasets"}
	tt, _ = LoadBytes(path, data)
	tt.Resolve(nil, env)
	if ps := tt.Validate(); len(ps) != 0 {
		t.Fatalf("with the environment set:%s", dump(ps))
	}
	c := tt.Config
	if c.Slurm.JobTime != "02:00:00" || !slices.Equal(c.Benchmark.ConcurrencyList, Concurrencies{512, 1024}) ||
		c.Environment.ModelPath != "/models/Qwen3-235B-A22B-FP4" || c.Benchmark.DatasetFile != "/datasets" {
		t.Errorf("resolved: %+v %+v", c.Slurm, c.Environment)
	}
	if v, ok := c.WorkerConfig.Ctx.Extra["cuda_graph_config"]; !ok || v != nil {
		t.Errorf("cuda_graph_config: null must pass through as null, got %#v, %v", v, ok)
	}
}

// TestAccuracyTaskNames reads the seed's older accuracy form: tasks as names with the
// model and its arguments beside them, as its stress configs write it.
func TestAccuracyTaskNames(t *testing.T) {
	text := baseYAML(t) + "accuracy:\n  enable_accuracy_test: true\n  model: local-completions\n  tasks: gsm8k,mmlu\n  model_args_extra: num_concurrent=512,max_retries=3\n"
	text = edit(t, text, "  supported_gpus: [GB200]\n", "  supported_gpus: [GB200]\n  config_index: 0\n  accuracy:\n    datasets:\n    - dataset_name: gsm8k\n      expected_value: 0.9454\n    - dataset_name: mmlu\n      expected_value: 0.87\n")
	tt, _ := LoadBytes("cfg/disagg/stress/x.yaml", []byte(text))
	tt.Resolve(nil, nil)
	if ps := tt.Validate(); len(ps) != 0 {
		t.Fatalf("problems:%s", dump(ps))
	}
	for _, name := range []string{"gsm8k", "mmlu"} {
		task, ok := tt.Config.Accuracy.Tasks[name]
		if !ok || task.Model != "local-completions" || task.ModelArgsExtra != "num_concurrent=512,max_retries=3" {
			t.Errorf("task %s = %+v, %v", name, task, ok)
		}
	}
	if tt.Sources["accuracy.tasks.gsm8k.model"] != "accuracy.model" {
		t.Errorf("sources = %v", tt.Sources)
	}
}

func TestMissingSections(t *testing.T) {
	text := baseYAML(t)
	i, j := strings.Index(text, "hardware:"), strings.Index(text, "environment:")
	text = text[:i] + text[j:]
	text = edit(t, text, "  ctx:\n", "  ctxx:\n")
	_, ps := loadValidate(t, "x.yaml", text)
	var fields []string
	for _, p := range errorsOnly(ps) {
		fields = append(fields, p.Field)
	}
	for _, want := range []string{"hardware", "worker_config.ctx", "worker_config.ctxx"} {
		if !slices.Contains(fields, want) {
			t.Errorf("no problem for %s in:%s", want, dump(ps))
		}
	}
	for _, f := range fields {
		if strings.HasPrefix(f, "hardware.") || strings.HasPrefix(f, "worker_config.ctx.") {
			t.Errorf("field problem %s under a missing section:%s", f, dump(ps))
		}
	}
}

func TestUnsafeTestID(t *testing.T) {
	for _, name := range []string{"a b.yaml", "x;reboot.yaml", "$(id).yaml"} {
		_, ps := loadValidate(t, name, baseYAML(t))
		if !HasErrors(ps) || !strings.Contains(ps[0].Message, "may only hold letters") || ps[0].Line != 1 {
			t.Errorf("%s:%s", name, dump(ps))
		}
	}
}

// TestUpstreamHardwareGPUType: upstream's configs carry hardware.gpu_type; a known
// type loads and validates without a problem on that field.
func TestUpstreamHardwareGPUType(t *testing.T) {
	text := edit(t, baseYAML(t), "  num_gen_servers: 4\n", "  num_gen_servers: 4\n  gpu_type: GB200\n")
	tc, ps := loadValidate(t, "x.yaml", text)
	for _, p := range ps {
		if strings.HasPrefix(p.Field, "hardware") {
			t.Errorf("problem %s", p.String())
		}
	}
	if HasErrors(ps) {
		t.Fatalf("errors: %v", ps)
	}
	if tc.Config.Hardware.GPUType != "GB200" {
		t.Errorf("gpu_type = %q", tc.Config.Hardware.GPUType)
	}
}

// benchmark.env_var loads in upstream's current shape (a mapping) and in the older
// "K=V K=V" string; both give the same map. A bad name is an error naming its line.
func TestBenchmarkEnvVarForms(t *testing.T) {
	for _, form := range []string{
		"  env_var:\n    TLLM_X: a,b\n    N: 3\n",
		"  env_var: \"TLLM_X=a,b N=3\"\n",
	} {
		text := edit(t, baseYAML(t), "  streaming: true\n", "  streaming: true\n"+form)
		tc, ps := loadValidate(t, "x.yaml", text)
		if HasErrors(ps) {
			t.Fatalf("%q: %s", form, dump(ps))
		}
		if got := tc.Config.Benchmark.EnvVar; len(got) != 2 || got["TLLM_X"] != "a,b" || got["N"] != "3" {
			t.Errorf("%q: env_var = %q", form, got)
		}
	}
	for _, c := range []struct{ form, field string }{
		{"  env_var: \"1BAD=x\"\n", "benchmark.env_var"},
		{"  env_var:\n    1BAD: x\n", "benchmark.env_var.1BAD"},
		{"  env_var: [A]\n", "benchmark.env_var"},
	} {
		text := edit(t, baseYAML(t), "  streaming: true\n", "  streaming: true\n"+c.form)
		_, ps := loadValidate(t, "x.yaml", text)
		var found bool
		for _, p := range errorsOnly(ps) {
			if p.Field == c.field && p.Line == lineOf(t, text, "env_var") || p.Field == c.field && p.Line == lineOf(t, text, "1BAD") {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: want an error on %s at its line, got %s", c.form, c.field, dump(ps))
		}
	}
}
