package jobscript

// The built-in job script follows TensorRT-LLM's examples/disaggregated/slurm/benchmark
// launcher (docs/jobscript.md): the version the seed framework describes (submit.py
// writing allocations.json, start_server_cmds.sh and client_cmds.sh; named arguments to
// disaggr_torch.slurm) and, where upstream changed later, its newer scripts:
//   - submit.py's allocate_gpus: GEN servers first on one GPU cursor, the router and
//     client on the first GEN node;
//   - submit.py: TLLM_BENCHMARK_REQ_QUEUES_SIZE on GEN workers only (gen_only);
//   - disaggr_torch.slurm: the script folder (here the log folder) in --container-mounts;
//   - run_benchmark.sh and run_benchmark_nv_sa.sh: ucx_warmup_requests =
//     2 x ctx world size x gen world size before the sweep; the nv_sa flow
//     (bench_serving, --random-range-ratio, --use-chat-template, "Total failed requests");
//   - benchmark_utils.sh's do_process_all_logs: per-concurrency iteration-log slices;
//   - accuracy_eval.sh: local-chat-completions on /v1/chat/completions; submit.py's
//     custom_config -> --include_path=<log_dir>/lm_eval_configs;
//   - newer configs: worker variables through srun --export, benchmark.env_var as a
//     mapping, PDL and GC variables in worker_env_var (environment.enable_pdl keeps the
//     older start_worker.sh's enable_pdl).

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Ports of the rendered servers: workers count up from WorkerBasePort (ctx servers
// first, then gen servers, so no two share a port even on one node); the disaggregated
// server listens on ServerPort on the first node.
const (
	WorkerBasePort = 8000
	ServerPort     = 8333
)

// Data is what every job script template sees: the default script and a test's own
// template (slurm.script_file) are rendered from the same fields.
type Data struct {
	Test          *config.Test
	Config        *config.Config
	RunID         string
	LogDir        string // absolute
	GPUType       string // normalized, e.g. GB200
	JobName       string
	Concurrencies []int   // benchmark.concurrency_list as written
	Points        []Point // one per concurrency, in order
	MultiRound    int     // benchmark.multi_round, at least 1

	Nodes       int // ctx nodes + gen nodes
	CtxNodes    int
	GenNodes    int
	NTasks      int
	GPUsPerNode int

	Servers    []Server // ctx servers then gen servers
	ServerPort int      // the disaggregated server's port

	ModelPath        string
	Streaming        bool
	BenchmarkEnabled bool           // benchmark.enable_benchmark (default true)
	AccuracyTasks    []AccuracyTask // empty unless accuracy.enable_accuracy_test
	GenOnlyNoContext bool           // benchmark.mode gen_only_no_context: no ctx workers
	ContainerArgs    []string       // srun's --container-* arguments
	ServerEnv        []string       // environment.server_env_var as NAME=VALUE words
	ClientEnv        []string       // benchmark.env_var as NAME=VALUE words, sorted by name
	Env              config.Env     // Options.Env
	// StepEnv names the variables every srun step receives from the job's environment
	// (srun --export), besides those its config sets: nothing else of the submitting
	// process's environment reaches a worker, the server or a client.
	StepEnv []string
	// WarmupRequests is the number of short requests sent before the sweep in e2e
	// mode (2 x ctx world size x gen world size, as upstream), 0 for none.
	WarmupRequests int
	// TaskFiles are the lm_eval task files of extra_kwargs.custom_config, named
	// lm_eval_config.<file>; the job script copies each to lm_eval_configs/<file>.
	TaskFiles []File
	// NvSa (benchmark.use_nv_sa_benchmark) runs upstream's nv_sa client flow instead
	// of benchmark_serving.
	NvSa bool

	// Emulate (environment.emulate) runs the stand-ins instead of trtllm-serve,
	// benchmark_serving and lm_eval, without containers; BuiltinClient runs the Go
	// benchmark client (benchmark.client builtin, or Emulate). Tools is the binary
	// that provides them.
	Emulate       bool
	BuiltinClient bool
	Tools         string
}

// Host is the bash expression of the address of node i of the job: the node's name,
// or under the emulation the address the job script looked up (a development cluster's
// node names need not resolve).
func (d *Data) Host(i int) string {
	if d.Emulate {
		return fmt.Sprintf("${addrs[%d]}", i)
	}
	return fmt.Sprintf("${nodes[%d]}", i)
}

// PortOf is the bash expression of a rendered port: the port itself, or under the
// emulation the port plus the job's port_offset, so that jobs sharing one machine do
// not collide.
func (d *Data) PortOf(p int) string {
	if d.Emulate {
		return fmt.Sprintf("$((%d + port_offset))", p)
	}
	return strconv.Itoa(p)
}

// Point is one concurrency of the benchmark, as the client runs it.
type Point struct {
	C           int    // the configured concurrency
	Concurrency int    // C times the number of gen servers: what the client runs and logs
	Prompts     int    // Concurrency times multi_round
	ResultDir   string // LogDir/concurrency_<C>, where the client saves result.json
}

// Server is one ctx or gen server: where it runs and how it starts.
type Server struct {
	Role         string // CTX or GEN
	ID           int    // index within its role
	Port         int
	Nodes        []int // indexes into the job's sorted node list
	GPUs         []int // GPU indexes it uses on its first node (CUDA_VISIBLE_DEVICES)
	WorldSize    int   // tp*pp*cp
	TasksPerNode int
	ConfigFile   string // absolute path of its worker config
	LogFile      string // absolute path of 3_output_<role>_<id>.log
	// Env is the worker's environment as NAME=VALUE words (one per name): the srun
	// step receives exactly these names, plus Data.StepEnv, through --export.
	Env []string
	// Devices is CUDA_VISIBLE_DEVICES (GPUs on its first node), set by start_worker.sh
	// inside the step: SLURM sets its own for a step that shares the job's GPUs.
	Devices string
}

// AccuracyTask is one lm_eval task run against the disaggregated server.
type AccuracyTask struct {
	Name      string
	Model     string   // lm_eval --model (default local-completions)
	ModelArgs string   // the part after model=...,base_url=..., (model_args_extra)
	Args      []string // extra lm_eval arguments from extra_kwargs
	LogFile   string   // absolute path of 7_accuracy_eval_<task>.log
	OutputDir string   // lm_eval --output_path
	Env       []string // accuracy.env_var as NAME=VALUE words
}

// baseStepEnv are the variables of the job's environment every srun step receives
// (by name: srun reads their values from the job's environment, so a value may hold
// commas): what a shell, pip and Hugging Face's libraries need. SLURM adds its SLURM_*
// variables itself.
var baseStepEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
	"HF_HOME", "HF_TOKEN", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}

// emulateStepEnv are the stand-ins' own settings, passed on under the emulation.
var emulateStepEnv = []string{"DISAGGBENCH_EMU_SEED", "DISAGGBENCH_SCHEDULER"}

// defaultModelArgsExtra is the seed launcher's model_args_extra when a task sets none.
const defaultModelArgsExtra = "num_concurrent=512,max_retries=3,tokenized_requests=false,timeout=1200,max_gen_toks=256,max_length=4096"

var (
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	taskName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	flagName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

func newData(t *config.Test, opts Options, req scheduler.JobRequest) (*Data, error) {
	c := &t.Config
	d := &Data{
		Test:             t,
		Config:           c,
		RunID:            opts.RunID,
		LogDir:           opts.LogDir,
		GPUType:          config.NormalizeGPU(opts.GPUType),
		JobName:          req.Name,
		Concurrencies:    slices.Clone([]int(c.Benchmark.ConcurrencyList)),
		MultiRound:       max(c.Benchmark.MultiRound, 1),
		Nodes:            req.Nodes,
		NTasks:           req.NTasks,
		GPUsPerNode:      c.Hardware.GPUsPerNode,
		ServerPort:       ServerPort,
		ModelPath:        c.Environment.ModelPath,
		Streaming:        c.Benchmark.Streaming,
		BenchmarkEnabled: c.Benchmark.EnableBenchmark == nil || *c.Benchmark.EnableBenchmark,
		GenOnlyNoContext: c.Benchmark.Mode == "gen_only_no_context",
		Env:              opts.Env,
		Emulate:          c.Environment.Emulate,
		BuiltinClient:    c.Environment.Emulate || c.Benchmark.Client == "builtin",
		Tools:            opts.Tools,
		NvSa:             c.Benchmark.UseNvSaBenchmark,
	}
	if (d.Emulate || d.BuiltinClient) && d.Tools == "" {
		return nil, fmt.Errorf("environment.emulate and benchmark.client builtin need the stand-ins' binary, and none was given")
	}
	if d.Tools != "" && (strings.ContainsAny(d.Tools, "\x00\n\r") || !filepath.IsAbs(d.Tools)) {
		return nil, fmt.Errorf("the stand-ins' binary %q must be an absolute path", d.Tools)
	}
	g := c.Hardware.GPUsPerNode
	d.CtxNodes = (c.CtxGPUs() + g - 1) / g
	d.GenNodes = (c.GenGPUs() + g - 1) / g
	for _, cc := range d.Concurrencies {
		if cc <= 0 {
			return nil, fmt.Errorf("benchmark.concurrency_list: %d is not a positive integer", cc)
		}
		n := cc * c.Hardware.NumGenServers
		d.Points = append(d.Points, Point{C: cc, Concurrency: n, Prompts: n * d.MultiRound,
			ResultDir: filepath.Join(d.LogDir, "concurrency_"+strconv.Itoa(cc))})
	}

	if err := d.containerArgs(); err != nil {
		return nil, err
	}
	if err := d.environments(opts.Env); err != nil {
		return nil, err
	}
	if c.Benchmark.Mode == "" || c.Benchmark.Mode == "e2e" {
		d.WarmupRequests = 2 * c.WorkerConfig.Ctx.GPUsPerServer() * c.WorkerConfig.Gen.GPUsPerServer()
	}
	if err := d.allocate(); err != nil {
		return nil, err
	}
	if c.Accuracy.EnableAccuracyTest {
		if err := d.accuracyTasks(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// envWords splits a "NAME=VALUE NAME=VALUE" setting (split on white space, as the seed's
// launcher does) and checks each word.
func envWords(field, s string) ([]string, error) {
	words := strings.Fields(s)
	for _, w := range words {
		name, _, ok := strings.Cut(w, "=")
		if !ok || !envName.MatchString(name) {
			return nil, fmt.Errorf("%s: %q is not NAME=VALUE with a valid variable name", field, w)
		}
	}
	return words, nil
}

// allocate places the servers as upstream's submit.py does: one GPU cursor over the
// job's nodes, GEN servers first, then CTX servers, each server's GPUs taken in order.
// The disaggregated server and the client run on node 0, the first GEN node.
func (d *Data) allocate() error {
	c := d.Config
	g := d.GPUsPerNode
	workerEnv, err := envWords("environment.worker_env_var", c.Environment.WorkerEnvVar)
	if err != nil {
		return err
	}
	port := WorkerBasePort
	roles := []struct {
		role, file, envField, envVal, profile string
		n                                     int
		w                                     *config.Worker
	}{
		{"GEN", GenConfigFile, "environment.gen_worker_env_var", c.Environment.GenWorkerEnvVar, c.Profiling.GenProfileRange, c.Hardware.NumGenServers, &c.WorkerConfig.Gen},
		{"CTX", CtxConfigFile, "environment.ctx_worker_env_var", c.Environment.CtxWorkerEnvVar, c.Profiling.CtxProfileRange, c.Hardware.NumCtxServers, &c.WorkerConfig.Ctx},
	}
	cursor := 0
	for _, r := range roles {
		roleEnv, err := envWords(r.envField, r.envVal)
		if err != nil {
			return err
		}
		ws := r.w.GPUsPerServer()
		for i := range r.n {
			s := Server{Role: r.role, ID: i, Port: port, WorldSize: ws,
				ConfigFile: filepath.Join(d.LogDir, r.file),
				LogFile:    filepath.Join(d.LogDir, fmt.Sprintf("3_output_%s_%d.log", r.role, i))}
			port++
			for range ws {
				node, gpu := cursor/g, cursor%g
				if len(s.Nodes) == 0 || s.Nodes[len(s.Nodes)-1] != node {
					s.Nodes = append(s.Nodes, node)
				}
				if node == s.Nodes[0] {
					s.GPUs = append(s.GPUs, gpu)
				}
				cursor++
			}
			s.TasksPerNode = (ws + len(s.Nodes) - 1) / len(s.Nodes)
			// srun spreads a multi-node server's ranks evenly (--ntasks-per-node), and
			// each rank sees its node's GPUs from the first: that is the server's GPUs
			// only when it fills whole nodes.
			if len(s.Nodes) > 1 && (s.GPUs[0] != 0 || ws%g != 0) {
				return fmt.Errorf("worker_config.%s.tensor_parallel_size: %s server %d has %d GPUs (tp*pp*cp) across %d nodes of %d GPUs, starting at GPU %d: a server on several nodes must fill whole nodes (a multiple of hardware.gpus_per_node, placed after servers that fill theirs)",
					strings.ToLower(r.role), r.role, i, ws, len(s.Nodes), g, s.GPUs[0])
			}
			s.Env = d.serverEnv(r.role, r.profile, slices.Concat(workerEnv, roleEnv))
			gpus := make([]string, len(s.GPUs))
			for k, v := range s.GPUs {
				gpus[k] = strconv.Itoa(v)
			}
			// Set by start_worker.sh inside the step, after SLURM has set its own.
			s.Devices = strings.Join(gpus, ",")
			d.Servers = append(d.Servers, s)
		}
	}
	if last := port - 1; last >= ServerPort {
		return fmt.Errorf("hardware: %d servers need worker ports %d to %d, which reach the disaggregated server's port %d",
			len(d.Servers), WorkerBasePort, last, ServerPort)
	}
	if need := (cursor + g - 1) / g; need > d.Nodes {
		return fmt.Errorf("hardware: the servers need %d nodes of %d GPUs, the job asks for %d", need, g, d.Nodes)
	}
	return nil
}

// lastWins keeps one NAME=VALUE word per name, the last one given, in the order the
// names first appear (a role's variable overrides the all-workers one, as a later
// env word would).
func lastWins(words []string) []string {
	idx := map[string]int{}
	var out []string
	for _, w := range words {
		k, _, _ := strings.Cut(w, "=")
		if i, ok := idx[k]; ok {
			out[i] = w
			continue
		}
		idx[k] = len(out)
		out = append(out, w)
	}
	return out
}

// withLogDirMount returns the container_mount list (pyxis's SRC:DST[:FLAGS],...) with
// logDir:logDir appended unless an entry already maps a folder holding logDir to the
// same path.
func withLogDirMount(mounts, logDir string) (string, error) {
	if strings.ContainsAny(logDir, ",:") {
		return "", fmt.Errorf("log folder %q: ',' and ':' cannot be written in a container mount", logDir)
	}
	for m := range strings.SplitSeq(mounts, ",") {
		parts := strings.Split(m, ":")
		src := filepath.Clean(parts[0])
		dst := src
		if len(parts) > 1 {
			dst = filepath.Clean(parts[1])
		}
		if src == dst && parts[0] != "" && (logDir == src || strings.HasPrefix(logDir, strings.TrimSuffix(src, "/")+"/")) {
			return mounts, nil
		}
	}
	if mounts == "" {
		return logDir + ":" + logDir, nil
	}
	return mounts + "," + logDir + ":" + logDir, nil
}

// firstConcurrency is the concurrency a sweep starts with, 1 for an empty list.
func firstConcurrency(cs []int) int {
	if len(cs) == 0 || cs[0] < 1 {
		return 1
	}
	return cs[0]
}

func (d *Data) accuracyTasks() error {
	a := d.Config.Accuracy
	tasks := a.Tasks
	if len(tasks) == 0 {
		tasks = map[string]config.AccuracyTask{"gsm8k": {}}
	}
	env := make([]string, 0, len(a.EnvVar))
	for _, k := range slices.Sorted(maps.Keys(a.EnvVar)) {
		if !envName.MatchString(k) {
			return fmt.Errorf("accuracy.env_var: %q is not a valid variable name", k)
		}
		env = append(env, k+"="+a.EnvVar[k])
	}
	for _, name := range slices.Sorted(maps.Keys(tasks)) {
		tk := tasks[name]
		if !taskName.MatchString(name) {
			return fmt.Errorf("accuracy.tasks: task name %q must be letters, digits, '_', '.', '-'", name)
		}
		at := AccuracyTask{
			Name:      name,
			Model:     cmp.Or(tk.Model, "local-completions"),
			ModelArgs: cmp.Or(tk.ModelArgsExtra, defaultModelArgsExtra),
			LogFile:   filepath.Join(d.LogDir, AccuracyLogPrefix+name+".log"),
			OutputDir: filepath.Join(d.LogDir, "accuracy_eval_"+name),
			Env:       env,
		}
		for _, k := range slices.Sorted(maps.Keys(tk.ExtraKwargs)) {
			if k == "custom_config" {
				// As upstream: the task files go to <log_dir>/lm_eval_configs, with
				// environment values substituted, and lm_eval includes that folder.
				field := "accuracy.tasks." + name + ".extra_kwargs.custom_config"
				p, ok := tk.ExtraKwargs[k].(string)
				if !ok {
					return fmt.Errorf("%s: want the path of a task file or folder, got %v", field, tk.ExtraKwargs[k])
				}
				files, err := taskFiles(d.Test, field, p, taskEnvLookup(a.EnvVar, d.Env))
				if err != nil {
					return err
				}
				if err := d.addTaskFiles(field, files); err != nil {
					return err
				}
				at.Args = append(at.Args, "--include_path="+filepath.Join(d.LogDir, LMEvalConfigDir))
				continue
			}
			if !flagName.MatchString(k) {
				return fmt.Errorf("accuracy.tasks.%s.extra_kwargs: %q is not a valid option name", name, k)
			}
			switch v := tk.ExtraKwargs[k].(type) {
			case bool:
				if v {
					at.Args = append(at.Args, "--"+k)
				}
			case nil:
				at.Args = append(at.Args, "--"+k)
			case string:
				at.Args = append(at.Args, "--"+k, v)
			case int, int64, uint64, float64:
				at.Args = append(at.Args, "--"+k, fmt.Sprint(v))
			default:
				b, err := json.Marshal(v)
				if err != nil {
					return fmt.Errorf("accuracy.tasks.%s.extra_kwargs.%s: %w", name, k, err)
				}
				at.Args = append(at.Args, "--"+k, string(b))
			}
		}
		d.AccuracyTasks = append(d.AccuracyTasks, at)
	}
	return nil
}

// TaskFileName is the name a task file has in lm_eval_configs/.
func (f File) TaskFileName() string { return strings.TrimPrefix(f.Name, LMEvalConfigPrefix) }

// addTaskFiles adds lm_eval task files to the job; two tasks may bring the same file
// only with the same content.
func (d *Data) addTaskFiles(field string, files []File) error {
	for _, f := range files {
		i := slices.IndexFunc(d.TaskFiles, func(g File) bool { return g.Name == f.Name })
		switch {
		case i < 0:
			d.TaskFiles = append(d.TaskFiles, f)
		case !bytes.Equal(d.TaskFiles[i].Data, f.Data):
			return fmt.Errorf("%s: %s differs from the file of the same name another task brings", field, f.Name)
		}
	}
	return nil
}

// supportScripts are the built-in templates of the job's files beside its script, in
// the order the job lists them, with their modes and whether the job has them.
func (d *Data) supportScripts() []supportScript {
	return []supportScript{
		{StartWorkerFile, 0o755, true},
		{StartServerCmds, 0o644, true},
		{WaitServerFile, 0o755, true},
		{RunBenchmarkFile, 0o755, d.BenchmarkEnabled},
		{AccuracyEvalFile, 0o755, len(d.AccuracyTasks) > 0},
		{ClientCmdsFile, 0o644, true},
	}
}

type supportScript struct {
	name string
	mode uint32
	when bool
}

type workerFile struct {
	name string
	w    *config.Worker
}

// workers are the two worker configs with their file names.
func (d *Data) workers() []workerFile {
	return []workerFile{{CtxConfigFile, &d.Config.WorkerConfig.Ctx}, {GenConfigFile, &d.Config.WorkerConfig.Gen}}
}

// supportFiles renders every file of the job except the job script itself.
func (d *Data) supportFiles() ([]File, error) {
	var files []File
	for _, w := range d.workers() {
		var buf bytes.Buffer
		if err := workerYAML(&buf, w.w); err != nil {
			return nil, fmt.Errorf("worker_config: %s: %w", w.name, err)
		}
		files = append(files, File{Name: w.name, Data: buf.Bytes(), Mode: 0o644})
	}
	alloc, err := d.allocationsJSON()
	if err != nil {
		return nil, err
	}
	files = append(files, File{Name: AllocationsFile, Data: alloc, Mode: 0o644})
	for _, s := range d.supportScripts() {
		if !s.when {
			continue
		}
		var buf bytes.Buffer
		if err := execBuiltinTo(&buf, s.name+".tmpl", d); err != nil {
			return nil, err
		}
		files = append(files, File{Name: s.name, Data: buf.Bytes(), Mode: fsMode(s.mode)})
	}
	env, err := d.envVarsJSON()
	if err != nil {
		return nil, err
	}
	// Environment values: for the owner only.
	files = append(files, File{Name: EnvVarsFile, Data: env, Mode: 0o600})
	files = append(files, File{Name: JobInfoFile, Data: d.jobInfo(), Mode: 0o644})
	files = append(files, d.TaskFiles...)
	return files, nil
}

// checkSupportFiles returns the error supportFiles would, without keeping any file:
// the worker configs and scripts are written to io.Discard, in the same order, except
// a worker config workerSafe says cannot fail and the scripts when builtinSafe says
// they cannot (safe). allocations.json and env_vars.json are not built: they marshal
// ints, strings and maps of strings, which encoding/json never refuses (its errors are
// for types and values, such as NaN or channels, that they do not hold), and
// job_info.txt is written with fmt, which has no error to return.
func (d *Data) checkSupportFiles(safe bool) error {
	for _, w := range d.workers() {
		if workerSafe(w.w) {
			continue
		}
		if err := workerYAML(io.Discard, w.w); err != nil {
			return fmt.Errorf("worker_config: %s: %w", w.name, err)
		}
	}
	for _, s := range d.supportScripts() {
		if !s.when || safe {
			continue
		}
		if err := execBuiltinTo(io.Discard, s.name+".tmpl", d); err != nil {
			return err
		}
	}
	return nil
}

// workerYAML writes a worker's LLM-API options: the typed fields and every
// pass-through option.
func workerYAML(out io.Writer, w *config.Worker) error {
	enc := yaml.NewEncoder(out)
	enc.SetIndent(2)
	if err := enc.Encode(w); err != nil {
		return err
	}
	return enc.Close()
}

func (d *Data) allocationsJSON() ([]byte, error) {
	type node struct {
		Node int   `json:"node_index"`
		GPUs []int `json:"gpus"`
	}
	type alloc struct {
		Type  string `json:"server_type"`
		ID    int    `json:"server_id"`
		Port  int    `json:"port"`
		Nodes []node `json:"nodes"`
	}
	g := d.GPUsPerNode
	out := []alloc{}
	for _, s := range d.Servers {
		a := alloc{Type: s.Role, ID: s.ID, Port: s.Port}
		left := s.WorldSize
		first := s.GPUs[0]
		for i, n := range s.Nodes {
			start := 0
			if i == 0 {
				start = first
			}
			var gpus []int
			for gpu := start; gpu < g && left > 0; gpu++ {
				gpus = append(gpus, gpu)
				left--
			}
			a.Nodes = append(a.Nodes, node{Node: n, GPUs: gpus})
		}
		out = append(out, a)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	return append(b, '\n'), err
}

func (d *Data) envVarsJSON() ([]byte, error) {
	m := map[string]any{}
	for _, s := range d.Servers {
		e := envMap(s.Env)
		e["CUDA_VISIBLE_DEVICES"] = s.Devices
		m[fmt.Sprintf("%s_%d", s.Role, s.ID)] = e
	}
	m["server"] = envMap(d.ServerEnv)
	m["client"] = envMap(d.ClientEnv)
	m["step_env"] = d.StepEnv
	if len(d.AccuracyTasks) > 0 {
		m["accuracy"] = envMap(d.AccuracyTasks[0].Env)
	}
	if d.Env != nil {
		m["job"] = map[string]string(d.Env)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	return append(b, '\n'), err
}

func envMap(words []string) map[string]string {
	m := map[string]string{}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		m[k] = v
	}
	return m
}

func (d *Data) jobInfo() []byte {
	var b strings.Builder
	c := d.Config
	fmt.Fprintf(&b, "test_id: %s\nrun_id: %s\nconfig: %s\ngpu_type: %s\njob_name: %s\n",
		d.Test.ID, d.RunID, d.Test.Path, d.GPUType, d.JobName)
	fmt.Fprintf(&b, "nodes: %d (ctx %d, gen %d)\ntasks: %d (%d per node)\n", d.Nodes, d.CtxNodes, d.GenNodes, d.NTasks, d.GPUsPerNode)
	fmt.Fprintf(&b, "ctx_servers: %d x %d GPUs\ngen_servers: %d x %d GPUs\n",
		c.Hardware.NumCtxServers, c.WorkerConfig.Ctx.GPUsPerServer(), c.Hardware.NumGenServers, c.WorkerConfig.Gen.GPUsPerServer())
	for _, s := range d.Servers {
		fmt.Fprintf(&b, "server %s_%d: port %d, nodes %v, gpus %v\n", s.Role, s.ID, s.Port, s.Nodes, s.GPUs)
	}
	cs := make([]string, len(d.Points))
	for i, p := range d.Points {
		cs[i] = strconv.Itoa(p.Concurrency)
	}
	fmt.Fprintf(&b, "concurrencies: %s\n", strings.Join(cs, " "))
	return []byte(b.String())
}

// containerArgs are pyxis' --container-image and --container-mounts (the log folder
// among the mounts); none when emulating.
func (d *Data) containerArgs() error {
	c := d.Config
	if c.Environment.ContainerImage != "" && !d.Emulate {
		d.ContainerArgs = append(d.ContainerArgs, "--container-image="+c.Environment.ContainerImage)
	}
	if c.Environment.ContainerImage != "" && !d.Emulate {
		// Every script and config runs from the log folder: as upstream adds its
		// script folder, it is mounted unless a mount already maps it to itself.
		mounts, err := withLogDirMount(c.Environment.ContainerMount, d.LogDir)
		if err != nil {
			return err
		}
		d.ContainerArgs = append(d.ContainerArgs, "--container-mounts="+mounts)
	} else if c.Environment.ContainerMount != "" && !d.Emulate {
		d.ContainerArgs = append(d.ContainerArgs, "--container-mounts="+c.Environment.ContainerMount)
	}
	return nil
}

// environments are the servers' and the client's variables and the names every srun
// step exports (--export).
func (d *Data) environments(jobEnv map[string]string) error {
	c := d.Config
	var err error
	if d.ServerEnv, err = envWords("environment.server_env_var", c.Environment.ServerEnvVar); err != nil {
		return err
	}
	d.ServerEnv = lastWins(d.ServerEnv)
	for _, k := range slices.Sorted(maps.Keys(c.Benchmark.EnvVar)) {
		if !envName.MatchString(k) {
			return fmt.Errorf("benchmark.env_var: %q is not a valid variable name", k)
		}
		d.ClientEnv = append(d.ClientEnv, k+"="+c.Benchmark.EnvVar[k])
	}
	d.StepEnv = slices.Clone(baseStepEnv)
	if d.Emulate {
		d.StepEnv = append(d.StepEnv, emulateStepEnv...)
	}
	for _, k := range slices.Sorted(maps.Keys(jobEnv)) {
		if envName.MatchString(k) && !slices.Contains(d.StepEnv, k) {
			d.StepEnv = append(d.StepEnv, k)
		}
	}
	return nil
}

// serverEnv is one server's variables: the config's, then what the test's mode and
// profiling add, the last of a name winning.
func (d *Data) serverEnv(role, profile string, env []string) []string {
	c := d.Config
	if c.Environment.EnablePDL {
		// Upstream's older start_worker.sh exported it after the config's variables.
		env = append(env, "TRTLLM_ENABLE_PDL=1")
	}
	if c.Benchmark.Mode == "gen_only" {
		env = append(env, "TRTLLM_DISABLE_KV_CACHE_TRANSFER_OVERLAP=1")
		// Upstream's submit.py gates only GEN workers: a CTX worker gated on the
		// queue size would wait forever for generation requests it never gets.
		// The gate holds a worker until that many requests are queued, so it is
		// the concurrency the sweep starts with (the list's first, as written);
		// the larger points that follow fill it at once.
		if role == "GEN" {
			env = append(env, "TLLM_BENCHMARK_REQ_QUEUES_SIZE="+strconv.Itoa(firstConcurrency(d.Concurrencies)))
		}
	}
	if c.Profiling.NsysOn {
		env = append(env, "TLLM_PROFILE_RECORD_GC=1", "TLLM_NVTX_DEBUG=1",
			"TLLM_PROFILE_START_STOP="+cmp.Or(profile, map[string]string{"CTX": "10-30", "GEN": "200-250"}[role]))
	}
	return lastWins(env)
}
