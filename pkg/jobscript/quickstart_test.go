package jobscript

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/benchclient"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/metrics"
	"github.com/disaggbench/disaggbench/pkg/minieval"
	"github.com/disaggbench/disaggbench/services/emulator/emucli"
)

const quickstart = "../../examples/quickstart"

func TestQuickstartConfigsAreValid(t *testing.T) {
	loaded, walkProblems, err := config.LoadPaths([]string{filepath.Join(quickstart, "test_configs")})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range walkProblems {
		t.Errorf("validate: %s", p)
	}
	for _, tc := range loaded {
		tc.Resolve(nil, config.EnvFromOS())
		for _, p := range tc.Validate() {
			t.Errorf("validate: %s", p) // planner validate prints warnings too
		}
	}
	tests, problems, err := config.Discover(filepath.Join(quickstart, "test_configs"))
	if err != nil || config.HasErrors(problems) {
		t.Fatalf("discover: %v %v", err, problems)
	}
	var ids []string
	for _, tc := range tests {
		ids = append(ids, tc.ID)
		if !tc.SupportsGPU(config.DefaultGPUType) {
			t.Errorf("%s does not support %s", tc.ID, config.DefaultGPUType)
		}
	}
	listed, err := config.ReadTestList(filepath.Join(quickstart, "testlist.txt"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	slices.Sort(listed)
	if !slices.Equal(ids, listed) {
		t.Errorf("testlist.txt lists %q, the configs are %q", listed, ids)
	}
}

var (
	benchStart = regexp.MustCompile(`(?m)^Benchmarking with concurrency (\d+) \.\.\. (\d+) prompts$`)
	benchDone  = regexp.MustCompile(`(?m)^Benchmark with concurrency (\d+) done$`)
	// A client line: a label padded to 40 columns, a space, a value padded to 10.
	clientLine = regexp.MustCompile(`^(.{40}) (\S+ *)$`)
	accRow     = regexp.MustCompile(`(?m)^\|[^|]*\|[^|]*\|(flexible-extract|strict-match) *\|[^|]*\|exact_match\|[^|]*\|([0-9.]+)\|`)
)

var blockLabels = []string{
	"Total requests:", "Successful requests:", "Failed requests:", "Benchmark duration (s):",
	"Total input tokens:", "Total generated tokens:", "Request throughput (req/s):",
	"Output token throughput (tok/s):", "Total Token throughput (tok/s):", "User throughput (tok/s):",
	"Mean TTFT (ms):", "Median TTFT (ms):", "Std Dev TTFT (ms):", "P90 TTFT (ms):", "P99 TTFT (ms):",
	"Mean TPOT (ms):", "Median TPOT (ms):", "Std Dev TPOT (ms):", "P90 TPOT (ms):", "P99 TPOT (ms):",
	"Mean ITL (ms):", "Median ITL (ms):", "Std Dev ITL (ms):", "P90 ITL (ms):", "P99 ITL (ms):",
	"Mean E2EL (ms):", "Median E2EL (ms):", "Std Dev E2EL (ms):", "P90 E2EL (ms):", "P99 E2EL (ms):",
}

// parseBlocks returns, for each result block of a client log, its values by label; it
// fails on a line that is not in the client's "{:<40} {:<10}" layout.
func parseBlocks(t *testing.T, log string) []map[string]float64 {
	t.Helper()
	var blocks []map[string]float64
	var cur map[string]float64
	for _, line := range strings.Split(log, "\n") {
		switch {
		case line == "============ Serving Benchmark Result ============":
			cur = map[string]float64{}
		case cur != nil && strings.HasPrefix(line, "====="):
			blocks = append(blocks, cur)
			cur = nil
		case cur != nil && strings.HasPrefix(line, "---"):
			if len(line) != 50 {
				t.Errorf("section line %q is not 50 wide", line)
			}
		case cur != nil:
			m := clientLine.FindStringSubmatch(line)
			if m == nil || len(m[2]) < 10 {
				t.Errorf("line not in the client's layout: %q", line)
				continue
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(m[2]), 64)
			if err != nil {
				t.Errorf("value of %q: %v", line, err)
			}
			cur[strings.TrimSpace(m[1])] = v
		}
	}
	return blocks
}

// TestMain lets the test binary stand in for the planner: run as "<test binary>
// emulator ...", it is the stand-ins, so a job rendered with Tools = the test binary
// runs the real emulator, client and evaluation.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "emulator" {
		os.Exit(emucli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testTools(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Each quickstart config renders with the built-in job script and the emulation, and
// the job script runs end to end with bash as the local scheduler runs it (no srun, no
// scontrol, no container): emulated ctx and gen workers and disaggregated server, the
// health wait, the Go client per concurrency, the emulated lm_eval, the done marker.
func TestQuickstartEmulation(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(quickstart, "test_configs", "*", "*", "*.yaml"))
	if len(files) < 4 {
		t.Fatalf("found %d quickstart configs", len(files))
	}
	tools := testTools(t)
	for i, f := range files {
		tc := loadTest(t, f)
		if tc.Config.Slurm.ScriptFile != "" || tc.Config.Metadata.ScriptFile != "" || !tc.Config.Environment.Emulate {
			t.Errorf("%s: the quickstart must use the built-in job script with environment.emulate", f)
		}
		t.Run(tc.ID, func(t *testing.T) {
			t.Parallel()
			logDir := filepath.Join(t.TempDir(), "slurm_logs", tc.ID)
			j, err := Render(tc, Options{RunID: "quick", LogDir: logDir, GPUType: "GB200", Tools: tools})
			if err != nil {
				t.Fatal(err)
			}
			if j.Script != DefaultScript {
				t.Fatalf("script %s: the quickstart must use the built-in job script", j.Script)
			}
			if err := j.Write(logDir); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", filepath.Join(logDir, j.Script))
			cmd.Dir = t.TempDir()
			jobID := strconv.Itoa(9100 + i*7) // distinct port offsets for the parallel jobs
			cmd.Env = []string{"PATH=/usr/bin:/bin", "SLURM_JOB_ID=" + jobID, "DISAGGBENCH_SCHEDULER=local", "SLURM_PROCID=0"}
			start := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("job script: %v\n%s", err, out)
			}
			t.Logf("%s ran in %v", tc.ID, took.Round(10*time.Millisecond))
			if !strings.Contains(string(out), "EMULATION") {
				t.Errorf("output does not say it is an emulation:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(logDir, "8_done_"+jobID+".txt")); err != nil {
				t.Error(err)
			}
			for _, log := range []string{"3_output_CTX_0.log", "3_output_GEN_0.log", "4_output_server.log"} {
				b, err := os.ReadFile(filepath.Join(logDir, log))
				if err != nil || !strings.Contains(string(b), "EMULATED") {
					t.Errorf("%s does not say the server is emulated (%v):\n%s", log, err, b)
				}
			}
			d, err := newData(tc, Options{LogDir: logDir, Tools: tools}, j.Request)
			if err != nil {
				t.Fatal(err)
			}
			if d.BenchmarkEnabled {
				checkBench(t, logDir, d.Points, d.WarmupRequests)
			}
			if tc.Config.Benchmark.Mode == "gen_only" {
				checkGenOnly(t, logDir, d)
			}
			for _, task := range d.AccuracyTasks {
				checkAccuracy(t, task.LogFile)
			}
			judgeQuickstart(t, tc, logDir)
		})
	}
}

func checkBench(t *testing.T, logDir string, points []Point, warmup int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(logDir, BenchLogFile))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if !strings.Contains(log, "[EMULATION]") {
		t.Error("6_bench.log does not say the server is emulated")
	}
	starts, dones := benchStart.FindAllStringSubmatch(log, -1), benchDone.FindAllStringSubmatch(log, -1)
	blocks := parseBlocks(t, log)
	if warmup > 0 {
		// e2e mode warms up first: one block of short requests before the first point.
		w := strings.Index(log, fmt.Sprintf("Warming up with %d short requests", warmup))
		if w < 0 || len(blocks) == 0 || w > strings.Index(log, "Benchmarking with concurrency") {
			t.Fatalf("no warm-up of %d requests before the sweep:\n%s", warmup, log)
		}
		if blocks[0]["Total requests:"] != float64(warmup) {
			t.Errorf("warm-up block: %v requests, want %d", blocks[0]["Total requests:"], warmup)
		}
		blocks = blocks[1:]
	}
	if len(starts) != len(points) || len(dones) != len(points) || len(blocks) != len(points) {
		t.Fatalf("%d starts, %d dones, %d blocks for %d concurrencies:\n%s", len(starts), len(dones), len(blocks), len(points), log)
	}
	var prevTPOT, prevTput float64
	for i, p := range points {
		if starts[i][1] != strconv.Itoa(p.Concurrency) || starts[i][2] != strconv.Itoa(p.Prompts) || dones[i][1] != strconv.Itoa(p.Concurrency) {
			t.Errorf("concurrency %d: markers %q %q, want %d with %d prompts", i, starts[i][0], dones[i][0], p.Concurrency, p.Prompts)
		}
		bl := blocks[i]
		for _, l := range blockLabels {
			if _, ok := bl[l]; !ok {
				t.Errorf("concurrency %d: block lacks %q", p.Concurrency, l)
			}
		}
		if len(bl) != len(blockLabels) {
			t.Errorf("concurrency %d: %d fields, want %d", p.Concurrency, len(bl), len(blockLabels))
		}
		if bl["Total requests:"] != float64(p.Prompts) || bl["Successful requests:"] != float64(p.Prompts) || bl["Failed requests:"] != 0 {
			t.Errorf("concurrency %d: requests %v/%v/%v", p.Concurrency, bl["Total requests:"], bl["Successful requests:"], bl["Failed requests:"])
		}
		if bl["Total generated tokens:"] <= 0 || bl["Median TTFT (ms):"] <= 0 || bl["Median E2EL (ms):"] <= bl["Median TTFT (ms):"] {
			t.Errorf("concurrency %d: implausible block %v", p.Concurrency, bl)
		}
		// The decode step grows with the running batch: so must TPOT, and throughput.
		if bl["Median TPOT (ms):"] <= prevTPOT || bl["Output token throughput (tok/s):"] <= prevTput {
			t.Errorf("concurrency %d: median TPOT %v (before %v) and throughput %v (before %v) must grow with concurrency",
				p.Concurrency, bl["Median TPOT (ms):"], prevTPOT, bl["Output token throughput (tok/s):"], prevTput)
		}
		prevTPOT, prevTput = bl["Median TPOT (ms):"], bl["Output token throughput (tok/s):"]

		res, err := benchclient.ReadResult(filepath.Join(p.ResultDir, "result.json"))
		if err != nil {
			t.Errorf("concurrency %d: %v", p.Concurrency, err)
			continue
		}
		if res.Completed != p.Prompts || res.MaxConcurrency != p.Concurrency || float64(res.TotalOutput) != bl["Total generated tokens:"] {
			t.Errorf("concurrency %d: result.json completed %d, max_concurrency %d, output %d; the log says %v prompts, %v tokens",
				p.Concurrency, res.Completed, res.MaxConcurrency, res.TotalOutput, p.Prompts, bl["Total generated tokens:"])
		}
		if math.Abs(res.MedianTTFT-bl["Median TTFT (ms):"]) > 0.005001 {
			t.Errorf("concurrency %d: median TTFT %v in result.json, %v printed", p.Concurrency, res.MedianTTFT, bl["Median TTFT (ms):"])
		}
		if slices.Min(res.TTFTs) == slices.Max(res.TTFTs) {
			t.Errorf("concurrency %d: every request has the same TTFT %v", p.Concurrency, res.TTFTs)
		}
	}
}

// checkGenOnly: the gen workers held their requests until the first concurrency was
// queued (the ctx worker carries no gate), and each point left its slice of the gen
// workers' iteration log, generation-only iterations only.
func checkGenOnly(t *testing.T, logDir string, d *Data) {
	t.Helper()
	for _, s := range d.Servers {
		b, _ := os.ReadFile(s.LogFile)
		gated := strings.Contains(string(b), "TLLM_BENCHMARK_REQ_QUEUES_SIZE")
		if gated != (s.Role == "GEN") {
			t.Errorf("%s_%d: gate %v in its log:\n%s", s.Role, s.ID, gated, b)
		}
	}
	for _, p := range d.Points {
		for _, s := range d.Servers {
			if s.Role != "GEN" {
				continue
			}
			name := filepath.Join(p.ResultDir, fmt.Sprintf("gen_only_%d.txt", s.ID))
			b, err := os.ReadFile(name)
			if err != nil {
				t.Error(err)
				continue
			}
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) == 0 || lines[0] == "" {
				t.Errorf("%s: no generation iterations", name)
			}
			for _, l := range lines {
				if !strings.Contains(l, "'num_ctx_requests': 0, 'num_ctx_tokens': 0") {
					t.Errorf("%s: not a generation-only iteration: %q", name, l)
				}
			}
		}
	}
}

func checkAccuracy(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := accRow.FindAllStringSubmatch(string(b), -1)
	if len(rows) != 2 || rows[0][1] != "flexible-extract" || rows[1][1] != "strict-match" {
		t.Fatalf("lm_eval rows %q in:\n%s", rows, b)
	}
	// The emulated server answers the bundled questions as minieval.Expected says.
	flex, strict := minieval.Expected()
	want := map[string]string{"flexible-extract": fmt.Sprintf("%.4f", flex), "strict-match": fmt.Sprintf("%.4f", strict)}
	for _, r := range rows {
		if r[2] != want[r[1]] {
			t.Errorf("%s exact_match %s, want %s", r[1], r[2], want[r[1]])
		}
	}
}

// judgeQuickstart reads the logs as the collector does and expects a valid,
// complete result: every concurrency's default metrics, or a passing gsm8k verdict.
func judgeQuickstart(t *testing.T, tc *config.Test, logDir string) {
	t.Helper()
	c := &tc.Config
	in := metrics.Input{TestType: tc.Type, Category: tc.Category, Concurrencies: c.Benchmark.ConcurrencyList,
		NumGenServers: c.Hardware.NumGenServers, JobState: "COMPLETED"}
	if a := c.Metadata.Accuracy; a != nil {
		for _, ds := range a.Datasets {
			d := metrics.DatasetDefaults(ds.DatasetName)
			d.Name, d.Filter, d.Expected = ds.DatasetName, ds.FilterType, ds.ExpectedValue
			in.Datasets = append(in.Datasets, d)
		}
	}
	r := metrics.Judge(logDir, in)
	if !r.Valid || r.Partial {
		t.Fatalf("judged invalid (partial %v): %v", r.Partial, r.Reasons)
	}
	if tc.Category == "accuracy" {
		if len(r.Accuracy) == 0 {
			t.Error("no accuracy rows")
		}
		return
	}
	seen := map[int]int{}
	for _, row := range r.Perf {
		seen[row.Concurrency]++
	}
	for _, cc := range c.Benchmark.ConcurrencyList {
		if seen[cc] == 0 {
			t.Errorf("no metrics for concurrency %d: %+v", cc, r.Perf)
		}
	}
}
