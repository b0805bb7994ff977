package config

import (
	"fmt"
	stdmaps "maps"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/refs"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

// Enumerations the validator checks.
var (
	BenchmarkModes    = []string{"e2e", "gen_only", "gen_only_no_context"}
	BenchmarkClients  = []string{"benchmark_serving", "builtin"}
	CacheBackends     = []string{"UCX", "NIXL", "DEFAULT"}
	AccuracyFilters   = []string{"flexible-extract", "strict-match"}
	ThresholdTypes    = []string{"hypothesis_test"}
	SpeculativeModes  = []string{"MTP", "Eagle", "Eagle3", "NGram", "Draft_Target", "UserProvided", "AUTO"}
	maxConcurrencies  = 256
	envAssignmentName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	profileRangeRe    = regexp.MustCompile(`^(\d{1,9})-(\d{1,9})$`)
	testIDRe          = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$`)
	cudaArchRe        = regexp.MustCompile(`^[0-9a-zA-Z;\- ]+$`)
)

// validator collects one test's problems.
type validator struct {
	t                 *Test
	problems          []Problem
	placeholderFields map[string]bool
}

// placeholders reports fields still holding a template placeholder ("<partition>").
func (v *validator) placeholders(c *Config) bool {
	for _, f := range envFields {
		if val := *f.value(c); IsPlaceholder(val) {
			if v.placeholderFields == nil {
				v.placeholderFields = map[string]bool{}
			}
			v.placeholderFields[f.field] = true
			v.errorf(f.field, "%s is a placeholder: set %s or write the value", val, f.fill)
		}
	}
	return len(v.placeholderFields) > 0
}

func (v *validator) add(warning bool, field, format string, args ...any) {
	pos := v.t.pos.posOf(field)
	msg := fmt.Sprintf(format, args...)
	if src := v.t.Sources[field]; src != "" && src != "default" {
		msg += " (value from " + src + ")"
	}
	v.problems = append(v.problems, Problem{File: v.t.Path, Line: pos.Line, Col: pos.Col, Field: field, Message: msg, Warning: warning})
}

func (v *validator) errorf(field, format string, args ...any) { v.add(false, field, format, args...) }
func (v *validator) warnf(field, format string, args ...any)  { v.add(true, field, format, args...) }

// Validate returns every problem of the test at once: those found while loading (syntax,
// unknown keys, types, duplicate ids) and those of the rules below, sorted by position.
// Warnings have Warning set; the test is valid when no problem is an error.
func (t *Test) Validate() []Problem {
	if t.pos == nil {
		t.pos = &positions{value: map[string]Pos{}, key: map[string]Pos{}}
	}
	v := &validator{t: t}
	v.problems = append(v.problems, t.problems...)
	if !t.unreadable {
		v.rules()
	}
	SortProblems(v.problems)
	return v.problems
}

func (v *validator) rules() {
	c := &v.t.Config
	if v.placeholders(c) {
		// Placeholders are reported once, not again by each field's own rule.
		defer func() {
			v.problems = slices.DeleteFunc(v.problems, func(p Problem) bool {
				return v.placeholderFields[p.Field] && !strings.Contains(p.Message, "placeholder")
			})
		}()
	}
	if missing := v.missingSections(); len(missing) > 0 {
		// One problem per missing section, not one per field in it.
		defer func() {
			v.problems = slices.DeleteFunc(v.problems, func(p Problem) bool {
				return strings.HasPrefix(p.Message, "is required") && slices.ContainsFunc(missing, func(s string) bool { return strings.HasPrefix(p.Field, s+".") })
			})
		}()
	}
	if !testIDRe.MatchString(v.t.ID) {
		v.errorf("", "the file name makes the test id %q, which may only hold letters, digits, '.', '_', '-' and '+' (it names SLURM jobs and log folders)", v.t.ID)
	}
	v.metadata(c)
	v.slurm(c)
	v.benchmark(c)
	v.hardware(c)
	ctxOK := v.worker("worker_config.ctx", &c.WorkerConfig.Ctx, c.Hardware.GPUsPerNode)
	genOK := v.worker("worker_config.gen", &c.WorkerConfig.Gen, c.Hardware.GPUsPerNode)
	v.seedRules(c, ctxOK, genOK)
	v.environment(c)
	v.profiling(c)
	v.accuracy(c)
	v.metrics(c)
	v.references(c)
	v.fileName(c)
}

var runIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// references checks the references: a known metric of the test, one kind of bound
// (min/max, value or baseline, the last two with a tolerance >= 0), a known GPU type, a
// concurrency the test runs.
func (v *validator) references(c *Config) {
	perf := v.t.Category != "accuracy"
	custom := v.t.Metrics().MetricNames
	for i, r := range c.References {
		p := fmt.Sprintf("references[%d]", i)
		switch {
		case r.Metric == "":
			v.errorf(p+".metric", "is required")
		case perf && v.t.Config.CustomMetrics() == nil && !refs.KnownPerfMetric(r.Metric):
			msg := fmt.Sprintf("%q is not a metric of a perf test's dataset (SERVER_MEDIAN_TTFT, OUTPUT_THROUGHPUT, %s, ...)", r.Metric, strings.Join(refs.Derived, ", "))
			if s := closest(r.Metric, append(slices.Clone(refs.Derived), "SERVER_MEDIAN_TTFT", "SERVER_MEDIAN_TPOT", "SERVER_MEDIAN_ITL", "SERVER_MEDIAN_E2EL",
				"SERVER_P99_TTFT", "SERVER_P99_TPOT", "OUTPUT_THROUGHPUT", "TOTAL_THROUGHPUT", "USER_THROUGHPUT", "REQUEST_THROUGHPUT")); s != "" {
				msg += fmt.Sprintf(": did you mean %q?", s)
			}
			v.errorf(p+".metric", "%s", msg)
		case perf && v.t.Config.CustomMetrics() != nil && !refs.KnownPerfMetric(r.Metric) && !slices.Contains(custom, r.Metric):
			v.errorf(p+".metric", "%q is neither a metric of the client's result block nor one of metric_names %v", r.Metric, custom)
		}
		if r.GPU != "" && !slices.Contains(KnownGPUTypes(), NormalizeGPU(r.GPU)) {
			v.errorf(p+".gpu", "unknown GPU type %q: known types are %s", r.GPU, strings.Join(KnownGPUTypes(), ", "))
		}
		if r.Concurrency < 0 {
			v.errorf(p+".concurrency", "must be at least 1, got %d", r.Concurrency)
		} else if r.Concurrency > 0 && perf && len(c.Benchmark.ConcurrencyList) > 0 && !v.runsConcurrency(c, r.Concurrency) {
			v.warnf(p+".concurrency", "%d is not a concurrency the test runs (%v times %d gen servers): the reference never applies", r.Concurrency, []int(c.Benchmark.ConcurrencyList), max(1, c.Hardware.NumGenServers))
		}
		bounds := r.Min != nil || r.Max != nil
		kinds := 0
		for _, set := range []bool{bounds, r.Value != nil, r.Baseline != nil} {
			if set {
				kinds++
			}
		}
		switch {
		case kinds == 0:
			v.errorf(p, "needs min, max, value or baseline")
		case kinds > 1:
			v.errorf(p, "takes one kind of reference: min and/or max, or value, or baseline")
		}
		if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			v.errorf(p+".min", "%g is above max %g", *r.Min, *r.Max)
		}
		for _, b := range []struct {
			name string
			val  *float64
		}{{"min", r.Min}, {"max", r.Max}, {"value", r.Value}} {
			if b.val != nil && (math.IsNaN(*b.val) || math.IsInf(*b.val, 0)) {
				v.errorf(p+"."+b.name, "must be a finite number")
			}
		}
		switch {
		case r.Tolerance != nil && (math.IsNaN(*r.Tolerance) || *r.Tolerance < 0):
			v.errorf(p+".tolerance", "must be 0 or more (a fraction: 0.05 allows 5%%), got %g", *r.Tolerance)
		case r.Tolerance != nil && *r.Tolerance >= 10:
			v.errorf(p+".tolerance", "%g allows a change of %g%%: write a fraction (0.05 for 5%%)", *r.Tolerance, *r.Tolerance*100)
		case r.Tolerance == nil && (r.Value != nil || r.Baseline != nil):
			v.errorf(p+".tolerance", "is required with value or baseline (0.05 allows a 5%% change in the bad direction)")
		case r.Tolerance != nil && bounds && r.Value == nil && r.Baseline == nil:
			v.errorf(p+".tolerance", "goes with value or baseline; min and max are absolute")
		}
		if b := r.Baseline; b != nil {
			switch {
			case (b.Run == "") == (b.Last == 0):
				v.errorf(p+".baseline", "takes one of run: RUN_ID or last: N")
			case b.Run != "" && !runIDRe.MatchString(b.Run):
				v.errorf(p+".baseline.run", "%q is not a run id", b.Run)
			case b.Last < 0 || b.Last > 100:
				v.errorf(p+".baseline.last", "must be from 1 to 100, got %d", b.Last)
			}
		}
	}
}

// runsConcurrency says whether n is one of the concurrencies the client runs (the
// configured ones times the gen servers) or a configured one.
func (v *validator) runsConcurrency(c *Config, n int) bool {
	g := max(1, c.Hardware.NumGenServers)
	for _, x := range c.Benchmark.ConcurrencyList {
		if x == n || x*g == n {
			return true
		}
	}
	return false
}

// requiredSections are the sections every config writes.
var requiredSections = []string{"metadata", "slurm", "benchmark", "hardware", "worker_config", "worker_config.ctx", "worker_config.gen"}

// missingSections reports each required section the file does not write.
func (v *validator) missingSections() []string {
	var missing []string
	for _, s := range requiredSections {
		if strings.HasPrefix(s, "worker_config.") && slices.Contains(missing, "worker_config") {
			continue
		}
		if !v.t.written(s) {
			missing = append(missing, s)
			v.errorf(s, "section %s is missing", s)
		}
	}
	return missing
}

func (v *validator) required(field, value string) bool {
	if strings.TrimSpace(value) == "" {
		v.errorf(field, "is required")
		return false
	}
	return true
}

func (v *validator) positive(field string, n int) bool {
	if n <= 0 {
		if !v.t.written(field) {
			v.errorf(field, "is required (a whole number > 0)")
		} else {
			v.errorf(field, "must be > 0, got %d", n)
		}
		return false
	}
	return true
}

func (v *validator) nonNegative(field string, n int) {
	if n < 0 {
		v.errorf(field, "must be >= 0, got %d", n)
	}
}

func (v *validator) oneOf(field, value string, allowed []string) {
	if value == "" || slices.Contains(allowed, value) {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(a, value) {
			v.errorf(field, "%q must be written %q", value, a)
			return
		}
	}
	v.errorf(field, "%q is not one of %s", value, strings.Join(allowed, ", "))
}

func (v *validator) metadata(c *Config) {
	m := &c.Metadata
	v.required("metadata.model_name", m.ModelName)
	v.required("metadata.precision", m.Precision)
	if len(m.SupportedGPUs) == 0 {
		v.errorf("metadata.supported_gpus", "must list at least one GPU type (%s)", strings.Join(KnownGPUTypes(), ", "))
	}
	for i, g := range m.SupportedGPUs {
		if _, err := LookupGPU(g); err != nil || strings.TrimSpace(g) == "" {
			v.errorf(fmt.Sprintf("metadata.supported_gpus[%d]", i), "unknown GPU type %q (known: %s)", g, strings.Join(KnownGPUTypes(), ", "))
		}
	}
	if m.BenchmarkType != "" && c.Benchmark.InputLength > 0 && c.Benchmark.OutputLength > 0 {
		if want := BenchmarkType(c.Benchmark.InputLength, c.Benchmark.OutputLength); m.BenchmarkType != want {
			v.warnf("metadata.benchmark_type", "%q does not match input_length %d and output_length %d (%s)", m.BenchmarkType, c.Benchmark.InputLength, c.Benchmark.OutputLength, want)
		}
	}
}

func (v *validator) slurm(c *Config) {
	s := &c.Slurm
	for _, f := range []struct {
		field, value string
		required     bool
	}{
		{"slurm.partition", s.Partition, true},
		{"slurm.account", s.Account, true},
		{"slurm.job_name", s.JobName, false},
	} {
		if f.value == "" {
			if f.required {
				v.errorf(f.field, "is required (or set %s)", map[string]string{"slurm.partition": EnvSlurmPartition, "slurm.account": EnvSlurmAccount}[f.field])
			}
			continue
		}
		if err := CheckSlurmName(f.value); err != nil {
			v.errorf(f.field, "%v", err)
		}
	}
	if v.required("slurm.job_time", s.JobTime) {
		if _, err := ParseJobTime(s.JobTime); err != nil {
			v.errorf("slurm.job_time", "%v", err)
		}
	}
	if s.ExtraArgs != "" {
		if _, err := SplitExtraArgs(s.ExtraArgs); err != nil {
			v.errorf("slurm.extra_args", "%v", strings.TrimPrefix(err.Error(), "extra_args: "))
		}
	}
	for _, f := range []struct{ field, value string }{{"slurm.script_file", s.ScriptFile}, {"metadata.script_file", c.Metadata.ScriptFile}} {
		if f.value != "" && !safePath(f.value) {
			v.errorf(f.field, "%q is not a safe file name (no control characters, ';', '$' or backticks)", f.value)
		}
	}
}

// safePath refuses characters that only ever appear in a path to smuggle a command.
func safePath(s string) bool {
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || strings.ContainsRune(";$`", r) })
}

func (v *validator) benchmark(c *Config) {
	b := &c.Benchmark
	if v.required("benchmark.mode", b.Mode) {
		v.oneOf("benchmark.mode", b.Mode, BenchmarkModes)
	}
	if b.Client != "" {
		v.oneOf("benchmark.client", b.Client, BenchmarkClients)
	}
	v.positive("benchmark.input_length", b.InputLength)
	v.positive("benchmark.output_length", b.OutputLength)
	v.nonNegative("benchmark.multi_round", b.MultiRound)
	if b.BenchmarkRatio < 0 || b.BenchmarkRatio > 1 {
		v.errorf("benchmark.benchmark_ratio", "must be between 0 and 1, got %g", b.BenchmarkRatio)
	}
	if len(b.ConcurrencyList) == 0 {
		v.errorf("benchmark.concurrency_list", "must list at least one concurrency")
	}
	if len(b.ConcurrencyList) > maxConcurrencies {
		v.errorf("benchmark.concurrency_list", "has %d entries, more than %d", len(b.ConcurrencyList), maxConcurrencies)
	}
	seen := map[int]bool{}
	for i, n := range b.ConcurrencyList {
		field := v.concurrencyField(i)
		if n <= 0 {
			v.errorf(field, "concurrency must be > 0, got %d", n)
		}
		if seen[n] {
			v.warnf(field, "concurrency %d is listed twice", n)
		}
		seen[n] = true
	}
	for _, k := range slices.Sorted(stdmaps.Keys(b.EnvVar)) {
		switch {
		case !envAssignmentName.MatchString(k):
			v.errorf("benchmark.env_var."+k, "%q is not an environment variable name", k)
		case strings.ContainsRune(b.EnvVar[k], 0):
			v.errorf("benchmark.env_var."+k, "the value holds a NUL byte")
		}
	}
	if c.Benchmark.Metrics != nil && c.Metadata.Metrics != nil {
		v.errorf("benchmark.metrics", "custom metrics are set both here and in metadata.metrics: keep one")
	}
}

// concurrencyField is the path of one concurrency: the list entry when the file wrote
// a list, the whole value when it wrote "1 2 4".
func (v *validator) concurrencyField(i int) string {
	f := fmt.Sprintf("benchmark.concurrency_list[%d]", i)
	if v.t.written(f) {
		return f
	}
	return "benchmark.concurrency_list"
}

func (v *validator) hardware(c *Config) {
	h := &c.Hardware
	v.positive("hardware.gpus_per_node", h.GPUsPerNode)
	if c.Benchmark.Mode == "e2e" || c.Benchmark.Mode == "" {
		v.positive("hardware.num_ctx_servers", h.NumCtxServers)
	} else {
		v.nonNegative("hardware.num_ctx_servers", h.NumCtxServers)
	}
	v.positive("hardware.num_gen_servers", h.NumGenServers)
	if h.GPUType != "" {
		if _, err := LookupGPU(h.GPUType); err != nil {
			v.errorf("hardware.gpu_type", "%v", err)
		}
	}
}

// worker checks one server kind's parallelism and limits; it reports whether the
// numbers the seed's rules use are present.
func (v *validator) worker(path string, w *Worker, gpusPerNode int) bool {
	ok := v.positive(path+".tensor_parallel_size", w.TensorParallelSize)
	v.nonNegative(path+".pipeline_parallel_size", w.PipelineParallelSize)
	v.nonNegative(path+".context_parallel_size", w.ContextParallelSize)
	v.nonNegative(path+".moe_expert_parallel_size", w.MoeExpertParallelSize)
	ok = v.positive(path+".max_batch_size", w.MaxBatchSize) && ok
	ok = v.positive(path+".max_num_tokens", w.MaxNumTokens) && ok
	ok = v.positive(path+".max_seq_len", w.MaxSeqLen) && ok
	if ep := w.MoeExpertParallelSize; ep > 0 && w.TensorParallelSize > 0 && w.TensorParallelSize%ep != 0 {
		v.errorf(path+".moe_expert_parallel_size", "%d must divide tensor_parallel_size %d", ep, w.TensorParallelSize)
	}
	if gpusPerNode > 0 && w.TensorParallelSize > 0 && w.PipelineParallelSize >= 0 && w.ContextParallelSize >= 0 {
		g := w.GPUsPerServer()
		if (g < gpusPerNode && gpusPerNode%g != 0) || (g > gpusPerNode && g%gpusPerNode != 0) {
			v.errorf(path+".tensor_parallel_size", "one server uses tp*pp*cp = %d GPUs, which does not fit gpus_per_node %d: use a divisor or a multiple of it", g, gpusPerNode)
		}
	}
	if s := w.SpeculativeConfig; s != nil {
		v.nonNegative(path+".speculative_config.num_nextn_predict_layers", s.NumNextnPredictLayers)
		if s.DecodingType != "" {
			v.oneOf(path+".speculative_config.decoding_type", s.DecodingType, SpeculativeModes)
		}
	}
	if ct := w.CacheTransceiverConfig; ct != nil {
		v.oneOf(path+".cache_transceiver_config.backend", ct.Backend, CacheBackends)
		v.nonNegative(path+".cache_transceiver_config.max_tokens_in_buffer", ct.MaxTokensInBuffer)
	}
	return ok
}

// seedRules are the seed framework's own checks.
func (v *validator) seedRules(c *Config, ctxOK, genOK bool) {
	b, ctx, gen := &c.Benchmark, &c.WorkerConfig.Ctx, &c.WorkerConfig.Gen
	if !b.Streaming {
		if v.t.written("benchmark.streaming") {
			v.errorf("benchmark.streaming", "must be true")
		} else {
			v.errorf("benchmark.streaming", "is required and must be true")
		}
	}
	if mtp := c.MTP(); mtp > 0 && genOK {
		// The seed's code checks ">=" (its README says "equal"); the code is followed:
		// below the budget is an error, above it a warning (upstream's configs do so).
		if want := gen.MaxBatchSize * (mtp + 1); gen.MaxNumTokens < want {
			v.errorf("worker_config.gen.max_num_tokens", "with MTP (num_nextn_predict_layers %d) must be at least max_batch_size * (mtp + 1) = %d * %d = %d, got %d",
				mtp, gen.MaxBatchSize, mtp+1, want, gen.MaxNumTokens)
		} else if gen.MaxNumTokens > want {
			v.warnf("worker_config.gen.max_num_tokens", "with MTP (num_nextn_predict_layers %d) is above max_batch_size * (mtp + 1) = %d * %d = %d, got %d",
				mtp, gen.MaxBatchSize, mtp+1, want, gen.MaxNumTokens)
		}
	}
	if seq := b.InputLength + b.OutputLength; b.InputLength > 0 && b.OutputLength > 0 {
		if ctxOK && ctx.MaxSeqLen <= seq {
			v.errorf("worker_config.ctx.max_seq_len", "%d must exceed input_length + output_length = %d", ctx.MaxSeqLen, seq)
		}
		if genOK && gen.MaxSeqLen <= seq {
			v.errorf("worker_config.gen.max_seq_len", "%d must exceed input_length + output_length = %d", gen.MaxSeqLen, seq)
		}
	}
	if genOK {
		limit, how := gen.MaxBatchSize, fmt.Sprintf("gen max_batch_size %d", gen.MaxBatchSize)
		if gen.EnableAttentionDP {
			limit = gen.MaxBatchSize * gen.TensorParallelSize
			how = fmt.Sprintf("gen max_batch_size * tensor_parallel_size = %d * %d (attention DP)", gen.MaxBatchSize, gen.TensorParallelSize)
		}
		for i, n := range b.ConcurrencyList {
			if n > limit {
				v.errorf(v.concurrencyField(i), "concurrency %d exceeds %s = %d", n, how, limit)
			}
		}
	}
}

func (v *validator) environment(c *Config) {
	e := &c.Environment
	if e.ContainerImage == "" && !e.Emulate {
		v.errorf("environment.container_image", "is required (or set %s)", EnvContainerImage)
	}
	if e.ModelPath == "" {
		v.errorf("environment.model_path", "is required (or set %s with metadata.model_dir_name)", EnvModelDir)
	}
	for _, f := range []struct{ field, value string }{
		{"environment.worker_env_var", e.WorkerEnvVar},
		{"environment.ctx_worker_env_var", e.CtxWorkerEnvVar},
		{"environment.gen_worker_env_var", e.GenWorkerEnvVar},
		{"environment.server_env_var", e.ServerEnvVar},
	} {
		v.envAssignments(f.field, f.value)
	}
	for _, f := range []struct{ field, value string }{
		{"environment.container_mount", e.ContainerMount}, {"environment.container_image", e.ContainerImage},
		{"environment.model_path", e.ModelPath}, {"environment.trtllm_repo", e.TrtllmRepo},
		{"environment.trtllm_wheel_path", e.TrtllmWheelPath}, {"environment.work_dir", e.WorkDir},
		{"environment.log_dir", e.LogDir}, {"benchmark.dataset_file", c.Benchmark.DatasetFile},
	} {
		if !safePath(f.value) {
			v.errorf(f.field, "%q holds a control character, ';', '$' or a backtick", f.value)
		}
	}
	if e.CudaArchitectures != "" && !cudaArchRe.MatchString(e.CudaArchitectures) {
		v.errorf("environment.cuda_architectures", "%q is not a CUDA architecture list such as \"100-real\"", e.CudaArchitectures)
	}
}

// envAssignments checks a "K=V K=V" list.
func (v *validator) envAssignments(field, s string) {
	if strings.ContainsAny(s, "\n\r\x00`$;") {
		v.errorf(field, "may not hold newlines, '$', ';' or backticks: write K=V pairs separated by spaces")
		return
	}
	for _, kv := range strings.Fields(s) {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envAssignmentName.MatchString(k) {
			v.errorf(field, "%q is not a NAME=value assignment", kv)
			return
		}
	}
}

func (v *validator) profiling(c *Config) {
	p := &c.Profiling
	for _, f := range []struct{ field, value string }{
		{"profiling.ctx_profile_range", p.CtxProfileRange}, {"profiling.gen_profile_range", p.GenProfileRange},
	} {
		if f.value == "" {
			continue
		}
		m := profileRangeRe.FindStringSubmatch(f.value)
		if m == nil {
			v.errorf(f.field, "%q is not an iteration range such as \"10-30\"", f.value)
			continue
		}
		lo, _ := strconv.Atoi(m[1])
		hi, _ := strconv.Atoi(m[2])
		if lo > hi {
			v.errorf(f.field, "range %q starts after it ends", f.value)
		}
	}
}

func (v *validator) accuracy(c *Config) {
	a := &c.Accuracy
	for name, task := range a.Tasks {
		if !envAssignmentName.MatchString(strings.ReplaceAll(name, "-", "_")) {
			v.errorf("accuracy.tasks."+name, "%q is not an lm_eval task name", name)
		}
		if strings.ContainsAny(task.Model+task.ModelArgsExtra, "\n\r;$`") {
			v.errorf("accuracy.tasks."+name, "model and model_args_extra may not hold newlines, ';', '$' or backticks")
		}
	}
	if strings.ContainsAny(a.Model+a.ModelArgsExtra, "\n\r;$`") {
		v.errorf("accuracy", "model and model_args_extra may not hold newlines, ';', '$' or backticks")
	}
	for k := range a.EnvVar {
		if !envAssignmentName.MatchString(k) {
			v.errorf("accuracy.env_var."+k, "%q is not an environment variable name", k)
		}
	}
	if v.t.Category == "accuracy" || v.t.Category == "stress" {
		if !a.EnableAccuracyTest {
			v.errorf("accuracy.enable_accuracy_test", "must be true: %s tests run lm_eval", v.t.Category)
		}
		if len(a.Tasks) == 0 {
			v.errorf("accuracy.tasks", "%s tests need at least one lm_eval task", v.t.Category)
		}
		if c.Metadata.Accuracy == nil || len(c.Metadata.Accuracy.Datasets) == 0 {
			v.errorf("metadata.accuracy.datasets", "%s tests need at least one dataset with its expected value", v.t.Category)
		}
	}
	if c.Metadata.Accuracy == nil {
		return
	}
	names := map[string]bool{}
	for i, ds := range c.Metadata.Accuracy.Datasets {
		p := fmt.Sprintf("metadata.accuracy.datasets[%d]", i)
		if v.required(p+".dataset_name", ds.DatasetName) {
			if FormulaLike(ds.DatasetName) {
				v.errorf(p+".dataset_name", "%q starts with %q, which a spreadsheet opening the CSV would run as a formula", ds.DatasetName, ds.DatasetName[:1])
			}
			if names[strings.ToLower(ds.DatasetName)] {
				v.errorf(p+".dataset_name", "dataset %q is listed twice", ds.DatasetName)
			}
			names[strings.ToLower(ds.DatasetName)] = true
			if _, ok := a.Tasks[ds.DatasetName]; len(a.Tasks) > 0 && !ok {
				v.warnf(p+".dataset_name", "no accuracy.tasks entry runs %q", ds.DatasetName)
			}
		}
		if !v.t.written(p + ".expected_value") {
			v.errorf(p+".expected_value", "is required")
		} else if ds.ExpectedValue <= 0 {
			v.errorf(p+".expected_value", "must be > 0, got %g", ds.ExpectedValue)
		}
		v.oneOf(p+".threshold_type", ds.ThresholdType, ThresholdTypes)
		v.oneOf(p+".filter_type", ds.FilterType, AccuracyFilters)
		for _, f := range []struct {
			name string
			val  *float64
		}{{"alpha", ds.Alpha}, {"beta", ds.Beta}} {
			if f.val != nil && (*f.val <= 0 || *f.val >= 1) {
				v.errorf(p+"."+f.name, "must be between 0 and 1 (exclusive), got %g", *f.val)
			}
		}
		if ds.Sigma != nil {
			switch {
			case *ds.Sigma < 0:
				v.errorf(p+".sigma", "must be >= 0, got %g", *ds.Sigma)
			case *ds.Sigma > 0 && *ds.Sigma <= 1:
				v.warnf(p+".sigma", "%g looks like a fraction: sigma is on the 0-100 score scale (gsm8k uses 50)", *ds.Sigma)
			}
		}
		if ds.NumSamples != nil && *ds.NumSamples <= 0 {
			v.errorf(p+".num_samples", "must be > 0, got %d", *ds.NumSamples)
		}
	}
}

func (v *validator) metrics(c *Config) {
	field := "benchmark.metrics"
	m := c.Benchmark.Metrics
	if m == nil {
		field, m = "metadata.metrics", c.Metadata.Metrics
	}
	if m == nil {
		return
	}
	if m.LogFile != "" && (strings.Contains(m.LogFile, "..") || filepath.IsAbs(m.LogFile) || !safePath(m.LogFile)) {
		v.errorf(field+".log_file", "%q must be a file name inside the job's log folder", m.LogFile)
	}
	if m.ExtractorPattern != "" {
		if err := pyre.Check(m.ExtractorPattern); err != nil {
			v.errorf(field+".extractor_pattern", "%v", err)
		} else if re, err := pyre.Compile(m.ExtractorPattern); err == nil && v.t.Category != "accuracy" {
			names := v.t.Metrics().MetricNames
			if re.NumSubexp() != len(names)+1 {
				v.errorf(field+".extractor_pattern", "has %d groups; a perf pattern needs one per metric name (%d) plus the concurrency last", re.NumSubexp(), len(names))
			}
		}
	}
	for i, n := range m.MetricNames {
		if strings.TrimSpace(n) == "" {
			v.errorf(fmt.Sprintf("%s.metric_names[%d]", field, i), "metric names may not be empty")
		} else if FormulaLike(n) {
			v.errorf(fmt.Sprintf("%s.metric_names[%d]", field, i), "%q starts with %q, which a spreadsheet opening the CSV would run as a formula", n, n[:1])
		}
	}
}

// nameToken reads one token of the seed's file name convention: "1k1k", "ctx2",
// "gen4", "dep16"/"tep8", "bs32", "eplb288", "mtp3" or "ccb-NIXL". kind is "" for any
// other token.
func nameToken(tok string) (kind string, a, b int, word string) {
	num := func(s string) (int, bool) {
		if s == "" || len(s) > 9 {
			return 0, false
		}
		n, err := strconv.Atoi(s)
		return n, err == nil && s[0] != '+' && s[0] != '-'
	}
	if rest, ok := strings.CutPrefix(tok, "ccb-"); ok && rest != "" {
		rest, _, _ = strings.Cut(rest, "-") // ccb-NIXL-python
		return "ccb", 0, 0, rest
	}
	for _, p := range []string{"ctx", "gen", "dep", "tep", "bs", "eplb", "mtp"} {
		if rest, ok := strings.CutPrefix(tok, p); ok {
			if n, ok := num(rest); ok {
				return p, n, 0, ""
			}
			return "", 0, 0, ""
		}
	}
	if in, out, ok := strings.Cut(strings.TrimSuffix(tok, "k"), "k"); ok && strings.HasSuffix(tok, "k") {
		if x, ok := num(in); ok {
			if y, ok := num(out); ok {
				return "len", x, y, ""
			}
		}
	}
	return "", 0, 0, ""
}

// fileName warns where the file name, by the seed's convention
// ({model}_{isl}k{osl}k_ctx{N}_gen{M}_{dep|tep}{TP}_bs{B}_eplb{E}_mtp{T}_ccb-{backend}),
// says something the config contradicts.
func (v *validator) fileName(c *Config) {
	stem := strings.TrimSuffix(filepath.Base(v.t.Path), filepath.Ext(v.t.Path))
	gen := &c.WorkerConfig.Gen
	// Parallelism and batch tokens describe the gen workers, unless they sit between
	// ctx{N} and gen{M} (ctx1_dep4_bs16_gen1_dep32_bs32), where they describe ctx's.
	side, sideName := gen, "gen"
	for _, tok := range strings.Split(stem, "_") {
		kind, n, m, word := nameToken(tok)
		switch kind {
		case "ctx":
			side, sideName = &c.WorkerConfig.Ctx, "ctx"
		case "gen":
			side, sideName = gen, "gen"
		}
		switch kind {
		case "len":
			isl, osl := n*1024, m*1024
			if c.Benchmark.InputLength > 0 && c.Benchmark.InputLength != isl || c.Benchmark.OutputLength > 0 && c.Benchmark.OutputLength != osl {
				v.warnf("benchmark.input_length", "file name says %s (input %d, output %d) but the config has input_length %d, output_length %d", tok, isl, osl, c.Benchmark.InputLength, c.Benchmark.OutputLength)
			}
		case "ctx":
			if n != c.Hardware.NumCtxServers {
				v.warnf("hardware.num_ctx_servers", "file name says %s but num_ctx_servers is %d", tok, c.Hardware.NumCtxServers)
			}
		case "gen":
			if n != c.Hardware.NumGenServers {
				v.warnf("hardware.num_gen_servers", "file name says %s but num_gen_servers is %d", tok, c.Hardware.NumGenServers)
			}
		case "dep", "tep":
			if n != side.TensorParallelSize {
				v.warnf("worker_config."+sideName+".tensor_parallel_size", "file name says %s but %s tensor_parallel_size is %d", tok, sideName, side.TensorParallelSize)
			}
			if dep := kind == "dep"; dep != side.EnableAttentionDP {
				v.warnf("worker_config."+sideName+".enable_attention_dp", "file name says %s (attention DP %s) but %s enable_attention_dp is %t", tok, map[bool]string{true: "on", false: "off"}[dep], sideName, side.EnableAttentionDP)
			}
		case "bs":
			if n != side.MaxBatchSize {
				v.warnf("worker_config."+sideName+".max_batch_size", "file name says %s but %s max_batch_size is %d", tok, sideName, side.MaxBatchSize)
			}
		case "eplb":
			if slots := eplbSlots(gen); n != slots {
				v.warnf("worker_config.gen.moe_config", "file name says %s but gen moe_config.load_balancer.num_slots is %d", tok, slots)
			}
		case "mtp":
			if n != c.MTP() {
				v.warnf("worker_config.gen.speculative_config", "file name says %s but gen num_nextn_predict_layers is %d", tok, c.MTP())
			}
		case "ccb":
			backend := ""
			if ct := gen.CacheTransceiverConfig; ct != nil {
				backend = ct.Backend
			}
			if !strings.EqualFold(word, backend) {
				v.warnf("worker_config.gen.cache_transceiver_config", "file name says %s but gen cache_transceiver_config.backend is %q", tok, backend)
			}
		}
	}
}

// eplbSlots reads moe_config.load_balancer.num_slots from a worker's carried options
// (0 when absent).
func eplbSlots(w *Worker) int {
	moe, _ := w.Extra["moe_config"].(map[string]any)
	lb, _ := moe["load_balancer"].(map[string]any)
	switch n := lb["num_slots"].(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// FormulaLike reports whether a name would start a CSV cell that a spreadsheet runs as
// a formula (OWASP's list: '=', '+', '-', '@', tab, carriage return). Names the config
// controls and the CSV shows (metric names, dataset names) may not.
func FormulaLike(s string) bool {
	return s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0]))
}
