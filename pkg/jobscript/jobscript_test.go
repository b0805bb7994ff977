package jobscript

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// loadTest loads, resolves (without any environment) and validates a test config; the
// configs under testdata/configs/ must be valid.
func loadTest(t testing.TB, path string) *config.Test {
	t.Helper()
	tc, _ := config.LoadFile(path)
	tc.Resolve(nil, nil)
	if ps := tc.Validate(); config.HasErrors(ps) {
		for _, p := range ps {
			t.Log(p.String())
		}
		t.Fatalf("%s is not valid", path)
	}
	return tc
}

var goldenConfigs = []string{
	"testdata/configs/disagg/perf/deepseek-r1-fp4_1k1k_ctx1_gen4_tep4_bs16_eplb0_mtp3_ccb-UCX.yaml",
	"testdata/configs/wideep/perf/deepseek-r1-fp4_8k1k_ctx2_gen1_dep16_bs32_eplb288_mtp0_ccb-NIXL.yaml",
	"testdata/configs/disagg/accuracy/deepseek-r1-fp4_1k1k_ctx1_gen1_tep4_bs32_eplb0_mtp0_ccb-UCX.yaml",
}

func goldenOptions(tc *config.Test) Options {
	return Options{
		RunID:   "r-golden",
		LogDir:  "/lustre/out/slurm_logs/" + tc.ID,
		GPUType: "GB200",
		JobName: "disaggbench-r-golden-" + tc.Type + "-" + tc.Category,
		Comment: "run=r-golden test=" + tc.ID,
	}
}

// dump renders a job as one text: the sbatch line, then every file.
func dump(t *testing.T, j *Job) []byte {
	t.Helper()
	var b bytes.Buffer
	line, err := SbatchCommand(j.Request)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "===== sbatch =====\n%s\n", line)
	for _, f := range j.Files {
		fmt.Fprintf(&b, "===== %s (%#o) =====\n%s", f.Name, f.Mode, f.Data)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for _, p := range goldenConfigs {
		tc := loadTest(t, p)
		t.Run(tc.ID, func(t *testing.T) {
			j, err := Render(tc, goldenOptions(tc))
			if err != nil {
				t.Fatal(err)
			}
			got := dump(t, j)
			golden := filepath.Join("testdata", tc.ID+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendered job differs from %s (go test -update rewrites it):\n%s", golden, firstDiff(string(want), string(got)))
			}
			checkBashSyntax(t, j)
		})
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n want %q\n  got %q", i+1, x, y)
		}
	}
	return ""
}

// checkBashSyntax runs bash -n on every script of the job.
func checkBashSyntax(t *testing.T, j *Job) {
	t.Helper()
	for _, f := range j.Files {
		if !strings.HasSuffix(f.Name, ".sh") && !strings.HasSuffix(f.Name, ".slurm") {
			continue
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = bytes.NewReader(f.Data)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", f.Name, err, out)
		}
	}
}

func fileOf(t *testing.T, j *Job, name string) string {
	t.Helper()
	for _, f := range j.Files {
		if f.Name == name {
			return string(f.Data)
		}
	}
	t.Fatalf("job has no file %s; files: %v", name, names(j))
	return ""
}

func names(j *Job) []string {
	var n []string
	for _, f := range j.Files {
		n = append(n, f.Name)
	}
	return n
}

func TestRequest(t *testing.T) {
	mtp := loadTest(t, goldenConfigs[0])
	acc := loadTest(t, goldenConfigs[2])
	tests := []struct {
		name    string
		tc      *config.Test
		gpu     string
		nodes   int
		segment int
		res     []string
		extra   []string
		limit   time.Duration
		jobName string
	}{
		{"mtp GB200", mtp, "GB200", 5, 5, []string{"--gres=gpu:4"}, []string{"--exclusive", "--mem=0"}, 2 * time.Hour, "explicit"},
		{"mtp GB200 suffix", mtp, "GB200_NVL72", 5, 5, []string{"--gres=gpu:4"}, []string{"--exclusive", "--mem=0"}, 2 * time.Hour, "explicit"},
		{"mtp H100", mtp, "H100", 5, 0, nil, []string{"--exclusive", "--mem=0"}, 2 * time.Hour, "explicit"},
		{"accuracy set_segment false", acc, "GB200", 2, 0, []string{"--gres=gpu:4"}, nil, time.Hour, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := Render(tt.tc, Options{RunID: "r1", LogDir: "/logs/x", GPUType: tt.gpu, JobName: tt.jobName, Comment: "c"})
			if err != nil {
				t.Fatal(err)
			}
			r := j.Request
			if r.Nodes != tt.nodes || r.NTasks != tt.nodes*4 || r.PerNode != 4 || r.Segment != tt.segment {
				t.Errorf("nodes/tasks/per-node/segment = %d/%d/%d/%d, want %d/%d/4/%d", r.Nodes, r.NTasks, r.PerNode, r.Segment, tt.nodes, tt.nodes*4, tt.segment)
			}
			if !slices.Equal(r.Resources, tt.res) || !slices.Equal(r.ExtraArgs, tt.extra) {
				t.Errorf("resources %q extra %q, want %q %q", r.Resources, r.ExtraArgs, tt.res, tt.extra)
			}
			if r.TimeLimit != tt.limit {
				t.Errorf("time limit %v, want %v", r.TimeLimit, tt.limit)
			}
			wantName := tt.jobName
			if wantName == "" {
				wantName = tt.tc.ID // no slurm.job_name in the accuracy config
			}
			if r.Name != wantName || r.Comment != "c" {
				t.Errorf("name %q comment %q", r.Name, r.Comment)
			}
			if r.Script != "/logs/x/"+j.Script || j.Script != DefaultScript || r.LogDir != "/logs/x" || r.WorkDir != "/logs/x" {
				t.Errorf("script %q (%q), log dir %q, work dir %q", r.Script, j.Script, r.LogDir, r.WorkDir)
			}
			if r.Partition != "batch" || r.Account != "llm_perf" {
				t.Errorf("partition %q account %q", r.Partition, r.Account)
			}
		})
	}
	// slurm.job_name is the fallback when the caller chooses no name.
	j, err := Render(mtp, Options{LogDir: "/l"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Request.Name != "unified-benchmark" {
		t.Errorf("fallback name %q", j.Request.Name)
	}
}

// The rendered worker configs carry every option of worker_config, typed or not.
func TestWorkerConfigPassThrough(t *testing.T) {
	for _, p := range goldenConfigs {
		tc := loadTest(t, p)
		j, err := Render(tc, goldenOptions(tc))
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			WorkerConfig map[string]map[string]any `yaml:"worker_config"`
		}
		data, _ := os.ReadFile(p)
		if err := yaml.Unmarshal(data, &raw); err != nil {
			t.Fatal(err)
		}
		for role, file := range map[string]string{"ctx": CtxConfigFile, "gen": GenConfigFile} {
			var got map[string]any
			if err := yaml.Unmarshal([]byte(fileOf(t, j, file)), &got); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			want := raw.WorkerConfig[role]
			// false booleans are omitted (LLM-API default); the rest must match exactly.
			for k, v := range want {
				if v == false {
					delete(want, k)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s:\n got %v\nwant %v", tc.ID, file, got, want)
			}
		}
	}
}

// Servers are placed as upstream's submit.py places them: GEN first, then CTX, on one
// GPU cursor, so the disaggregated server and the client (node 0) share the first GEN
// node.
func TestServerPlacement(t *testing.T) {
	tc := loadTest(t, goldenConfigs[1]) // ctx 2 x tp4, gen 1 x tp16, 4 GPUs a node
	d, err := newData(tc, goldenOptions(tc), mustRequest(t, tc))
	if err != nil {
		t.Fatal(err)
	}
	type place struct {
		role        string
		port        int
		nodes, gpus []int
		perNode     int
	}
	want := []place{
		{"GEN", 8000, []int{0, 1, 2, 3}, []int{0, 1, 2, 3}, 4},
		{"CTX", 8001, []int{4}, []int{0, 1, 2, 3}, 4},
		{"CTX", 8002, []int{5}, []int{0, 1, 2, 3}, 4},
	}
	if len(d.Servers) != len(want) {
		t.Fatalf("%d servers, want %d", len(d.Servers), len(want))
	}
	for i, w := range want {
		s := d.Servers[i]
		if s.Role != w.role || s.Port != w.port || !slices.Equal(s.Nodes, w.nodes) || !slices.Equal(s.GPUs, w.gpus) || s.TasksPerNode != w.perNode {
			t.Errorf("server %d = %+v, want %+v", i, s, w)
		}
	}
	if d.Nodes != 6 || d.CtxNodes != 2 || d.GenNodes != 4 {
		t.Errorf("nodes %d ctx %d gen %d", d.Nodes, d.CtxNodes, d.GenNodes)
	}
	// Two 2-GPU gen servers share node 0 and get distinct GPUs and ports; the cursor
	// goes on to the ctx servers.
	tc.Config.WorkerConfig.Gen.TensorParallelSize = 2
	tc.Config.Hardware.NumGenServers = 2
	d, err = newData(tc, goldenOptions(tc), mustRequest(t, tc))
	if err != nil {
		t.Fatal(err)
	}
	g0, g1, c0 := d.Servers[0], d.Servers[1], d.Servers[2]
	if g0.Role != "GEN" || g1.Role != "GEN" || !slices.Equal(g0.Nodes, []int{0}) || !slices.Equal(g1.Nodes, []int{0}) ||
		!slices.Equal(g0.GPUs, []int{0, 1}) || !slices.Equal(g1.GPUs, []int{2, 3}) || g0.Port == g1.Port {
		t.Errorf("shared node: %+v %+v", g0, g1)
	}
	if c0.Role != "CTX" || !slices.Equal(c0.Nodes, []int{1}) {
		t.Errorf("ctx 0 after the gen servers: %+v", c0)
	}
	if g1.Devices != "2,3" || slices.ContainsFunc(g1.Env, func(e string) bool { return strings.HasPrefix(e, "CUDA_VISIBLE_DEVICES=") }) {
		t.Errorf("gen 1 devices %q env %q", g1.Devices, g1.Env)
	}
	// A ctx server that does not fill a node shares the last gen node, as upstream's
	// cursor places it.
	tc.Config.WorkerConfig.Gen.TensorParallelSize = 2
	tc.Config.Hardware.NumGenServers = 1
	tc.Config.WorkerConfig.Ctx.TensorParallelSize = 2
	tc.Config.Hardware.NumCtxServers = 1
	d, err = newData(tc, goldenOptions(tc), mustRequest(t, tc))
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Servers[1]; s.Role != "CTX" || !slices.Equal(s.Nodes, []int{0}) || !slices.Equal(s.GPUs, []int{2, 3}) {
		t.Errorf("ctx after a 2-GPU gen server: %+v", s)
	}
}

func mustRequest(t *testing.T, tc *config.Test) scheduler.JobRequest {
	t.Helper()
	r, err := request(tc, goldenOptions(tc))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPoints(t *testing.T) {
	tc := loadTest(t, goldenConfigs[0]) // 4 gen servers, multi_round 10
	j, err := Render(tc, goldenOptions(tc))
	if err != nil {
		t.Fatal(err)
	}
	rb := fileOf(t, j, RunBenchmarkFile)
	for _, want := range []string{"concurrency_list=(1 2 4 8 16)", "num_gen_servers=4", "multi_round=10",
		`echo "Benchmarking with concurrency ${concurrency} ... ${num_prompts} prompts"`,
		`echo "Benchmark with concurrency ${concurrency} done"`} {
		if !strings.Contains(rb, want) {
			t.Errorf("run_benchmark.sh lacks %q", want)
		}
	}
	d, _ := newData(tc, goldenOptions(tc), mustRequest(t, tc))
	if got := d.Points[2]; got.C != 4 || got.Concurrency != 16 || got.Prompts != 160 || !strings.HasSuffix(got.ResultDir, "/concurrency_4") {
		t.Errorf("point 2 = %+v", got)
	}
}

func TestRenderErrors(t *testing.T) {
	base := loadTest(t, goldenConfigs[2])
	tests := []struct {
		name   string
		mutate func(c *config.Config, o *Options)
		want   string
	}{
		{"relative log dir", func(c *config.Config, o *Options) { o.LogDir = "logs/x" }, "absolute"},
		{"newline in log dir", func(c *config.Config, o *Options) { o.LogDir = "/logs/a\nb" }, "newline"},
		{"unknown gpu", func(c *config.Config, o *Options) { o.GPUType = "TPU9" }, "unknown GPU type"},
		{"bad job time", func(c *config.Config, o *Options) { c.Slurm.JobTime = "2 hours" }, "slurm.job_time"},
		{"smuggled extra args", func(c *config.Config, o *Options) { c.Slurm.ExtraArgs = "--exclusive; rm -rf ~" }, "slurm.extra_args"},
		{"bad worker env", func(c *config.Config, o *Options) { c.Environment.WorkerEnvVar = "A=1 $(id)=2" }, "environment.worker_env_var"},
		{"env without value", func(c *config.Config, o *Options) { c.Environment.ServerEnvVar = "JUSTNAME" }, "environment.server_env_var"},
		{"bad task name", func(c *config.Config, o *Options) {
			c.Accuracy.Tasks = map[string]config.AccuracyTask{"gsm8k;id": {}}
		}, "accuracy.tasks"},
		{"bad extra kwarg", func(c *config.Config, o *Options) {
			c.Accuracy.Tasks = map[string]config.AccuracyTask{"gsm8k": {ExtraKwargs: map[string]any{"a b": 1}}}
		}, "extra_kwargs"},
		{"zero gpus per node", func(c *config.Config, o *Options) { c.Hardware.GPUsPerNode = 0 }, "gpus_per_node"},
		{"no gen servers", func(c *config.Config, o *Options) { c.Hardware.NumGenServers = 0 }, "num_gen_servers"},
		{"negative concurrency", func(c *config.Config, o *Options) { c.Benchmark.ConcurrencyList = config.Concurrencies{4, -1} }, "concurrency_list"},
		{"NUL in model path", func(c *config.Config, o *Options) { c.Environment.ModelPath = "/m\x00x" }, "NUL"},
		{"newline in partition", func(c *config.Config, o *Options) { c.Slurm.Partition = "a\nb" }, "slurm.partition"},
		{"missing template", func(c *config.Config, o *Options) { c.Slurm.ScriptFile = "nope.sh.tmpl" }, "does not exist"},
		{"newline in template path", func(c *config.Config, o *Options) { c.Slurm.ScriptFile = "a\n.tmpl" }, "NUL or newline"},
		{"task name like a flag", func(c *config.Config, o *Options) {
			c.Accuracy.Tasks = map[string]config.AccuracyTask{"--help": {}}
		}, "accuracy.tasks"},
		{"NUL in accuracy args", func(c *config.Config, o *Options) {
			c.Accuracy.Tasks = map[string]config.AccuracyTask{"gsm8k": {ModelArgsExtra: "a=\x00"}}
		}, "NUL"},
		{"two template fields", func(c *config.Config, o *Options) {
			c.Slurm.ScriptFile, c.Metadata.ScriptFile = "a.tmpl", "b.tmpl"
		}, "disagree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := *base
			tc.Config = cloneConfig(t, base.Config)
			o := goldenOptions(&tc)
			tt.mutate(&tc.Config, &o)
			j, err := Render(&tc, o)
			if err == nil {
				t.Fatalf("rendered %v, want an error containing %q", names(j), tt.want)
			}
			// What render refuses in a config, validation refuses too.
			if g := goldenOptions(&tc); o.LogDir == g.LogDir && o.GPUType == g.GPUType && !config.HasErrors(Check(&tc, o.GPUType)) {
				t.Errorf("Check accepts what Render refuses: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func cloneConfig(t *testing.T, c config.Config) config.Config {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out config.Config
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteKeepsOtherFiles(t *testing.T) {
	tc := loadTest(t, goldenConfigs[0])
	dir := filepath.Join(t.TempDir(), "logs", "x")
	o := goldenOptions(tc)
	o.LogDir = dir
	j, err := Render(tc, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(dir, "6_bench.log")
	os.WriteFile(keep, []byte("earlier"), 0o644)
	for range 2 { // writing twice is harmless
		if err := j.Write(dir); err != nil {
			t.Fatal(err)
		}
	}
	if b, _ := os.ReadFile(keep); string(b) != "earlier" {
		t.Errorf("an existing file was changed: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(j.Files)+1 {
		t.Errorf("%d entries, want %d files + 1 (no temporary leftovers): %v", len(entries), len(j.Files), entries)
	}
	for _, f := range j.Files {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode.Perm() {
			t.Errorf("%s mode %v, want %v", f.Name, st.Mode().Perm(), f.Mode.Perm())
		}
		if b, _ := os.ReadFile(filepath.Join(dir, f.Name)); !bytes.Equal(b, f.Data) {
			t.Errorf("%s content differs", f.Name)
		}
	}
	bad := &Job{Files: []File{{Name: "../escape", Data: []byte("x")}}}
	if err := bad.Write(dir); err == nil {
		t.Error("a file name with a path separator was written")
	}
}

func TestUserTemplate(t *testing.T) {
	dir := t.TempDir()
	tmpl := "#!/bin/bash\n# {{.Test.ID}}\nmodel={{shq .Config.Environment.ModelPath}}\n" +
		"{{range .Points}}echo c={{.Concurrency}} p={{.Prompts}}\n{{end}}" +
		"log={{shq .LogDir}} run={{shq .RunID}} nodes={{.Nodes}} gpu={{.GPUType}}\n"
	os.WriteFile(filepath.Join(dir, "my.sh.tmpl"), []byte(tmpl), 0o644)
	os.MkdirAll(filepath.Join(dir, "disagg", "perf"), 0o755)
	tc := loadTest(t, goldenConfigs[0])
	tc.Path = filepath.Join(dir, "disagg", "perf", "x.yaml")
	tc.Config.Slurm.ScriptFile = "../../my.sh.tmpl"
	tc.Config.Environment.ModelPath = "/m/it's $(id)"
	j, err := Render(tc, Options{RunID: "r9", LogDir: "/l", GPUType: "GB200_NVL72"})
	if err != nil {
		t.Fatal(err)
	}
	if j.Script != TemplateScript || j.Request.Script != "/l/"+TemplateScript || j.Files[0].Name != TemplateScript || j.Files[0].Mode != 0o755 {
		t.Errorf("script %q request %q first file %q", j.Script, j.Request.Script, j.Files[0].Name)
	}
	want := "#!/bin/bash\n# " + tc.ID + "\nmodel='/m/it'\\''s $(id)'\n" +
		"echo c=4 p=40\necho c=8 p=80\necho c=16 p=160\necho c=32 p=320\necho c=64 p=640\n" +
		"log=/l run=r9 nodes=5 gpu=GB200\n"
	if got := string(j.Files[0].Data); got != want {
		t.Errorf("rendered template:\n%s\nwant:\n%s", got, want)
	}
	// The worker configs are still written for the template's use.
	fileOf(t, j, CtxConfigFile)

	// metadata.script_file works the same; a template error names the file.
	tc.Config.Slurm.ScriptFile = ""
	tc.Config.Metadata.ScriptFile = filepath.Join(dir, "bad.tmpl")
	os.WriteFile(tc.Config.Metadata.ScriptFile, []byte("{{.NoSuchField}}"), 0o644)
	if _, err := Render(tc, Options{LogDir: "/l"}); err == nil || !strings.Contains(err.Error(), "bad.tmpl") {
		t.Errorf("bad template: err = %v", err)
	}
	os.WriteFile(tc.Config.Metadata.ScriptFile, []byte("{{shq .Config.Environment.ModelPath"), 0o644)
	if _, err := Render(tc, Options{LogDir: "/l"}); err == nil || !strings.Contains(err.Error(), "unclosed action") {
		t.Errorf("unparsable template (a changed file is read again): err = %v", err)
	}
}

// Two tests of one run may share a template path whose file changes between them, to
// the same size and modification time: each is checked and rendered with the text the
// file holds when it is read, not a cached parse of the earlier one.
func TestUserTemplateRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "job.sh.tmpl")
	write := func(text string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	base := loadTest(t, goldenConfigs[0])
	tc := *base
	tc.Path = filepath.Join(dir, "disagg", "perf", "x.yaml")
	tc.Config.Slurm.ScriptFile = "../../job.sh.tmpl"
	o := Options{RunID: "r1", LogDir: "/l"}

	write("echo A {{.RunID}}\n", mtime)
	if ps := Check(&tc, ""); config.HasErrors(ps) {
		t.Fatalf("first template refused: %v", ps)
	}
	write("echo B {{.RunID}}\n", mtime) // same size, same time
	j, err := Render(&tc, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(j.Files[0].Data); got != "echo B r1\n" {
		t.Errorf("rendered %q, want the rewritten template's %q", got, "echo B r1\n")
	}
	write("echo C {{.RunI}}}\n", mtime) // same size and time, and refused
	ps := Check(&tc, "")
	if !config.HasErrors(ps) || !strings.Contains(ps[0].Message, "RunI") {
		t.Errorf("Check of the rewritten template: %v, want its error about RunI", ps)
	}
}

// Render never panics on odd values, and a value it accepts reaches the scripts quoted.
func FuzzRenderValues(f *testing.F) {
	base := loadTest(f, goldenConfigs[2])
	f.Add("/models/m", "A=1", "gsm8k", "img", "--exclusive")
	f.Add("it's $(x)\n", "A=$(x) B='y'", "a.b-c", "", "--mem=0 'a b'")
	f.Add("\x00", "=1", "../x", "a\nb", "; rm")
	f.Fuzz(func(t *testing.T, model, env, task, image, extra string) {
		tc := *base
		tc.Config.Environment.ModelPath = model
		tc.Config.Benchmark.EnableBenchmark = nil
		tc.Config.Environment.WorkerEnvVar = env
		tc.Config.Environment.ContainerImage = image
		tc.Config.Slurm.ExtraArgs = extra
		tc.Config.Accuracy.Tasks = map[string]config.AccuracyTask{task: {ModelArgsExtra: model}}
		j, err := Render(&tc, Options{LogDir: "/l"})
		if err != nil {
			return
		}
		q, err := Quote(model)
		if err != nil {
			t.Fatalf("rendered a value Quote refuses: %q", model)
		}
		for _, name := range []string{StartWorkerFile, RunBenchmarkFile, AccuracyEvalFile} {
			if !strings.Contains(fileOf(t, j, name), "model_path="+q+"\n") {
				t.Errorf("%s does not set model_path to %s", name, q)
			}
		}
	})
}

// benchmark.client builtin runs the Go client from the stand-ins' binary and changes
// nothing else; the emulation also replaces the servers and lm_eval and drops the
// container. Both need the binary.
func TestBuiltinClientAndEmulation(t *testing.T) {
	tc := loadTest(t, goldenConfigs[0])
	plain, err := Render(tc, goldenOptions(tc))
	if err != nil {
		t.Fatal(err)
	}
	tc.Config.Benchmark.Client = "builtin"
	if _, err := Render(tc, goldenOptions(tc)); err == nil {
		t.Error("benchmark.client builtin rendered without the stand-ins' binary")
	}
	o := goldenOptions(tc)
	o.Tools = "/opt/disaggbench/planner"
	j, err := Render(tc, o)
	if err != nil {
		t.Fatal(err)
	}
	file := func(j *Job, name string) string {
		for _, f := range j.Files {
			if f.Name == name {
				return string(f.Data)
			}
		}
		return ""
	}
	bench := file(j, RunBenchmarkFile)
	if !strings.Contains(bench, "benchmark_serving=(/opt/disaggbench/planner emulator bench)") || strings.Contains(bench, "python3 -m tensorrt_llm.serve.scripts.benchmark_serving") {
		t.Errorf("run_benchmark.sh does not run the Go client:\n%s", bench)
	}
	for _, f := range plain.Files {
		if f.Name != RunBenchmarkFile && file(j, f.Name) != string(f.Data) {
			t.Errorf("%s changed with benchmark.client builtin", f.Name)
		}
	}

	tc.Config.Environment.Emulate = true
	if j, err = Render(tc, o); err != nil {
		t.Fatal(err)
	}
	script, worker, server := file(j, DefaultScript), file(j, StartWorkerFile), file(j, StartServerCmds)
	for _, c := range []struct{ name, text, want string }{
		{"job script", script, "emulator=(/opt/disaggbench/planner emulator)"},
		{"job script", script, "container_args=()"},
		{"job script", script, "server_port=$((8333 + port_offset))"},
		{"job script", script, `echo "    - ${addrs[1]}:$((8001 + port_offset))"`},
		{"start_worker.sh", worker, "exec /opt/disaggbench/planner emulator serve"},
		{"start_server_cmds.sh", server, `"${emulator[@]}" serve disaggregated -c`},
	} {
		if !strings.Contains(c.text, c.want) {
			t.Errorf("%s lacks %q", c.name, c.want)
		}
	}
	if strings.Contains(script, "--container-image") || strings.Contains(worker, "trtllm-llmapi-launch") || strings.Contains(server, "trtllm-serve disaggregated") {
		t.Error("the emulation still starts a container or TensorRT-LLM")
	}
	checkBashSyntax(t, j)
}
