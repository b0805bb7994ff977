package metrics

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

// A custom metrics log is read within a cap, and only as a regular file: /dev/zero (given
// as the file, or linked from the folder) is refused at once instead of filling memory.
func TestCustomLogDeviceIsRefused(t *testing.T) {
	spec := &testspec.MetricsSpec{LogFile: "metrics.log", ExtractorPattern: `v=(\d+) c=(\d+)`, MetricNames: []string{"v"}}
	res := Judge("/dev/zero", Input{TestType: "disagg", Category: "perf", Custom: spec})
	if res.Valid || !strings.Contains(strings.Join(res.Reasons, ";"), "not a regular file") {
		t.Fatalf("/dev/zero as the custom log: %v", res.Reasons)
	}
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "metrics.log")); err != nil {
		t.Fatal(err)
	}
	res = Judge(dir, Input{TestType: "disagg", Category: "perf", Custom: spec})
	if res.Valid || !strings.Contains(strings.Join(res.Reasons, ";"), "metrics log") {
		t.Fatalf("a link to /dev/zero: %v", res.Reasons)
	}
}

// A pattern that matches everywhere keeps at most maxCustomMatches matches: a 20 MB log
// and (\d)(\d) once took 2.3 GB.
func TestCustomMatchesAreBounded(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "metrics.log"), bytes.Repeat([]byte("1234567890"), 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	res := Judge(dir, Input{TestType: "disagg", Category: "perf", Custom: &testspec.MetricsSpec{LogFile: "metrics.log", ExtractorPattern: `(\d)(\d)`, MetricNames: []string{"x"}}})
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("20 MiB, (\\d)(\\d): %s, %d MiB allocated", time.Since(start).Round(time.Millisecond), alloc>>20)
	if !strings.Contains(strings.Join(res.Reasons, ";"), fmt.Sprintf("more than %d times", maxCustomMatches)) {
		t.Errorf("reasons %v: want the match cap", res.Reasons)
	}
	if alloc > 512<<20 {
		t.Errorf("%d MiB allocated for one 20 MiB log", alloc>>20)
	}
}

// Special files in the folder fail the test with a reason at once: a FIFO as the client
// log (an open would block forever), a link out of the folder, a link loop.
func TestSpecialFilesInTheFolderFailAtOnce(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("Benchmarking with concurrency 1\nSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, create := range map[string]func(dir string) error{
		"fifo":     func(d string) error { return syscall.Mkfifo(filepath.Join(d, ClientLog), 0o644) },
		"link out": func(d string) error { return os.Symlink(secret, filepath.Join(d, ClientLog)) },
		"loop":     func(d string) error { return os.Symlink(ClientLog, filepath.Join(d, ClientLog)) },
		"folder":   func(d string) error { return os.Mkdir(filepath.Join(d, ClientLog), 0o755) },
	} {
		dir := t.TempDir()
		if err := create(dir); err != nil {
			t.Fatal(err)
		}
		done := make(chan Result, 1)
		go func() { done <- Judge(dir, Input{TestType: "disagg", Category: "perf"}) }()
		select {
		case res := <-done:
			if res.Valid || len(res.Reasons) == 0 || strings.Contains(fmt.Sprint(res), "SECRET") {
				t.Errorf("%s: %v", name, res.Reasons)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Judge blocked", name)
		}
	}
}

// FuzzJudgeFolder builds a log folder from the input (files, FIFOs, links in and out,
// loops, sub folders) and judges it: Judge never panics or blocks, and never reads the
// secret file beside the folder.
func FuzzJudgeFolder(f *testing.F) {
	f.Add([]byte("f6_bench.log\x00Benchmarking with concurrency 1\n"), "metrics.log")
	f.Add([]byte("p6_bench.log\x00\x00l6_bench.log\x00../secret"), "*.log")
	f.Add([]byte("lmetrics.log\x00metrics.log\x00dconcurrency_1\x00"), "../secret")
	f.Add([]byte("l7_accuracy_eval_1.log\x00/dev/zero"), "7_*")
	f.Fuzz(func(t *testing.T, spec []byte, logFile string) {
		base := t.TempDir()
		if err := os.WriteFile(filepath.Join(base, "secret"), []byte("v=SECRET c=1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(base, "job")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Records: kind byte, name, NUL, content or link target, NUL. The folder is
		// built through os.Root, and FIFOs only at its top, so that no record writes
		// outside it through a link an earlier record made.
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		parts := bytes.Split(spec, []byte{0})
		for i := 0; i+1 < len(parts) && i < 40; i += 2 {
			if len(parts[i]) < 2 {
				continue
			}
			kind, name := parts[i][0], string(parts[i][1:])
			if !filepath.IsLocal(name) || len(name) > 100 {
				continue
			}
			if _, err := root.Lstat(name); err == nil {
				continue // writing into a FIFO made before would block the test itself
			}
			if d := filepath.Dir(name); d != "." {
				_ = root.MkdirAll(d, 0o755)
			}
			switch kind {
			case 'f':
				_ = root.WriteFile(name, parts[i+1], 0o644)
			case 'p':
				if !strings.Contains(name, "/") {
					_ = syscall.Mkfifo(filepath.Join(dir, name), 0o644)
				}
			case 'l':
				_ = root.Symlink(string(parts[i+1]), name)
			case 'd':
				_ = root.Mkdir(name, 0o755)
			}
		}
		for _, in := range []Input{
			{TestType: "disagg", Category: "perf", Concurrencies: []int{1}},
			{TestType: "disagg", Category: "perf", Custom: &testspec.MetricsSpec{LogFile: logFile, ExtractorPattern: `v=(\w+) c=(\d+)`, MetricNames: []string{"v"}}},
			{TestType: "disagg", Category: "accuracy"},
		} {
			done := make(chan Result, 1)
			go func() { done <- Judge(dir, in) }()
			select {
			case res := <-done:
				if strings.Contains(fmt.Sprintf("%+v", res), "SECRET") {
					t.Fatalf("the secret beside the folder was read: %+v", res)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Judge blocked")
			}
		}
	})
}
