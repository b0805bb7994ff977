// Package services_test runs the four commands as separate processes around a real
// nats-server, and checks that compose.yaml starts them as they accept.
package services_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "disaggbench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		build := exec.Command("go", "build", "-o", dir+"/", "./planner", "./submitter", "./watcher", "./collector", "./dashboard")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build services:", err)
			return 1
		}
		ns := exec.Command("go", "build", "-o", filepath.Join(dir, "nats-server"), "github.com/nats-io/nats-server/v2")
		ns.Stdout, ns.Stderr = os.Stdout, os.Stderr
		if err := ns.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build nats-server:", err)
			return 1
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

func freePort(t *testing.T) int {
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may offer a closed port again: never hand one out twice.
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

type proc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

// start runs a command in its own process group; the test kills what is left.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd, &out}
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

func (p *proc) stop(sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func TestSeparateProcessesOnARealNATSServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server and the four commands")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	ns := start(t, "nats-server", "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", filepath.Join(dir, "nats"))
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not start:\n%s", ns.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	common := []string{"--nats", url, "--output-path", out}
	start(t, "submitter", append(common, "--scheduler", "local")...)
	w1 := start(t, "watcher", append(common, "--scheduler", "local", "--poll-min", "200ms", "--poll-max", "1s", "--ack-wait", "3s")...)
	start(t, "watcher", append(common, "--scheduler", "local", "--poll-min", "200ms", "--poll-max", "1s", "--ack-wait", "3s")...)
	c1 := start(t, "collector", append(common, "--ack-wait", "3s")...)

	qs := "../examples/quickstart"
	publish := exec.Command(bin("planner"), append([]string{"publish", "--config-dir", qs + "/test_configs", "--test-list", qs + "/testlist.txt", "--batch-size", "2"}, common...)...)
	var perr bytes.Buffer
	publish.Stderr = &perr
	runID, err := publish.Output()
	if err != nil {
		t.Fatalf("planner publish: %v\n%s", err, perr.String())
	}
	run := strings.TrimSpace(string(runID))
	if run == "" {
		t.Fatal("planner publish printed no run id")
	}

	// Kill one watcher and the collector without warning once jobs are running, then
	// start a new collector: their work must be taken over, not lost or done twice.
	time.Sleep(1500 * time.Millisecond)
	w1.stop(syscall.SIGKILL)
	c1.stop(syscall.SIGKILL)
	start(t, "collector", append(common, "--ack-wait", "3s")...)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	watch := exec.CommandContext(ctx, bin("planner"), append([]string{"watch", run}, "--nats", url, "--output-path", out)...)
	wout, err := watch.CombinedOutput()
	if err != nil {
		t.Fatalf("planner watch: %v\n%s", err, wout)
	}
	if !strings.Contains(string(wout), "finished: 4 passed, 0 failed") {
		t.Fatalf("run did not finish with 4 passes:\n%s", wout)
	}
	status, err := exec.Command(bin("planner"), "status", run, "--nats", url, "--output-path", out).CombinedOutput()
	if err != nil || !strings.Contains(string(status), "4 tests: 4 passed") {
		t.Fatalf("planner status: %v\n%s", err, status)
	}

	data, err := os.ReadFile(filepath.Join(out, "perf_script_test_results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range recs[1:] {
		seen[r[0]+"|"+r[len(r)-1]]++ // network_name and metric_type
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("CSV row %s written %d times", k, n)
		}
	}
	// 3 perf tests x 3 concurrencies x 2 metrics, and the accuracy test's rows.
	if perf := len(recs) - 1; perf < 18 {
		t.Errorf("%d CSV rows, want at least 18", perf)
	}

	// replay rebuilds the same CSV from the stored events.
	replayOut := filepath.Join(dir, "replay")
	rep, err := exec.Command(bin("collector"), "replay", "--run", run, "--nats", url, "--output-path", replayOut, "--logs-from", out).CombinedOutput()
	if err != nil {
		t.Fatalf("collector replay: %v\n%s", err, rep)
	}
	again, err := os.ReadFile(filepath.Join(replayOut, "perf_script_test_results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameLines(data, again) {
		t.Fatalf("replayed CSV differs:\n--- collected\n%s\n--- replayed\n%s", data, again)
	}
}

// sameLines compares two CSVs as sets of lines (replay reads completions in stream
// order; collectors that took over may have appended in another order).
func sameLines(a, b []byte) bool {
	count := map[string]int{}
	for s := bufio.NewScanner(bytes.NewReader(a)); s.Scan(); {
		count[s.Text()]++
	}
	for s := bufio.NewScanner(bytes.NewReader(b)); s.Scan(); {
		count[s.Text()]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// Every binary: a stray word exits 2 and runs nothing, -h prints usage on stdout and
// exits 0, --version prints the version, a misspelled flag names the closest one.
func TestBinariesCommandLine(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	for _, name := range []string{"planner", "submitter", "watcher", "collector"} {
		args := func(a ...string) []string {
			if name == "planner" {
				return append([]string{"list"}, a...)
			}
			return a
		}
		check := func(want int, stdout, stderr string, a ...string) {
			t.Helper()
			cmd := exec.Command(bin(name), a...)
			cmd.Env = append(os.Environ(), "OUTPUT_PATH="+out, "NATS_URL=")
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != want || !strings.Contains(strings.ToLower(o.String()), stdout) || !strings.Contains(e.String(), stderr) {
				t.Errorf("%s %v: exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", name, a, code, want, o.String(), stdout, e.String(), stderr)
			}
		}
		check(2, "", `unexpected argument "stray"`, args("stray")...)
		check(0, "usage", "", args("-h")...)
		check(0, name+" ", "", "--version")
		if name == "planner" {
			check(2, "", "did you mean --config-dir?", args("--config-dr", out)...)
		} else {
			check(2, "", "did you mean --output-path?", args("--output-pth", out)...)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command created the output folder")
	}
}
