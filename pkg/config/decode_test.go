package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestBaseIsValid(t *testing.T) {
	_, ps := loadValidate(t, "base.yaml", baseYAML(t))
	if len(ps) != 0 {
		t.Fatalf("base config has problems:%s", dump(ps))
	}
}

func TestDecodeProblems(t *testing.T) {
	checkProblemCases(t, []problemCase{
		{"misspelled key suggests", "  concurrency_list:", "  concurency_list:", "benchmark.concurency_list", `did you mean "concurrency_list"`, "", false},
		{"unknown top-level section", "hardware:\n", "hardwre:\n", "hardwre", `did you mean "hardware"`, "", false},
		{"unknown key far from any", "  job_time: \"02:00:00\"\n", "  job_time: \"02:00:00\"\n  zzzzzz: 1\n", "slurm.zzzzzz", "known keys: script_file, partition", "", false},
		{"wrong type int", "  gpus_per_node: 4", "  gpus_per_node: four", "hardware.gpus_per_node", "expected an integer", "", false},
		{"float for int", "    max_batch_size: 32\n", "    max_batch_size: 32.5\n", "worker_config.gen.max_batch_size", "expected an integer", "", false},
		{"bool for string", "  precision: fp4", "  precision: true", "metadata.precision", "boolean", "", false},
		{"map for string", "  precision: fp4", "  precision: {a: 1}", "metadata.precision", "expected a string, got a mapping", "", false},
		{"list for section", "hardware:\n  gpus_per_node: 4\n  num_ctx_servers: 1\n  num_gen_servers: 4\n", "hardware:\n  - 4\n", "hardware", "expected a mapping", "  - 4", false},
		{"scalar list", "  supported_gpus: [GB200]", "  supported_gpus: GB200", "metadata.supported_gpus", "expected a list", "", false},
		{"bad concurrency", `"1 2 4 8 16 32"`, `"1 2 x"`, "benchmark.concurrency_list", `"x" is not an integer`, "", false},
		{"duplicate key", "  precision: fp4\n", "  precision: fp4\n  precision: fp8\n", "metadata.precision", "duplicate key", "  precision: fp8", false},
		{"unknown key in dataset-free metrics", "  supported_gpus: [GB200]\n", "  supported_gpus: [GB200]\n  metrics:\n    log_fil: x.log\n", "metadata.metrics.log_fil", `did you mean "log_file"`, "    log_fil", false},
		{"unknown key in cache transceiver passes", "      max_tokens_in_buffer: 8448\n", "      max_tokens_in_buffer: 8448\n      kv_transfer_timeout_ms: 100\n", "", "", "", false},
		{"infinite float", "  multi_round: 8\n", "  multi_round: 8\n  benchmark_ratio: .inf\n", "benchmark.benchmark_ratio", "finite number", "benchmark_ratio", false},
	})
}

func TestWorkerExtrasPassThrough(t *testing.T) {
	text := edit(t, baseYAML(t), "    kv_cache_config:\n      free_gpu_memory_fraction: 0.85\n",
		"    kv_cache_config:\n      free_gpu_memory_fraction: 0.85\n      dtype: fp8\n    moe_config:\n      backend: WIDEEP\n      load_balancer: {num_slots: 288}\n    stream_interval: 20\n    some_future_option: [1, \"two\", null]\n")
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) {
		t.Fatalf("problems:%s", dump(ps))
	}
	g := tt.Config.WorkerConfig.Gen.Extra
	kv := g["kv_cache_config"].(map[string]any)
	if kv["free_gpu_memory_fraction"] != 0.85 || kv["dtype"] != "fp8" {
		t.Errorf("kv_cache_config = %#v", kv)
	}
	if g["stream_interval"] != 20 {
		t.Errorf("stream_interval = %#v", g["stream_interval"])
	}
	if eplbSlots(&tt.Config.WorkerConfig.Gen) != 288 {
		t.Errorf("eplb slots = %d", eplbSlots(&tt.Config.WorkerConfig.Gen))
	}
	fut := g["some_future_option"].([]any)
	if len(fut) != 3 || fut[0] != 1 || fut[1] != "two" || fut[2] != nil {
		t.Errorf("some_future_option = %#v", fut)
	}
	if _, ok := g["some_future_option"]; !ok {
		t.Error("null-valued option lost")
	}
}

func TestConcurrencyForms(t *testing.T) {
	for in, want := range map[string]string{
		`"1 2 4"`:            "[1 2 4]",
		`"1,2, 4"`:           "[1 2 4]",
		"[1, 2, 4]":          "[1 2 4]",
		"\n    - 1\n    - 8": "[1 8]",
		"8":                  "[8]",
	} {
		text := edit(t, baseYAML(t), `"1 2 4 8 16 32"`, in)
		tt, ps := loadValidate(t, "x.yaml", text)
		if HasErrors(ps) {
			t.Errorf("%s: %s", in, dump(ps))
			continue
		}
		if got := fmtInts(tt.Config.Benchmark.ConcurrencyList); got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

func fmtInts(c Concurrencies) string {
	return fmt.Sprint([]int(c))
}

func TestBadDocuments(t *testing.T) {
	cases := map[string]struct{ text, msg string }{
		"empty":          {"", "file is empty"},
		"only comments":  {"# nothing\n", "file is empty"},
		"null document":  {"~\n", "no content"},
		"list":           {"- a\n- b\n", "must be a mapping of sections"},
		"scalar":         {"hello\n", "must be a mapping of sections"},
		"syntax":         {"metadata:\n  model_name: [unclosed\n", "YAML syntax error"},
		"tab indent":     {"metadata:\n\tmodel_name: x\n", "YAML syntax error"},
		"two documents":  {baseYAML(t) + "---\nmetadata: {}\n", "one YAML document"},
		"unknown anchor": {"metadata: *nope\n", "YAML syntax error"},
		"non-scalar key": {"? [a, b]\n: 1\n", "mapping keys must be plain strings"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, ps := LoadBytes("x.yaml", []byte(tc.text))
			if !HasErrors(ps) {
				t.Fatalf("no error")
			}
			found := false
			for _, p := range ps {
				if strings.Contains(p.Message, tc.msg) {
					found = true
					if p.Line < 1 {
						t.Errorf("problem without a line: %s", p)
					}
				}
			}
			if !found {
				t.Errorf("want %q in:%s", tc.msg, dump(ps))
			}
		})
	}
}

func TestAliasBomb(t *testing.T) {
	bomb := `a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
worker_config:
  gen:
    huge: [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
`
	start := time.Now()
	_, ps := LoadBytes("bomb.yaml", []byte(bomb))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("alias bomb took %v", d)
	}
	found := false
	for _, p := range ps {
		if strings.Contains(p.Message, "too large") {
			found = true
		}
	}
	if !found {
		t.Errorf("alias bomb not refused:%s", dump(ps))
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	text := edit(t, baseYAML(t), "worker_config:\n  gen:\n", "x_common: &common\n  max_seq_len: 2251\n  trust_remote_code: true\nworker_config:\n  gen:\n    <<: *common\n")
	// x_common is not a section: refused with its line.
	_, ps := loadValidate(t, "x.yaml", text)
	if len(ps) != 1 || ps[0].Field != "x_common" {
		t.Fatalf("want one problem for x_common, got:%s", dump(ps))
	}
	// Merged keys do not count as duplicates of explicit ones; explicit keys win.
	text = edit(t, baseYAML(t), "  ctx:\n    tensor_parallel_size: 4\n", "  ctx: &ctx\n    tensor_parallel_size: 4\n")
	text = strings.Replace(text, "worker_config:\n", "worker_config:\n", 1)
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) {
		t.Fatalf("anchor on ctx: %s", dump(ps))
	}
	if tt.Config.WorkerConfig.Ctx.TensorParallelSize != 4 {
		t.Error("anchor lost the value")
	}
	merged := "metadata: &m\n  model_name: m\n  precision: fp4\n" +
		"accuracy:\n  tasks:\n    gsm8k: &t\n      model: local-completions\n    mmlu:\n      <<: *t\n      model_args_extra: a=1\n"
	tt, _ = LoadBytes("x.yaml", []byte(merged))
	if tt.Config.Accuracy.Tasks["mmlu"].Model != "local-completions" || tt.Config.Accuracy.Tasks["mmlu"].ModelArgsExtra != "a=1" {
		t.Errorf("merge key: %+v", tt.Config.Accuracy.Tasks)
	}
}

func TestYAML11Booleans(t *testing.T) {
	text := edit(t, baseYAML(t), "  streaming: true", "  streaming: yes")
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) || !tt.Config.Benchmark.Streaming {
		t.Fatalf("streaming: yes refused:%s", dump(ps))
	}
	text = edit(t, baseYAML(t), "  streaming: true", `  streaming: "yes"`)
	_, ps = loadValidate(t, "x.yaml", text)
	if !HasErrors(ps) {
		t.Fatal(`streaming: "yes" (quoted) accepted`)
	}
}
