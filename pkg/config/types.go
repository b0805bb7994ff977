package config

import "github.com/disaggbench/disaggbench/pkg/testspec"

// Config is one test's YAML file, section by section, as the seed framework's real
// configs write it. Field comments name the YAML key where it is not obvious.
type Config struct {
	Metadata     Metadata     `yaml:"metadata" json:"metadata"`
	Slurm        Slurm        `yaml:"slurm" json:"slurm"`
	Benchmark    Benchmark    `yaml:"benchmark" json:"benchmark"`
	Hardware     Hardware     `yaml:"hardware" json:"hardware"`
	Environment  Environment  `yaml:"environment" json:"environment"`
	Profiling    Profiling    `yaml:"profiling" json:"profiling"`
	Accuracy     AccuracyTest `yaml:"accuracy" json:"accuracy"`
	WorkerConfig WorkerConfig `yaml:"worker_config" json:"worker_config"`
	// References bound the test's metrics: a run that breaks one fails as a regression.
	References []Reference `yaml:"references,omitempty" json:"references,omitempty"`
}

// Reference bounds one metric of the test: min and/or max (absolute, in the metric's
// unit), or a reference value (value, or baseline from earlier runs) with the relative
// change allowed in the metric's bad direction (tolerance, 0.05 = 5%).
type Reference struct {
	Metric      string    `yaml:"metric" json:"metric"`
	GPU         string    `yaml:"gpu,omitempty" json:"gpu,omitempty"`
	Concurrency int       `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
	Min         *float64  `yaml:"min,omitempty" json:"min,omitempty"`
	Max         *float64  `yaml:"max,omitempty" json:"max,omitempty"`
	Value       *float64  `yaml:"value,omitempty" json:"value,omitempty"`
	Tolerance   *float64  `yaml:"tolerance,omitempty" json:"tolerance,omitempty"`
	Baseline    *Baseline `yaml:"baseline,omitempty" json:"baseline,omitempty"`
}

// Baseline takes a reference value from earlier runs in the results dataset: one run's
// value, or the median of the last N passing runs of the test on the same GPU type.
type Baseline struct {
	Run  string `yaml:"run,omitempty" json:"run,omitempty"`
	Last int    `yaml:"last,omitempty" json:"last,omitempty"`
}

// Metadata names the model and where the test may run.
type Metadata struct {
	ModelName     string   `yaml:"model_name" json:"model_name"`
	Precision     string   `yaml:"precision" json:"precision"`
	ModelDirName  string   `yaml:"model_dir_name,omitempty" json:"model_dir_name,omitempty"`
	SupportedGPUs []string `yaml:"supported_gpus" json:"supported_gpus"`
	ScriptFile    string   `yaml:"script_file,omitempty" json:"script_file,omitempty"`
	BenchmarkType string   `yaml:"benchmark_type,omitempty" json:"benchmark_type,omitempty"`
	ConfigIndex   int      `yaml:"config_index,omitempty" json:"config_index,omitempty"`
	DatasetFile   string   `yaml:"dataset_file,omitempty" json:"dataset_file,omitempty"`
	// Metrics is where the seed's code reads custom metrics (benchmark.metrics is where its
	// README writes them); at most one of the two may be set.
	Metrics  *MetricsSpec  `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Accuracy *AccuracySpec `yaml:"accuracy,omitempty" json:"accuracy,omitempty"`
}

// MetricsSpec is a custom metrics section (benchmark.metrics or metadata.metrics): which
// log to read and how to pull numbers out of it; each field left out is the default's.
// The job spec and the judge carry the same type.
type MetricsSpec = testspec.MetricsSpec

// AccuracySpec holds the datasets an accuracy test is judged on.
type AccuracySpec struct {
	Datasets []AccuracyDataset `yaml:"datasets" json:"datasets"`
}

// AccuracyDataset is one dataset's expected score and hypothesis-test parameters; nil
// parameters take the dataset's defaults. The job spec carries the same type.
type AccuracyDataset = testspec.AccuracyDataset

// Slurm holds what reaches sbatch.
type Slurm struct {
	ScriptFile string `yaml:"script_file,omitempty" json:"script_file,omitempty"`
	Partition  string `yaml:"partition" json:"partition"`
	Account    string `yaml:"account" json:"account"`
	JobTime    string `yaml:"job_time" json:"job_time"`
	JobName    string `yaml:"job_name,omitempty" json:"job_name,omitempty"`
	ExtraArgs  string `yaml:"extra_args,omitempty" json:"extra_args,omitempty"`
	NumaBind   bool   `yaml:"numa_bind,omitempty" json:"numa_bind,omitempty"`
	SetSegment *bool  `yaml:"set_segment,omitempty" json:"set_segment,omitempty"`
}

// Benchmark describes the client run.
type Benchmark struct {
	Mode             string        `yaml:"mode" json:"mode"`
	UseNvSaBenchmark bool          `yaml:"use_nv_sa_benchmark,omitempty" json:"use_nv_sa_benchmark,omitempty"`
	MultiRound       int           `yaml:"multi_round,omitempty" json:"multi_round,omitempty"`
	BenchmarkRatio   float64       `yaml:"benchmark_ratio,omitempty" json:"benchmark_ratio,omitempty"`
	Streaming        bool          `yaml:"streaming" json:"streaming"`
	ConcurrencyList  Concurrencies `yaml:"concurrency_list" json:"concurrency_list"`
	InputLength      int           `yaml:"input_length" json:"input_length"`
	OutputLength     int           `yaml:"output_length" json:"output_length"`
	DatasetFile      string        `yaml:"dataset_file,omitempty" json:"dataset_file,omitempty"`
	EnableBenchmark  *bool         `yaml:"enable_benchmark,omitempty" json:"enable_benchmark,omitempty"`
	// Client is the benchmark client the job runs: benchmark_serving (TensorRT-LLM's
	// Python client, the default) or builtin (disaggbench's Go client).
	Client string `yaml:"client,omitempty" json:"client,omitempty"`
	// EnvVar is the benchmark client's environment: a mapping of names to values
	// (upstream's current shape), or the older "K=V K=V" string, read into the same map.
	EnvVar  EnvMap       `yaml:"env_var,omitempty" json:"env_var,omitempty"`
	Metrics *MetricsSpec `yaml:"metrics,omitempty" json:"metrics,omitempty"`
}

// EnvMap is a set of environment variables, NAME to value. YAML may write it as a
// mapping or as "NAME=VALUE NAME=VALUE" (split on white space).
type EnvMap map[string]string

// Concurrencies is the concurrency list; YAML may write it as "1 2 4" or [1, 2, 4].
type Concurrencies []int

// Hardware is the topology: GPUs per node and how many ctx and gen servers.
type Hardware struct {
	GPUsPerNode   int `yaml:"gpus_per_node" json:"gpus_per_node"`
	NumCtxServers int `yaml:"num_ctx_servers" json:"num_ctx_servers"`
	NumGenServers int `yaml:"num_gen_servers" json:"num_gen_servers"`
	// GPUType is upstream's hardware.gpu_type (its newer configs carry it); when set
	// it must be a known GPU type. The run's GPU type (flag > GPU_TYPE) still decides.
	GPUType string `yaml:"gpu_type,omitempty" json:"gpu_type,omitempty"`
}

// Environment is where the job finds its container, model and code.
type Environment struct {
	ContainerMount    string `yaml:"container_mount,omitempty" json:"container_mount,omitempty"`
	ContainerImage    string `yaml:"container_image,omitempty" json:"container_image,omitempty"`
	ModelPath         string `yaml:"model_path,omitempty" json:"model_path,omitempty"`
	TrtllmRepo        string `yaml:"trtllm_repo,omitempty" json:"trtllm_repo,omitempty"`
	BuildWheel        bool   `yaml:"build_wheel,omitempty" json:"build_wheel,omitempty"`
	TrtllmWheelPath   string `yaml:"trtllm_wheel_path,omitempty" json:"trtllm_wheel_path,omitempty"`
	CudaArchitectures string `yaml:"cuda_architectures,omitempty" json:"cuda_architectures,omitempty"`
	WorkDir           string `yaml:"work_dir,omitempty" json:"work_dir,omitempty"`
	LogDir            string `yaml:"log_dir,omitempty" json:"log_dir,omitempty"`
	WorkerEnvVar      string `yaml:"worker_env_var,omitempty" json:"worker_env_var,omitempty"`
	CtxWorkerEnvVar   string `yaml:"ctx_worker_env_var,omitempty" json:"ctx_worker_env_var,omitempty"`
	GenWorkerEnvVar   string `yaml:"gen_worker_env_var,omitempty" json:"gen_worker_env_var,omitempty"`
	ServerEnvVar      string `yaml:"server_env_var,omitempty" json:"server_env_var,omitempty"`
	// EnablePDL sets TRTLLM_ENABLE_PDL=1 on every worker, as upstream's older
	// start_worker.sh did with its enable_pdl argument; its newer scripts expect the
	// variable in worker_env_var instead (docs/jobscript.md).
	EnablePDL bool `yaml:"enable_pdl,omitempty" json:"enable_pdl,omitempty"`
	// Emulate runs the job script with disaggbench's stand-ins: an emulated trtllm-serve
	// for the workers and the server, the Go benchmark client and an emulated lm_eval,
	// without a container or a GPU.
	Emulate bool `yaml:"emulate,omitempty" json:"emulate,omitempty"`
}

// Profiling turns on nsys for the given iteration ranges.
type Profiling struct {
	NsysOn          bool   `yaml:"nsys_on,omitempty" json:"nsys_on,omitempty"`
	CtxProfileRange string `yaml:"ctx_profile_range,omitempty" json:"ctx_profile_range,omitempty"`
	GenProfileRange string `yaml:"gen_profile_range,omitempty" json:"gen_profile_range,omitempty"`
}

// AccuracyTest is the top-level accuracy section: whether lm_eval runs and on which tasks.
// Tasks is a mapping of task name to options, or (the seed's older form) a list of
// names such as "gsm8k" or "gsm8k,mmlu" with Model and ModelArgsExtra beside it; Resolve
// gives every task without its own model or arguments the section's.
type AccuracyTest struct {
	EnableAccuracyTest bool                    `yaml:"enable_accuracy_test,omitempty" json:"enable_accuracy_test,omitempty"`
	EnvVar             map[string]string       `yaml:"env_var,omitempty" json:"env_var,omitempty"`
	Tasks              map[string]AccuracyTask `yaml:"tasks,omitempty" json:"tasks,omitempty"`
	Model              string                  `yaml:"model,omitempty" json:"model,omitempty"`
	ModelArgsExtra     string                  `yaml:"model_args_extra,omitempty" json:"model_args_extra,omitempty"`
}

// AccuracyTask is one lm_eval task's options.
type AccuracyTask struct {
	Model          string         `yaml:"model,omitempty" json:"model,omitempty"`
	ModelArgsExtra string         `yaml:"model_args_extra,omitempty" json:"model_args_extra,omitempty"`
	ExtraKwargs    map[string]any `yaml:"extra_kwargs,omitempty" json:"extra_kwargs,omitempty"`
}

// WorkerConfig holds the ctx and gen servers' LLM-API options.
type WorkerConfig struct {
	Ctx Worker `yaml:"ctx" json:"ctx"`
	Gen Worker `yaml:"gen" json:"gen"`
}

// Worker keeps the options we validate typed; every other LLM-API option is carried in
// Extra untouched and written back out when the worker config is rendered.
type Worker struct {
	TensorParallelSize     int                     `yaml:"tensor_parallel_size" json:"tensor_parallel_size"`
	PipelineParallelSize   int                     `yaml:"pipeline_parallel_size,omitempty" json:"pipeline_parallel_size,omitempty"`
	ContextParallelSize    int                     `yaml:"context_parallel_size,omitempty" json:"context_parallel_size,omitempty"`
	MoeExpertParallelSize  int                     `yaml:"moe_expert_parallel_size,omitempty" json:"moe_expert_parallel_size,omitempty"`
	EnableAttentionDP      bool                    `yaml:"enable_attention_dp,omitempty" json:"enable_attention_dp,omitempty"`
	MaxBatchSize           int                     `yaml:"max_batch_size" json:"max_batch_size"`
	MaxNumTokens           int                     `yaml:"max_num_tokens" json:"max_num_tokens"`
	MaxSeqLen              int                     `yaml:"max_seq_len" json:"max_seq_len"`
	SpeculativeConfig      *SpeculativeConfig      `yaml:"speculative_config,omitempty" json:"speculative_config,omitempty"`
	CacheTransceiverConfig *CacheTransceiverConfig `yaml:"cache_transceiver_config,omitempty" json:"cache_transceiver_config,omitempty"`
	Extra                  map[string]any          `yaml:",inline" json:"-"`
}

// SpeculativeConfig is MTP and friends.
type SpeculativeConfig struct {
	DecodingType          string         `yaml:"decoding_type,omitempty" json:"decoding_type,omitempty"`
	NumNextnPredictLayers int            `yaml:"num_nextn_predict_layers,omitempty" json:"num_nextn_predict_layers,omitempty"`
	Extra                 map[string]any `yaml:",inline" json:"-"`
}

// CacheTransceiverConfig chooses how KV cache moves from ctx to gen servers.
type CacheTransceiverConfig struct {
	Backend           string         `yaml:"backend,omitempty" json:"backend,omitempty"`
	MaxTokensInBuffer int            `yaml:"max_tokens_in_buffer,omitempty" json:"max_tokens_in_buffer,omitempty"`
	Extra             map[string]any `yaml:",inline" json:"-"`
}

// Test is one discovered test: its identity, where it came from, and its resolved config.
type Test struct {
	ID       string // {type}_{category}_{file stem}
	Type     string // disagg | wideep
	Category string // perf | accuracy | stress
	Path     string // the YAML file
	Config   Config
	// Sources names, for each field path that an override changed, where its value came
	// from ("flag --output-path", "env SLURM_PARTITION", "default").
	Sources map[string]string

	pos        *positions // where each field was written, for problems
	problems   []Problem  // problems found while loading and discovering
	unreadable bool       // the file is not a mapping of sections: skip the field rules
}

// MTP returns the gen workers' number of MTP layers (0 when MTP is off).
func (c *Config) MTP() int {
	if s := c.WorkerConfig.Gen.SpeculativeConfig; s != nil {
		return s.NumNextnPredictLayers
	}
	return 0
}

// GPUsPerServer is tp*pp*cp for one worker, each factor at least 1.
func (w *Worker) GPUsPerServer() int {
	return max(w.TensorParallelSize, 1) * max(w.PipelineParallelSize, 1) * max(w.ContextParallelSize, 1)
}

// CtxGPUs and GenGPUs are the GPUs the ctx and gen servers use in total.
func (c *Config) CtxGPUs() int {
	return c.WorkerConfig.Ctx.GPUsPerServer() * c.Hardware.NumCtxServers
}

func (c *Config) GenGPUs() int {
	return c.WorkerConfig.Gen.GPUsPerServer() * c.Hardware.NumGenServers
}

// Nodes is ceil(ctx GPUs / gpus_per_node) + ceil(gen GPUs / gpus_per_node).
func (c *Config) Nodes() int {
	g := max(c.Hardware.GPUsPerNode, 1)
	return (c.CtxGPUs()+g-1)/g + (c.GenGPUs()+g-1)/g
}
