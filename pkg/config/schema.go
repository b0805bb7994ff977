package config

import (
	"encoding/json"
	"reflect"
	"strings"
)

// SchemaID is the JSON Schema's $id; each test config names the committed schema file in
// its "# yaml-language-server: $schema=" line.
const SchemaID = "https://github.com/disaggbench/disaggbench/schema/test-config.schema.json"

// schemaRequired lists, per struct, the keys a file must write. Values the environment
// may supply (partition, account, container image, model path) are not among them:
// Validate checks those after overrides.
var schemaRequired = map[string][]string{
	"Config":          {"metadata", "slurm", "benchmark", "hardware", "worker_config"},
	"Metadata":        {"model_name", "precision"},
	"Slurm":           {"job_time"},
	"Benchmark":       {"mode", "streaming", "concurrency_list", "input_length", "output_length"},
	"Hardware":        {"gpus_per_node", "num_ctx_servers", "num_gen_servers"},
	"WorkerConfig":    {"ctx", "gen"},
	"Worker":          {"tensor_parallel_size", "max_batch_size", "max_num_tokens", "max_seq_len"},
	"AccuracyDataset": {"dataset_name", "expected_value"},
	"Reference":       {"metric"},
}

// schemaFields adds constraints and descriptions to single fields, keyed Type.key.
var schemaFields = map[string]map[string]any{
	"Config.references":                           {"description": "Bounds on the test's metrics; a run that breaks one fails as a regression, one better than a reference value by more than its tolerance is flagged as an improvement."},
	"Reference.metric":                            {"description": "A metric of the test's dataset: SERVER_MEDIAN_TTFT, OUTPUT_THROUGHPUT, output_tok_s_per_gpu, tok_s_per_user, a custom or accuracy metric name."},
	"Reference.gpu":                               {"description": "Only on this GPU type; default every type.", "enum": KnownGPUTypes()},
	"Reference.concurrency":                       {"description": "Only at this concurrency (as the client runs it); default every concurrency.", "minimum": 1},
	"Reference.min":                               {"description": "Absolute lower bound (throughputs, scores)."},
	"Reference.max":                               {"description": "Absolute upper bound (latencies)."},
	"Reference.value":                             {"description": "Reference value; needs tolerance."},
	"Reference.tolerance":                         {"description": "Relative change allowed in the metric's bad direction, e.g. 0.05 for 5%.", "minimum": 0},
	"Reference.baseline":                          {"description": "Take the reference value from earlier runs: {run: RUN_ID} or {last: N} (median of the last N passing runs); needs tolerance."},
	"Baseline.run":                                {"description": "A run id of the results dataset."},
	"Baseline.last":                               {"description": "Median of the last N passing runs of the test on the same GPU type.", "minimum": 1, "maximum": 100},
	"Metadata.model_name":                         {"description": "Model identifier, e.g. deepseek-r1-fp4."},
	"Metadata.precision":                          {"description": "Model precision, e.g. fp4, fp8."},
	"Metadata.model_dir_name":                     {"description": "Model folder under MODEL_DIR; with MODEL_DIR set, environment.model_path becomes MODEL_DIR/model_dir_name."},
	"Metadata.supported_gpus":                     {"description": "GPU types the test may run on (GPU_TYPE must be one of them).", "items": map[string]any{"type": "string", "enum": KnownGPUTypes()}},
	"Metadata.metrics":                            {"description": "Custom metrics (the seed's code reads them here); each field replaces the default's. At most one of metadata.metrics and benchmark.metrics."},
	"Metadata.dataset_file":                       {"description": "Dataset file name under DATASET_DIR; with DATASET_DIR set, benchmark.dataset_file becomes DATASET_DIR/dataset_file."},
	"Slurm.partition":                             {"description": "SLURM partition (SLURM_PARTITION overrides).", "pattern": slurmNamePattern},
	"Slurm.account":                               {"description": "SLURM account (SLURM_ACCOUNT overrides).", "pattern": slurmNamePattern},
	"Slurm.job_name":                              {"description": "SLURM job name (SLURM_JOB_NAME overrides).", "pattern": slurmNamePattern},
	"Slurm.job_time":                              {"description": "Time limit as sbatch --time takes it: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.", "pattern": `^([0-9]+(:[0-9]+){0,2}|[0-9]+-[0-9]+(:[0-9]+){0,2}|UNLIMITED|INFINITE)$`},
	"Slurm.extra_args":                            {"description": "Extra sbatch options, each written --opt=value; no shell syntax."},
	"Benchmark.mode":                              {"enum": BenchmarkModes},
	"Benchmark.client":                            {"description": "The benchmark client: benchmark_serving (TensorRT-LLM's, the default) or builtin (disaggbench's Go client).", "enum": BenchmarkClients},
	"Benchmark.streaming":                         {"description": "Must be true.", "const": true},
	"Benchmark.concurrency_list":                  {"description": "Concurrencies, as \"1 2 4\" or [1, 2, 4]; each at most gen max_batch_size (times gen tensor_parallel_size with attention DP)."},
	"Benchmark.input_length":                      {"minimum": 1},
	"Benchmark.output_length":                     {"minimum": 1},
	"Benchmark.multi_round":                       {"minimum": 0},
	"Benchmark.benchmark_ratio":                   {"minimum": 0, "maximum": 1},
	"Benchmark.metrics":                           {"description": "Custom metrics (as the seed's README writes them); each field replaces the default's."},
	"Hardware.gpus_per_node":                      {"minimum": 1},
	"Hardware.num_ctx_servers":                    {"minimum": 0},
	"Hardware.num_gen_servers":                    {"minimum": 1},
	"Environment.container_image":                 {"description": "Container image (CONTAINER_IMAGE overrides)."},
	"Environment.emulate":                         {"description": "Run the job with disaggbench's stand-ins: an EMULATED trtllm-serve, the Go benchmark client and an emulated lm_eval; no container, no GPU."},
	"Environment.model_path":                      {"description": "Model folder inside the container (MODEL_DIR + metadata.model_dir_name overrides)."},
	"Environment.worker_env_var":                  {"description": "Environment for all workers, as \"K=V K=V\"."},
	"Environment.enable_pdl":                      {"description": "Set TRTLLM_ENABLE_PDL=1 on every worker, as upstream's older scripts did (newer ones expect it in worker_env_var)."},
	"Profiling.ctx_profile_range":                 {"pattern": `^[0-9]+-[0-9]+$`},
	"Profiling.gen_profile_range":                 {"pattern": `^[0-9]+-[0-9]+$`},
	"Worker.tensor_parallel_size":                 {"minimum": 1},
	"Worker.pipeline_parallel_size":               {"minimum": 0},
	"Worker.context_parallel_size":                {"minimum": 0},
	"Worker.moe_expert_parallel_size":             {"minimum": 0},
	"Worker.max_batch_size":                       {"minimum": 1},
	"Worker.max_num_tokens":                       {"minimum": 1, "description": "With MTP on the gen workers: max_batch_size * (num_nextn_predict_layers + 1)."},
	"Worker.max_seq_len":                          {"minimum": 1, "description": "Must exceed input_length + output_length."},
	"SpeculativeConfig.decoding_type":             {"enum": SpeculativeModes},
	"SpeculativeConfig.num_nextn_predict_layers":  {"minimum": 0},
	"CacheTransceiverConfig.backend":              {"enum": CacheBackends},
	"CacheTransceiverConfig.max_tokens_in_buffer": {"minimum": 0},
	"AccuracyDataset.threshold_type":              {"enum": ThresholdTypes},
	"AccuracyDataset.filter_type":                 {"enum": AccuracyFilters},
	"AccuracyDataset.alpha":                       {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
	"AccuracyDataset.beta":                        {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
	"AccuracyDataset.sigma":                       {"minimum": 0},
	"AccuracyDataset.num_samples":                 {"minimum": 1},
}

const slurmNamePattern = `^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`

// JSONSchema returns the JSON Schema (draft 2020-12) of a test config, generated from
// the Go types, indented and ending in a newline.
func JSONSchema() ([]byte, error) {
	defs := map[string]any{}
	root := schemaOf(reflect.TypeFor[Config](), defs)
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         SchemaID,
		"title":       "disaggbench test config",
		"description": "One benchmark test: test_configs/{disagg,wideep}/{perf,accuracy,stress}/<name>.yaml",
		"$defs":       defs,
	}
	for k, v := range root {
		doc[k] = v
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

func schemaOf(t reflect.Type, defs map[string]any) map[string]any {
	if t == concurrenciesType {
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string", "pattern": `^[0-9 ,]*$`},
			map[string]any{"type": "array", "items": map[string]any{"type": "integer", "minimum": 1}, "minItems": 1},
			map[string]any{"type": "integer", "minimum": 1},
		}}
	}
	if t == taskMapType {
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), defs)},
			map[string]any{"type": "string", "description": "task names, e.g. gsm8k or gsm8k,mmlu"},
		}}
	}
	if t == envMapType {
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "object", "additionalProperties": map[string]any{"type": []any{"string", "number", "boolean"}}},
			map[string]any{"type": "string", "description": "NAME=VALUE words separated by spaces (the older form)"},
		}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), defs)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), defs)}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), defs)}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := t.Name()
		if t == reflect.TypeFor[Config]() {
			return structSchema(t, defs)
		}
		if _, ok := defs[name]; !ok {
			defs[name] = map[string]any{} // placeholder against recursion
			defs[name] = structSchema(t, defs)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

func structSchema(t reflect.Type, defs map[string]any) map[string]any {
	props := map[string]any{}
	si := infoOf(t)
	for _, key := range si.keys {
		f := t.Field(si.fields[key])
		s := schemaOf(f.Type, defs)
		if extra, ok := schemaFields[t.Name()+"."+key]; ok {
			if ref, isRef := s["$ref"]; isRef {
				// Siblings of $ref are allowed in 2020-12, but keep the ref intact.
				s = map[string]any{"$ref": ref}
			}
			for k, v := range extra {
				s[k] = v
			}
		}
		props[key] = s
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": si.extra >= 0}
	if req := schemaRequired[t.Name()]; len(req) > 0 {
		out["required"] = req
	}
	if si.extra >= 0 {
		out["description"] = strings.TrimSpace("Typed options are checked; every other option is passed through to the rendered config.")
	}
	return out
}
