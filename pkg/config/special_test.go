package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test when f does not return in d (a blocked open never returns).
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatal("blocked")
	}
}

// A FIFO named like a config or a test list is refused, never waited on.
func TestSpecialFilesNeverBlock(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "test_configs", "disagg", "perf")
	os.MkdirAll(cfgDir, 0o755)
	os.MkdirAll(filepath.Join(dir, "testlist"), 0o755)
	fifo := filepath.Join(cfgDir, "pipe.yaml")
	for _, p := range []string{fifo, filepath.Join(dir, "testlist", "pipe.txt")} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	within(t, 5*time.Second, func() {
		tests, _, err := Discover(filepath.Join(dir, "test_configs"))
		if err != nil || len(tests) != 1 {
			t.Fatalf("discover: %v %v", tests, err)
		}
		ps := tests[0].Validate()
		if !HasErrors(ps) || !strings.Contains(ps[0].Message, "named pipe") {
			t.Errorf("a FIFO config: %v", ps)
		}
		if _, _, err := LoadPaths([]string{fifo}); err != nil {
			t.Error(err)
		}
		_, err = Select(Selection{ConfigDir: filepath.Join(dir, "test_configs"), TestList: "pipe"}, Env{})
		if err == nil || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("a FIFO test list: %v", err)
		}
	})
}

// --test-list NAME finds testlist/NAME.txt as the seed's lists are named.
func TestTestListNameWithoutExtension(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "testlist"), 0o755)
	want := filepath.Join(dir, "testlist", "disagg.txt")
	os.WriteFile(want, []byte("a\n"), 0o644)
	if got := findTestList("disagg", filepath.Join(dir, "test_configs")); got != want {
		t.Errorf("findTestList(disagg) = %q, want %q", got, want)
	}
}

// A YAML parser error is reported on the line it is on (yaml.v3 counts those from 0).
func TestYAMLSyntaxErrorLine(t *testing.T) {
	for _, c := range []struct {
		src  string
		line int
	}{
		{"metadata:\n  model_name: x\nslurm:\n  partition: [a, b\nbenchmark:\n  mode: e2e\n", 4},
		{"metadata:\n  a: b\n c: d\n", 3},
		{"metadata:\n  model_name: \"x\n", 2},
		// yaml.v3 would name the line before a tab, and the mapping's first key for a
		// stray word after a value.
		{"metadata:\n  a: b\n\tc: d\n", 3},
		{"metadata:\n  a: b\nslurm:\n  partition: debug\n  account: x\n  job_time: \"00:10:00\" extra\nbenchmark:\n  mode: e2e\n", 6},
		{"metadata:\n  a: b\nslurm:\n  partition: [a,\n    b]\n  job_time: \"00:10:00\" extra\n", 6},
	} {
		_, ps := LoadBytes("a.yaml", []byte(c.src))
		if len(ps) != 1 || ps[0].Line != c.line || !strings.Contains(ps[0].Message, "YAML syntax error") {
			t.Errorf("%q: %v, want a syntax error on line %d", c.src, ps, c.line)
		}
	}
}

// The loader admits parses while their memory fits: a second large parse waits for
// the first.
func TestMemGate(t *testing.T) {
	g := &memGate{}
	g.cond = syncCond(g)
	g.acquire(loadMemory - 1)
	got := make(chan struct{})
	go func() { g.acquire(maxConfigMemory); close(got) }()
	select {
	case <-got:
		t.Fatal("admitted past the memory budget")
	case <-time.After(100 * time.Millisecond):
	}
	g.release(loadMemory - 1)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("never admitted after the memory was released")
	}
	g.release(maxConfigMemory)
	within(t, time.Second, func() { g.acquire(loadMemory * 2) }) // one parse always runs, however large
}
