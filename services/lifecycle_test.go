package services_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// quickstartCopy copies the quickstart with its configs switched to the fixture job
// script of pkg/plan (the real output formats, no emulator), whose steps sleep pause.
func quickstartCopy(t *testing.T, pause string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "qs")
	if err := os.CopyFS(dir, os.DirFS("../examples/quickstart")); err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../pkg/plan/testdata/fast_job.sh.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fast_job.sh.tmpl"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	cfgs, _ := filepath.Glob(filepath.Join(dir, "test_configs", "*", "*", "*.yaml"))
	for _, c := range cfgs {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.Replace(string(data), "  emulate: true\n", "  container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0\n", 1)
		s = strings.Replace(s, "slurm:\n", "slurm:\n  script_file: ../../../fast_job.sh.tmpl\n", 1)
		if !strings.Contains(s, "script_file") || strings.Contains(s, "emulate: true") {
			t.Fatalf("%s: cannot switch it to the fixture job script", c)
		}
		if err := os.WriteFile(c, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setPause(t, dir, pause)
	return dir
}

func setPause(t *testing.T, dir, pause string) {
	t.Helper()
	tmpl := filepath.Join(dir, "fast_job.sh.tmpl")
	data, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	data = regexp.MustCompile(`(?m)^pause=.*$`).ReplaceAll(data, []byte("pause="+pause))
	if err := os.WriteFile(tmpl, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// planner runs `planner args...` to its end; it returns the exit code and the outputs.
func planner(t *testing.T, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin("planner"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatalf("planner %v: %v\n%s\n%s", args, err, out.String(), errb.String())
	return 0, "", ""
}

// background starts `planner args...` with its outputs in files.
type bgProc struct {
	cmd      *exec.Cmd
	out, err string
	done     chan struct{}
}

func background(t *testing.T, args ...string) *bgProc {
	t.Helper()
	dir := t.TempDir()
	p := &bgProc{out: filepath.Join(dir, "stdout"), err: filepath.Join(dir, "stderr"), done: make(chan struct{})}
	o, _ := os.Create(p.out)
	e, _ := os.Create(p.err)
	p.cmd = exec.Command(bin("planner"), args...)
	p.cmd.Stdout, p.cmd.Stderr = o, e
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); o.Close(); e.Close(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *bgProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("planner still running after %v:\n%s", d, p.stderr())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *bgProc) stderr() string { b, _ := os.ReadFile(p.err); return string(b) }
func (p *bgProc) stdout() string { b, _ := os.ReadFile(p.out); return string(b) }

var runIDRe = regexp.MustCompile(`(?m)^run (\d{8}-\d{6}-[0-9a-f]{6}):`)

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func csvRows(t *testing.T, out string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "perf_script_test_results.csv"))
	if err != nil {
		return nil
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		return nil
	}
	return recs[1:]
}

func runArgs(qs, out string, extra ...string) []string {
	return append([]string{"run", "--config-dir", filepath.Join(qs, "test_configs"),
		"--test-list", filepath.Join(qs, "testlist.txt"), "--output-path", out}, extra...)
}

// TestInterruptThenResume interrupts planner run after its first result, as Ctrl-C
// does, then finishes the run with planner resume: every test once, no job twice.
func TestInterruptThenResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated jobs")
	}
	qs := quickstartCopy(t, "0.7")
	out := filepath.Join(t.TempDir(), "out")
	p := background(t, runArgs(qs, out, "--batch-size", "1")...)
	waitUntil(t, 90*time.Second, "a first result", func() bool { return len(csvRows(t, out)) > 0 })
	_ = p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t, 60*time.Second); code != 130 {
		t.Fatalf("interrupted planner run exited %d, want 130:\n%s", code, p.stderr())
	}
	m := runIDRe.FindStringSubmatch(p.stderr())
	if m == nil {
		t.Fatalf("no run id in:\n%s", p.stderr())
	}
	run := m[1]
	for _, want := range []string{"planner resume " + run, "planner cancel " + run} {
		if !strings.Contains(p.stderr(), want) {
			t.Errorf("the interruption does not say %q:\n%s", want, p.stderr())
		}
	}
	if strings.Contains(p.stdout(), "4 tests: 4 passed") {
		t.Fatal("the run was over before the interruption")
	}

	code, stdout, stderr := planner(t, 2*time.Minute, "resume", run, "--output-path", out)
	if code != 0 || !strings.Contains(stdout, "4 tests: 4 passed, 0 failed") {
		t.Fatalf("planner resume exited %d:\n%s\n%s", code, stdout, stderr)
	}
	seen := map[string]int{}
	for _, r := range csvRows(t, out) {
		seen[r[0]+"|"+r[len(r)-1]]++
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("CSV row %s written %d times", k, n)
		}
	}
	jobs, _ := filepath.Glob(filepath.Join(out, ".local-scheduler", "jobs", "*.json"))
	if len(jobs) != 4 {
		t.Errorf("%d jobs submitted for 4 tests: a test ran twice or not at all", len(jobs))
	}
}

// TestTwoRunsAtOnceOnOneOutputPath: both finish, with every row of both, and the
// commands that read them leave no consumer behind.
func TestTwoRunsAtOnceOnOneOutputPath(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated jobs")
	}
	qs := quickstartCopy(t, "0.4")
	out := filepath.Join(t.TempDir(), "out")
	a := background(t, runArgs(qs, out)...)
	b := background(t, runArgs(qs, out)...)
	var runs []string
	for _, p := range []*bgProc{a, b} {
		if code := p.wait(t, 2*time.Minute); code != 0 {
			t.Fatalf("planner run exited %d:\n%s\n%s", code, p.stdout(), p.stderr())
		}
		m := runIDRe.FindStringSubmatch(p.stderr())
		if m == nil {
			t.Fatalf("no run id in:\n%s", p.stderr())
		}
		runs = append(runs, m[1])
	}
	rows := csvRows(t, out)
	perRun := map[string]int{}
	for _, r := range rows {
		perRun[r[0]+"|"+r[len(r)-1]]++
	}
	for k, n := range perRun {
		if n != 2 {
			t.Errorf("CSV row %s present %d times, want once per run", k, n)
		}
	}
	if len(rows) < 2*18 {
		t.Errorf("%d CSV rows for two runs, want at least 36", len(rows))
	}
	for _, run := range runs {
		parts, _ := filepath.Glob(filepath.Join(out, "results", "run="+run, "*.parquet"))
		if len(parts) == 0 {
			t.Errorf("no Parquet part for run %s", run)
		}
		code, stdout, stderr := planner(t, 30*time.Second, "status", run, "--output-path", out)
		if code != 0 || !strings.Contains(stdout, "finished") || !strings.Contains(stdout, "4 tests: 4 passed, 0 failed") {
			t.Errorf("planner status %s exited %d:\n%s\n%s", run, code, stdout, stderr)
		}
	}
	// Every command is done: opening the store here sees only the stages' durable
	// consumers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bs, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(out, ".nats"), Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	for name := range bs.Stream.ConsumerNames(ctx).Name() {
		info, err := bs.Stream.Consumer(ctx, name)
		if err == nil && info.CachedInfo().Config.Durable == "" {
			t.Errorf("consumer %s (%s) left behind", name, info.CachedInfo().Config.Description)
		}
	}
}

// TestUnknownRunIDFailsAtOnce: status, watch, resume and cancel name the id and exit 1,
// and create nothing in a folder with no store.
func TestUnknownRunIDFailsAtOnce(t *testing.T) {
	empty := t.TempDir()
	withStore := filepath.Join(t.TempDir(), "out")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bs, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(withStore, ".nats"), Listen: true})
	if err != nil {
		t.Fatal(err)
	}
	bs.Close()
	for _, out := range []string{empty, withStore} {
		for _, cmd := range []string{"status", "watch", "resume", "cancel"} {
			start := time.Now()
			code, stdout, stderr := planner(t, 20*time.Second, cmd, "20990101-000000-abcdef", "--output-path", out)
			if code != 1 || !strings.Contains(stderr, `"20990101-000000-abcdef"`) {
				t.Errorf("planner %s of an unknown run in %s: exit %d\n%s\n%s", cmd, out, code, stdout, stderr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("planner %s took %v to refuse an unknown run", cmd, d)
			}
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("read-only commands created %v in a folder with no store", entries)
	}
}

// TestCancelThenRerunFailed kills planner run while a job runs, cancels the run, and
// reruns its cancelled tests.
func TestCancelThenRerunFailed(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated jobs")
	}
	qs := quickstartCopy(t, "30")
	out := filepath.Join(t.TempDir(), "out")
	p := background(t, runArgs(qs, out, "--batch-size", "1")...)
	waitUntil(t, 60*time.Second, "a job submitted", func() bool {
		jobs, _ := filepath.Glob(filepath.Join(out, ".local-scheduler", "jobs", "*.json"))
		return len(jobs) > 0
	})
	m := runIDRe.FindStringSubmatch(p.stderr())
	if m == nil {
		t.Fatalf("no run id in:\n%s", p.stderr())
	}
	run := m[1]
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.wait(t, 20*time.Second)

	code, stdout, stderr := planner(t, 2*time.Minute, "cancel", run, "--output-path", out)
	if code != 0 || !strings.Contains(stdout, "cancelled") {
		t.Fatalf("planner cancel exited %d:\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = planner(t, 30*time.Second, "status", run, "--output-path", out)
	if code != 0 || !strings.Contains(stdout, "; cancelled") || !strings.Contains(stdout, "4 tests: 0 passed, 4 failed") {
		t.Fatalf("planner status after cancel exited %d:\n%s\n%s", code, stdout, stderr)
	}
	if strings.Count(stdout, "CANCELLED") < 4 {
		t.Errorf("want every test CANCELLED:\n%s", stdout)
	}
	jobs, _ := filepath.Glob(filepath.Join(out, ".local-scheduler", "jobs", "*.json"))
	if len(jobs) != 1 {
		t.Errorf("%d jobs submitted, want only the one running before the cancel", len(jobs))
	}

	setPause(t, qs, "0.2")
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, stdout, stderr = planner(t, 2*time.Minute, "rerun", "--failed", run, "--output-path", out, "--junit-xml", junit)
	if code != 0 || !strings.Contains(stdout, "4 tests: 4 passed, 0 failed") {
		t.Fatalf("planner rerun --failed exited %d:\n%s\n%s", code, stdout, stderr)
	}
	x, err := os.ReadFile(junit)
	if err != nil || strings.Count(string(x), "<testcase ") != 4 {
		t.Fatalf("junit: %v\n%s", err, x)
	}
}

// TestInvalidTestLeavesARecord: a run with one invalid test has a Parquet row and a JUnit
// failure for it, and the JUnit report lists every selected test.
func TestInvalidTestLeavesARecord(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated jobs")
	}
	qs := quickstartCopy(t, "0.2")
	src := filepath.Join(qs, "test_configs/disagg/perf/tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX.yaml")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "concurrency_list: \"1 2 4\"", "concurrency_list: \"1 two 4\"", 1)
	if bad == string(data) {
		t.Fatal("no concurrency_list to break")
	}
	name := "tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX_bad"
	if err := os.WriteFile(filepath.Join(qs, "test_configs/disagg/perf", name+".yaml"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	list, _ := os.ReadFile(filepath.Join(qs, "testlist.txt"))
	invalidID := "disagg_perf_" + name
	if err := os.WriteFile(filepath.Join(qs, "testlist.txt"), append(list, []byte("\n"+invalidID+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	junit := filepath.Join(t.TempDir(), "junit.xml")
	code, stdout, stderr := planner(t, 2*time.Minute, runArgs(qs, out, "--junit-xml", junit)...)
	if code != 1 || !strings.Contains(stdout, "5 tests: 4 passed, 1 failed") {
		t.Fatalf("planner run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	run := runIDRe.FindStringSubmatch(stderr)[1]
	logs, _ := filepath.Glob(filepath.Join(out, "disagg_benchmark_*.log"))
	if len(logs) != 1 {
		t.Fatalf("run logs: %v", logs)
	}
	runLog, _ := os.ReadFile(logs[0])
	for what, text := range map[string]string{"stderr": stderr, "run log": string(runLog)} {
		eachEventOnce(t, what, text, run)
	}
	parts, _ := filepath.Glob(filepath.Join(out, "results", "run="+run, "*.parquet"))
	found := false
	for _, p := range parts {
		rows, err := results.ReadParquet(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.TestID == invalidID {
				found = true
				if r.Verdict != "fail" || r.SlurmState != "INVALID" || !strings.Contains(r.Reasons, "concurrency_list") {
					t.Errorf("invalid test's row: %+v", r)
				}
			}
		}
	}
	if !found {
		t.Fatalf("no Parquet row for the invalid test in %v", parts)
	}
	x, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(x), "<testcase "); n != 5 || strings.Count(string(x), "<failure ") != 1 ||
		!strings.Contains(string(x), "test_benchmark["+invalidID+"]") {
		t.Fatalf("junit has %d test cases, want 5 with one failure:\n%s", n, x)
	}
}

// eachEventOnce checks that a run's output, outside a terminal, says each thing once.
func eachEventOnce(t *testing.T, what, text, run string) {
	t.Helper()
	submitted := regexp.MustCompile(`(?m)<- (\S+)`).FindAllStringSubmatch(text, -1)
	seen := map[string]int{}
	for _, m := range submitted {
		seen[m[1]]++
	}
	if len(seen) != 4 {
		t.Errorf("%s: submissions of %d tests, want 4:\n%s", what, len(seen), text)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s: submission of %s said %d times:\n%s", what, id, n, text)
		}
	}
	if n := strings.Count(text, "run "+run+" started") + strings.Count(text, "run "+run+": "); n != 1 {
		t.Errorf("%s: the run's start said %d times:\n%s", what, n, text)
	}
	if strings.Contains(text, "other commands") {
		t.Errorf("%s: a lone run says other commands use its server:\n%s", what, text)
	}
}
