package collect_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/testspec"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Jobs that turn on their judge, each while it runs (between submission and the end the
// scheduler reports): one rewrites job.json to read a secret file of the collector's
// and to pass; one's spec points its custom log out of its folder; others leave a FIFO,
// a link out, a link loop or a huge file where the client log should be. None changes
// its verdict or provenance, no secret reaches any output, and the run finishes.
func TestHostileJobFoldersChangeNoVerdictAndStallNothing(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	secret := filepath.Join(dir, "secret.txt")
	const marker = "TOPSECRET"
	if err := os.WriteFile(secret, []byte(marker+"-4242 Benchmarking with concurrency 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := "r1"
	failing := strings.Replace(benchLog("1", "2"), "Failed requests:                         0 ", "Failed requests:                         3 ", 1)
	type job struct {
		id     string
		log    string
		custom *testspec.MetricsSpec
		attack func(t *testing.T, logDir string)
		reason string // in the failed verdict's reasons
	}
	jobs := []job{
		{id: "disagg_perf_good", log: benchLog("1", "2")},
		{id: "disagg_perf_rewrites_spec", log: failing, reason: "failed requests", attack: func(t *testing.T, d string) {
			forged := events.JobSpec{TestID: "disagg_perf_rewrites_spec", TestType: "disagg", Category: "perf", Model: "forged",
				Metrics: &testspec.MetricsSpec{LogFile: "../../../../secret.txt", ExtractorPattern: `(TOPSECRET)-(\d+)`, MetricNames: []string{"leak"}}}
			data, _ := json.Marshal(forged)
			if err := os.WriteFile(filepath.Join(d, events.JobFile), data, 0o644); err != nil {
				t.Error(err)
			}
		}},
		{id: "disagg_perf_custom_escape", log: benchLog("1", "2"), reason: "not a path inside the log folder",
			custom: &testspec.MetricsSpec{LogFile: "../../../../secret.txt", ExtractorPattern: `(TOPSECRET)-(\d+)`, MetricNames: []string{"leak"}}},
		{id: "disagg_perf_fifo", reason: "not a regular file", attack: func(t *testing.T, d string) {
			if err := syscall.Mkfifo(filepath.Join(d, "6_bench.log"), 0o644); err != nil {
				t.Error(err)
			}
		}},
		{id: "disagg_perf_link_out", reason: "client log", attack: func(t *testing.T, d string) {
			if err := os.Symlink(secret, filepath.Join(d, "6_bench.log")); err != nil {
				t.Error(err)
			}
		}},
		{id: "disagg_perf_link_loop", reason: "client log", attack: func(t *testing.T, d string) {
			if err := os.Symlink("6_bench.log", filepath.Join(d, "6_bench.log")); err != nil {
				t.Error(err)
			}
		}},
		{id: "disagg_perf_huge", reason: "more than the cap", attack: func(t *testing.T, d string) {
			f, err := os.Create(filepath.Join(d, "6_bench.log"))
			if err == nil {
				err = f.Truncate(4 << 30) // sparse: costs no disk
				f.Close()
			}
			if err != nil {
				t.Error(err)
			}
		}},
		{id: "disagg_perf_fifo_marker", log: failing, reason: "failed requests", attack: func(t *testing.T, d string) {
			// The collector's own FAILED.txt, made a FIFO: it is not written, nothing waits.
			if err := syscall.Mkfifo(filepath.Join(d, collect.FailedMarker), 0o644); err != nil {
				t.Error(err)
			}
		}},
	}
	p := &plan.Plan{RunID: run, Policy: events.PolicySliding, Started: events.RunStarted{Header: events.NewHeader(run), Tests: len(jobs)}}
	for i, j := range jobs {
		logDir := filepath.Join(out, "slurm_logs", j.id, run)
		files := []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\n"), Mode: 0o755}}
		if j.log != "" {
			files = append(files, events.File{Name: "6_bench.log", Data: []byte(j.log)})
		}
		p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: j.id, TestType: "disagg", Category: "perf", Model: "m", Precision: "fp4",
			GPUType: "GB200", CtxGPUs: 4, GenGPUs: 4, NumGenServers: 1, Concurrencies: []int{1, 2}, Metrics: j.custom,
			LogDir: logDir, Request: fake.Request(run, j.id, logDir, "job.sh"), Files: files})
	}
	logs := &lockedBuf{}
	sched := fake.New(time.Second)
	st, err := pipeline.Start(ctx, b, pipeline.Options{OutputPath: out, Scheduler: sched,
		Log: slog.New(slog.NewTextHandler(logs, nil)), Notify: func(n submit.Notice) { fmt.Fprintf(logs, "%+v\n", n) }, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	// The jobs "run" for a second: each attacks its folder once the submitter wrote it.
	for _, j := range jobs {
		if j.attack == nil {
			continue
		}
		logDir := filepath.Join(out, "slurm_logs", j.id, run)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := os.Stat(filepath.Join(logDir, events.JobFile)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no job folder", j.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		j.attack(t, logDir)
	}
	start := time.Now()
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	prog, err := progress.Follow(fctx, b, run, false, nil)
	if err != nil {
		t.Fatalf("the run did not finish: %v", err)
	}
	t.Logf("run finished %s after the attacks", time.Since(start).Round(time.Millisecond))
	for _, j := range jobs {
		res := prog.Tests[j.id].Result
		if res == nil {
			t.Fatalf("%s: no result", j.id)
		}
		reasons := strings.Join(res.Reasons, "; ")
		if j.reason == "" {
			if !res.Passed {
				t.Errorf("%s failed: %s", j.id, reasons)
			}
			continue
		}
		if res.Passed || !strings.Contains(reasons, j.reason) {
			t.Errorf("%s: passed=%v, reasons %q, want a failure for %q", j.id, res.Passed, reasons, j.reason)
		}
		for _, r := range res.Rows {
			if r.Metric == "leak" {
				t.Errorf("%s: a row from the forged metrics: %+v", j.id, r)
			}
		}
	}
	// No output holds the secret or the forged provenance.
	var outputs []string
	_ = filepath.Walk(out, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && !strings.Contains(path, string(filepath.Separator)+".nats") && info.Size() < 1<<20 {
			outputs = append(outputs, path)
		}
		return nil
	})
	for _, path := range outputs {
		if filepath.Base(path) == events.JobFile {
			continue // the forged spec the job itself wrote
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(marker)) || bytes.Contains(data, []byte("4242")) || bytes.Contains(data, []byte("forged")) {
			t.Errorf("%s holds the secret or the forged spec", path)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(out, collect.CSVName))
	if !bytes.Contains(csv, []byte("disagg_perf_good")) {
		t.Errorf("the good test's rows are missing from the CSV")
	}
	if strings.Contains(logs.String(), marker) {
		t.Errorf("the stages' log holds the secret")
	}
	for id, tp := range prog.Tests {
		data, _ := json.Marshal(tp.Result)
		if bytes.Contains(data, []byte(marker)) || bytes.Contains(data, []byte("forged")) {
			t.Errorf("%s: the result event holds the secret or the forged spec", id)
		}
	}
}
