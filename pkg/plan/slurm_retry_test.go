package plan_test

import (
	"context"
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

// slurmOut runs a SLURM client and returns its output, failing the test on an error.
func (h *slurmHarness) slurmOut(name string, args ...string) string {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := slurmCommand(ctx, name, args...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestSLURMNodeFailRetry sets a node DOWN under a running job of the run (a job that
// asked not to be requeued, so SLURM ends it NODE_FAIL): the watcher submits the test
// again with sbatch --exclude naming the failed job's nodes, the second attempt passes,
// and the test has one completion, one result and one set of rows, all of attempt 2.
// The node is resumed in cleanup, as soon as the job has failed.
func TestSLURMNodeFailRetry(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgDir := makespanConfigs(t, dir, []int{30})
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
	withArgs := strings.Replace(string(data), "\nslurm:\n", "\nslurm:\n  extra_args: --no-requeue\n", 1)
	if withArgs == string(data) {
		t.Fatal("no slurm section")
	}
	if err := os.WriteFile(cfgFile, []byte(withArgs), 0o644); err != nil {
		t.Fatal(err)
	}
	p := h.prepare(config.Selection{ConfigDir: cfgDir}, 1, out)
	opts := h.stageOptions(out)
	stages, err := pipeline.Start(h.ctx, h.b, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	test := p.Specs[0].TestID

	// The first job, running, and its nodes by the controller.
	var first, nodes string
	h.waitFor("the first job running", func() bool {
		for _, ev := range h.events(p.RunID) {
			if ev.kind == events.KindSubmitted && first == "" {
				var s events.JobSubmitted
				_ = json.Unmarshal(ev.data, &s)
				first = s.JobID
			}
		}
		if first == "" {
			return false
		}
		f := strings.Split(h.slurmOut("squeue", "-h", "-j", first, "-o", "%T|%N"), "|")
		if len(f) == 2 && f[0] == scheduler.Running && f[1] != "" {
			nodes = f[1]
			return true
		}
		return false
	})
	hosts := strings.Fields(h.slurmOut("scontrol", "show", "hostnames", nodes))
	if len(hosts) == 0 {
		t.Fatalf("job %s: no hosts in %q", first, nodes)
	}
	// The job's node with the fewest other jobs on it goes down.
	down, fewest := "", -1
	for _, n := range hosts {
		others := len(strings.Fields(h.slurmOut("squeue", "-h", "-w", n, "-o", "%i")))
		if fewest < 0 || others < fewest {
			down, fewest = n, others
		}
	}
	resumed := false
	resume := func() {
		if resumed {
			return
		}
		resumed = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := slurmCommand(ctx, "scontrol", "update", "nodename="+down, "state=resume").CombinedOutput()
		if err == nil {
			return
		}
		// ReturnToService=2 may have returned it already: then SLURM refuses a resume.
		st, serr := slurmCommand(ctx, "sinfo", "-h", "-N", "-n", down, "-o", "%T").Output()
		if serr != nil || strings.Contains(string(st), "down") || strings.Contains(string(st), "drain") {
			t.Errorf("resume %s: %v: %s (state %s)", down, err, out, st)
		}
	}
	t.Cleanup(resume)
	h.slurmOut("scontrol", "update", "nodename="+down, "state=down", "reason=disaggbench NODE_FAIL test")
	h.waitFor("the first job to leave the queue", func() bool {
		return h.slurmOut("squeue", "-h", "-j", first, "-o", "%T") == ""
	})
	resume()

	prog := h.follow(p)
	if prog.Finished == nil || prog.Finished.Passed != 1 {
		t.Fatalf("run finished as %+v, want 1 passed\n%s", prog.Finished, prog.Summary())
	}
	jobs := h.sacctName(p.Specs[0].Request.Name)
	if len(jobs) != 2 {
		t.Fatalf("sacct shows %d jobs for the test, want 2: %+v", len(jobs), jobs)
	}
	if jobs[0].ID != first || jobs[0].State != scheduler.NodeFail || jobs[1].State != scheduler.Completed {
		t.Errorf("jobs %+v, want %s NODE_FAIL then one COMPLETED", jobs, first)
	}
	second := jobs[1].ID
	secondHosts := strings.Fields(h.slurmOut("scontrol", "show", "hostnames", jobs[1].NodeList))
	for _, n := range secondHosts {
		if n == down {
			t.Errorf("attempt 2 (job %s) ran on %s, the node that failed", second, n)
		}
	}
	// The controller still holds the finished job (MinJobAge): its excluded nodes.
	show := h.slurmOut("scontrol", "show", "job", second)
	if !strings.Contains(show, "ExcNodeList="+jobs[0].NodeList) {
		t.Errorf("job %s: want ExcNodeList=%s in:\n%s", second, jobs[0].NodeList, show)
	}

	counts := map[string]int{}
	var completed events.JobCompleted
	for _, ev := range h.events(p.RunID) {
		counts[ev.kind]++
		switch ev.kind {
		case events.KindCompleted:
			_ = json.Unmarshal(ev.data, &completed)
		case events.KindState:
			var st events.JobState
			_ = json.Unmarshal(ev.data, &st)
			if st.State == events.StateRetry {
				counts["retry"]++
				if st.JobID != first || !strings.Contains(st.Detail, "job "+second) {
					t.Errorf("retry event %+v, want job %s resubmitted as %s", st, first, second)
				}
			}
		}
	}
	if counts[events.KindSubmitted] != 2 || counts[events.KindCompleted] != 1 || counts["result"] != 1 || counts["retry"] != 1 {
		t.Errorf("events %v: want 2 submitted, 1 retry, 1 completed, 1 result", counts)
	}
	if completed.JobID != second || completed.Attempt != 2 || completed.State != scheduler.Completed {
		t.Errorf("completed %+v, want job %s attempt 2 COMPLETED", completed, second)
	}
	rows, err := results.ReadDataset(filepath.Join(out, "results"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.RunID != p.RunID {
			continue
		}
		n++
		if r.TestID != test || r.JobID != second || r.Attempt != 2 || r.Verdict != "pass" {
			t.Errorf("row %s job %s attempt %d verdict %s, want job %s attempt 2 pass", r.TestID, r.JobID, r.Attempt, r.Verdict, second)
		}
	}
	if n == 0 {
		t.Error("no Parquet rows")
	}
	t.Logf("job %s on %s: %s set DOWN; attempt 2 is job %s on %s, excluding %s; %d rows", first, nodes, down, second, jobs[1].NodeList, jobs[0].NodeList, n)
}
