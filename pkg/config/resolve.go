package config

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

// Env is a set of environment variables (or of command-line flag values keyed by the
// environment variable they stand for, e.g. "OUTPUT_PATH").
type Env map[string]string

// EnvFromOS returns the process environment.
func EnvFromOS() Env {
	env := Env{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// The environment variables the planner honours. Each may also be given as a
// command-line flag, which wins over the environment.
const (
	EnvGPUType         = "GPU_TYPE"          // GPU type of the cluster (default GB200)
	EnvOutputPath      = "OUTPUT_PATH"       // where results and job logs go
	EnvWorkDir         = "WORK_DIR"          // environment.work_dir
	EnvSlurmPartition  = "SLURM_PARTITION"   // slurm.partition
	EnvSlurmAccount    = "SLURM_ACCOUNT"     // slurm.account
	EnvSlurmJobName    = "SLURM_JOB_NAME"    // slurm.job_name
	EnvContainerImage  = "CONTAINER_IMAGE"   // environment.container_image
	EnvContainerMount  = "CONTAINER_MOUNT"   // environment.container_mount
	EnvRepoDir         = "REPO_DIR"          // environment.trtllm_repo
	EnvTrtllmWheelPath = "TRTLLM_WHEEL_PATH" // environment.trtllm_wheel_path
	EnvModelDir        = "MODEL_DIR"         // environment.model_path = MODEL_DIR/metadata.model_dir_name
	EnvDatasetDir      = "DATASET_DIR"       // benchmark.dataset_file = DATASET_DIR/metadata.dataset_file
	EnvHFHomeDir       = "HF_HOME_DIR"       // accuracy.env_var.HF_HOME
	EnvBatchSize       = "DISAGG_BATCH_SIZE" // jobs queued or running at once (default 5, 0 = all)
	EnvDebugMode       = "DEBUG_MODE"        // 1/true: do not submit, reuse DEBUG_JOB_ID's logs
	EnvDebugJobID      = "DEBUG_JOB_ID"      // the job whose logs debug mode reads
	EnvInstallMode     = "INSTALL_MODE"      // how the job installs TensorRT-LLM (passed to the job)
)

// HonouredEnv lists every environment variable the planner reads.
var HonouredEnv = []string{
	EnvGPUType, EnvOutputPath, EnvWorkDir, EnvSlurmPartition, EnvSlurmAccount, EnvSlurmJobName,
	EnvContainerImage, EnvContainerMount, EnvRepoDir, EnvTrtllmWheelPath, EnvModelDir,
	EnvDatasetDir, EnvHFHomeDir, EnvBatchSize, EnvDebugMode, EnvDebugJobID, EnvInstallMode,
}

// DefaultBatchSize is DISAGG_BATCH_SIZE's default.
const DefaultBatchSize = 5

// DefaultSupportedGPUs is metadata.supported_gpus when a file leaves it out.
var DefaultSupportedGPUs = []string{"GB200", "GB300", "H100", "B200", "B300"}

// FlagName is the command-line flag that stands for an environment variable
// (OUTPUT_PATH -> --output-path).
func FlagName(envVar string) string {
	return "--" + strings.ToLower(strings.ReplaceAll(envVar, "_", "-"))
}

// Lookup returns a setting's value and where it came from, by the one precedence used
// everywhere: command-line flag > environment > (the caller's file value or default).
// Empty values count as unset. source is "" when neither has it.
func Lookup(flags, env Env, key string) (value, source string) {
	if v := flags[key]; v != "" {
		return v, "flag " + FlagName(key)
	}
	if v := env[key]; v != "" {
		return v, "env " + key
	}
	return "", ""
}

// GPUType is the cluster's GPU type, normalized (flag > GPU_TYPE > GB200).
func GPUType(flags, env Env) string {
	v, _ := Lookup(flags, env, EnvGPUType)
	return NormalizeGPU(v)
}

// OutputPath is where results and job logs go (flag > OUTPUT_PATH > "output").
func OutputPath(flags, env Env) string {
	if v, _ := Lookup(flags, env, EnvOutputPath); v != "" {
		return v
	}
	return "output"
}

// BatchSize is how many of a run's jobs may be queued or running at once
// (flag > DISAGG_BATCH_SIZE > 5; 0 means all).
func BatchSize(flags, env Env) (int, error) {
	v, src := Lookup(flags, env, EnvBatchSize)
	if v == "" {
		return DefaultBatchSize, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: batch size %q must be a whole number >= 0 (0 = all at once)", src, v)
	}
	return n, nil
}

// DebugMode reports whether jobs are not submitted and DEBUG_JOB_ID's logs are read
// instead, and that job id.
func DebugMode(flags, env Env) (bool, string) {
	v, _ := Lookup(flags, env, EnvDebugMode)
	id, _ := Lookup(flags, env, EnvDebugJobID)
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on":
		return true, id
	}
	return false, id
}

// Resolve applies defaults and overrides to a loaded test, recording in Sources where
// each changed value came from. Precedence: flag > environment > file > default.
// Resolving twice with the same inputs gives the same result.
func (t *Test) Resolve(flags, env Env) {
	if t.Sources == nil {
		t.Sources = map[string]string{}
	}
	c := &t.Config
	for _, o := range envFields {
		if !o.direct {
			continue
		}
		if v, src := Lookup(flags, env, o.env); v != "" {
			*o.value(c) = v
			t.Sources[o.field] = src
		}
	}
	if dir, src := Lookup(flags, env, EnvModelDir); dir != "" && c.Metadata.ModelDirName != "" {
		c.Environment.ModelPath = path.Join(dir, c.Metadata.ModelDirName)
		t.Sources["environment.model_path"] = src + " + metadata.model_dir_name"
	}
	if dir, src := Lookup(flags, env, EnvDatasetDir); dir != "" {
		switch {
		case c.Metadata.DatasetFile != "":
			c.Benchmark.DatasetFile = path.Join(dir, c.Metadata.DatasetFile)
			t.Sources["benchmark.dataset_file"] = src + " + metadata.dataset_file"
		case IsPlaceholder(c.Benchmark.DatasetFile):
			c.Benchmark.DatasetFile = dir
			t.Sources["benchmark.dataset_file"] = src
		}
	}
	if v, src := Lookup(flags, env, EnvHFHomeDir); v != "" {
		if c.Accuracy.EnvVar == nil {
			c.Accuracy.EnvVar = map[string]string{}
		}
		c.Accuracy.EnvVar["HF_HOME"] = v
		t.Sources["accuracy.env_var.HF_HOME"] = src
	}
	// Tasks without their own model or arguments take the section's.
	for name, task := range c.Accuracy.Tasks {
		changed := false
		if task.Model == "" && c.Accuracy.Model != "" {
			task.Model, changed = c.Accuracy.Model, true
			t.Sources["accuracy.tasks."+name+".model"] = "accuracy.model"
		}
		if task.ModelArgsExtra == "" && c.Accuracy.ModelArgsExtra != "" {
			task.ModelArgsExtra, changed = c.Accuracy.ModelArgsExtra, true
			t.Sources["accuracy.tasks."+name+".model_args_extra"] = "accuracy.model_args_extra"
		}
		if changed {
			c.Accuracy.Tasks[name] = task
		}
	}
	// Defaults, only where the file is silent.
	if len(c.Metadata.SupportedGPUs) == 0 && !t.written("metadata.supported_gpus") {
		c.Metadata.SupportedGPUs = append([]string(nil), DefaultSupportedGPUs...)
		t.Sources["metadata.supported_gpus"] = "default"
	}
	if c.Metadata.BenchmarkType == "" && c.Benchmark.InputLength > 0 && c.Benchmark.OutputLength > 0 {
		c.Metadata.BenchmarkType = BenchmarkType(c.Benchmark.InputLength, c.Benchmark.OutputLength)
		t.Sources["metadata.benchmark_type"] = "default (from benchmark.input_length and output_length)"
	}
}

// written reports whether the file set a field path.
func (t *Test) written(field string) bool {
	if t.pos == nil {
		return false
	}
	_, ok := t.pos.value[field]
	return ok
}

// BenchmarkType names input/output lengths as the file names do: 1024/1024 -> "1k1k",
// 8192/1024 -> "8k1k"; lengths that are not whole multiples of 1024 keep their digits.
func BenchmarkType(input, output int) string {
	k := func(n int) string {
		if n >= 1024 && n%1024 == 0 {
			return strconv.Itoa(n/1024) + "k"
		}
		return strconv.Itoa(n)
	}
	return k(input) + k(output)
}

// CustomMetrics returns the test's own metrics section (benchmark.metrics or
// metadata.metrics), or nil. It is the one place that chooses between the two: the
// planner's job spec, `collector parse` and validation all take the section from here.
// With both set (which validation refuses) benchmark.metrics is the one read.
func (c *Config) CustomMetrics() *MetricsSpec {
	if c.Benchmark.Metrics != nil {
		return c.Benchmark.Metrics
	}
	return c.Metadata.Metrics
}

// Metrics returns the metrics to extract: the default of the test's type and category
// with every field the test sets replacing the default's (testspec.Resolve, as the
// judge completes a partial section).
func (t *Test) Metrics() MetricsSpec {
	return testspec.Resolve(t.Type, t.Category, t.Config.CustomMetrics())
}

// Hash is a stable hash of the resolved config (16 hex digits): equal configs, however
// written (key order, comments, "1 2" or [1, 2]), hash alike.
func (t *Test) Hash() string {
	data, err := yaml.Marshal(&t.Config)
	if err != nil {
		data = fmt.Appendf(nil, "%#v", t.Config)
	}
	sum := sha256.New()
	sum.Write([]byte(t.Type + "\x00" + t.Category + "\x00"))
	sum.Write(data)
	return hex.EncodeToString(sum.Sum(nil))[:16]
}

// IsPlaceholder reports whether a value is a template placeholder such as
// "<partition>", which the seed's configs commit and the environment fills in.
func IsPlaceholder(s string) bool {
	s = strings.TrimSpace(s)
	return len(s) > 2 && s[0] == '<' && s[len(s)-1] == '>'
}

// envFields are the config fields the environment fills: directly (the variable's value)
// or, where direct is false, by a rule in Resolve (MODEL_DIR joined with the model's
// folder, ...). fill names what to set when the field holds a placeholder.
var envFields = []struct {
	field, env, fill string
	direct           bool
	value            func(*Config) *string
}{
	{"slurm.partition", EnvSlurmPartition, EnvSlurmPartition, true, func(c *Config) *string { return &c.Slurm.Partition }},
	{"slurm.account", EnvSlurmAccount, EnvSlurmAccount, true, func(c *Config) *string { return &c.Slurm.Account }},
	{"slurm.job_name", EnvSlurmJobName, EnvSlurmJobName, true, func(c *Config) *string { return &c.Slurm.JobName }},
	{"environment.container_image", EnvContainerImage, EnvContainerImage, true, func(c *Config) *string { return &c.Environment.ContainerImage }},
	{"environment.container_mount", EnvContainerMount, EnvContainerMount, true, func(c *Config) *string { return &c.Environment.ContainerMount }},
	{"environment.trtllm_repo", EnvRepoDir, EnvRepoDir, true, func(c *Config) *string { return &c.Environment.TrtllmRepo }},
	{"environment.trtllm_wheel_path", EnvTrtllmWheelPath, EnvTrtllmWheelPath, true, func(c *Config) *string { return &c.Environment.TrtllmWheelPath }},
	{"environment.work_dir", EnvWorkDir, EnvWorkDir, true, func(c *Config) *string { return &c.Environment.WorkDir }},
	{"environment.model_path", EnvModelDir, EnvModelDir + " (with metadata.model_dir_name)", false, func(c *Config) *string { return &c.Environment.ModelPath }},
	{"benchmark.dataset_file", EnvDatasetDir, EnvDatasetDir, false, func(c *Config) *string { return &c.Benchmark.DatasetFile }},
	{"accuracy.env_var.HF_HOME", EnvHFHomeDir, EnvHFHomeDir, false, func(c *Config) *string {
		v := c.Accuracy.EnvVar["HF_HOME"]
		return &v // read only: Resolve sets HF_HOME itself
	}},
}
