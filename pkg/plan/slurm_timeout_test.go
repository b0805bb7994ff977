package plan_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// timeoutJob prints concurrency 1's result block, starts concurrency 2 and never
// finishes it: SLURM ends it at its one-minute limit.
const timeoutJob = `#!/bin/bash
set -euo pipefail
cd {{shq .LogDir}}
{
echo "Benchmarking with concurrency 1 ... 2 prompts"
cat <<'BLOCK'
============ Serving Benchmark Result ============
Total requests:                          2
Successful requests:                     2
Failed requests:                         0
Benchmark duration (s):                  10.00
Total input tokens:                      2048
Total generated tokens:                  2048
Request throughput (req/s):              1.00
Output token throughput (tok/s):         1024.00
Total Token throughput (tok/s):          2048.00
User throughput (tok/s):                 100.00
---------------Time to First Token----------------
Mean TTFT (ms):                          50.00
Median TTFT (ms):                        49.00
P99 TTFT (ms):                           70.00
-----Time per Output Token (excl. 1st token)------
Mean TPOT (ms):                          10.00
Median TPOT (ms):                        9.90
P99 TPOT (ms):                           12.00
---------------Inter-token Latency----------------
Mean ITL (ms):                           10.00
Median ITL (ms):                         9.90
P99 ITL (ms):                            12.00
----------------End-to-end Latency----------------
Mean E2EL (ms):                          10000.00
Median E2EL (ms):                        9990.00
P99 E2EL (ms):                           10200.00
==================================================
BLOCK
echo "Benchmark with concurrency 1 done"
echo "Benchmarking with concurrency 2 ... 4 prompts"
} > 6_bench.log
exec sleep 600
`

// TestSLURMTimeoutKeepsPartialResults runs a job that measures its first concurrency and
// then hangs past its one-minute limit: it ends TIMEOUT, is not submitted again, and
// its result keeps the finished concurrency's rows, marked partial, with the verdict
// fail. It takes 60 to 90 s (SLURM checks time limits every 30 s).
func TestSLURMTimeoutKeepsPartialResults(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgDir := makespanConfigs(t, dir, []int{1})
	if err := os.WriteFile(filepath.Join(cfgDir, "sleep.sh.tmpl"), []byte(timeoutJob), 0o644); err != nil {
		t.Fatal(err)
	}
	perf := filepath.Join(cfgDir, "disagg", "perf")
	ents, err := os.ReadDir(perf)
	if err != nil || len(ents) != 1 {
		t.Fatalf("%d configs: %v", len(ents), err)
	}
	cfgFile := filepath.Join(perf, ents[0].Name())
	data, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	short := strings.Replace(string(data), `  job_time: "00:10:00"`, `  job_time: "00:01:00"`, 1)
	if short == string(data) {
		t.Fatal("no job_time to shorten")
	}
	if err := os.WriteFile(cfgFile, []byte(short), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.prepare(config.Selection{ConfigDir: cfgDir}, 1, out)
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	prog := h.follow(p)
	if prog.Finished == nil || prog.Finished.Failed != 1 {
		t.Fatalf("run finished as %+v, want 1 failed\n%s", prog.Finished, prog.Summary())
	}
	jobs := h.sacctName(p.Specs[0].Request.Name)
	if len(jobs) != 1 || jobs[0].State != scheduler.Timeout {
		t.Errorf("sacct: %+v, want one job, TIMEOUT (no retry)", jobs)
	}
	var completed events.JobCompleted
	for _, ev := range h.events(p.RunID) {
		if ev.kind == events.KindCompleted {
			_ = json.Unmarshal(ev.data, &completed)
		}
	}
	if completed.State != scheduler.Timeout || completed.Attempt != 1 {
		t.Errorf("completed %s (%s) attempt %d, want TIMEOUT attempt 1", completed.State, completed.Detail, completed.Attempt)
	}
	rows, err := results.ReadDataset(filepath.Join(out, "results"))
	if err != nil {
		t.Fatal(err)
	}
	var measured int
	for _, r := range rows {
		if r.RunID != p.RunID || r.Metric == "" {
			continue
		}
		measured++
		if r.Concurrency != 1 || !r.Partial || r.Verdict != "fail" || r.SlurmState != scheduler.Timeout {
			t.Errorf("row c%d %s: partial %v verdict %s state %s, want c1, partial, fail, TIMEOUT", r.Concurrency, r.Metric, r.Partial, r.Verdict, r.SlurmState)
		}
	}
	if measured == 0 {
		t.Error("no rows kept from the finished concurrency")
	}
	t.Logf("job %s ended %s after %v; %d rows of concurrency 1 kept", jobs[0].ID, completed.Detail, jobs[0].End.Sub(jobs[0].Start), measured)
}
