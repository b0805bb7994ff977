package plan_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// slowQuickstart is copyQuickstart with jobs that sleep pause at each step.
func slowQuickstart(t *testing.T, dir string, n int, pause string) string {
	t.Helper()
	cfg := copyQuickstart(t, dir, n)
	tmpl := filepath.Join(dir, "fast_job.sh.tmpl")
	data, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	slow := regexp.MustCompile(`(?m)^pause=.*$`).ReplaceAll(data, []byte("pause="+pause))
	if err := os.WriteFile(tmpl, slow, 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (h *slurmHarness) submitted(run string) int {
	n := 0
	for _, ev := range h.events(run) {
		if ev.kind == events.KindSubmitted {
			n++
		}
	}
	return n
}

// TestSLURMResumeAfterInterrupt stops every stage once the first job is in SLURM (what
// Ctrl-C on planner run does), then starts them again (planner resume): the run ends
// with each test submitted once and passed.
func TestSLURMResumeAfterInterrupt(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := h.prepare(config.Selection{ConfigDir: slowQuickstart(t, dir, 3, "1")}, 2, out)
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a first job in SLURM", func() bool { return h.submitted(p.RunID) >= 1 })
	stages.Stop()
	before := h.done(p.RunID)
	if before == len(p.Specs) {
		t.Fatal("the run ended before the interruption; nothing to resume")
	}
	stages, err = pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	prog := h.follow(p)
	h.checkRun(p, prog, out) // one SLURM job per test, every test passed once
}

// TestSLURMCancel cancels a run with one job running in SLURM and two not submitted,
// with no stage running (the planner was killed): the job is cancelled in SLURM, the
// others are never submitted, and once stages run again every test has a CANCELLED
// result and the run ends.
func TestSLURMCancel(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := h.prepare(config.Selection{ConfigDir: slowQuickstart(t, dir, 3, "60")}, 1, out)
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the first job running in SLURM", func() bool {
		jobs := h.sacctRun(p.RunID)
		return len(jobs) == 1 && jobs[0].State == scheduler.Running
	})
	stages.Stop()

	done, err := progress.Cancel(h.ctx, h.b, h.sched, p.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 {
		t.Fatalf("cancelled %d tests, want 3: %+v", len(done), done)
	}
	h.waitFor("SLURM to report the job cancelled", func() bool {
		jobs := h.sacctRun(p.RunID)
		return len(jobs) == 1 && scheduler.BaseState(jobs[0].State) == scheduler.Cancelled
	})
	var rec events.RunRecord
	if _, err := ledger.GetJSON(h.ctx, h.b.Runs, events.Token(p.RunID), &rec); err != nil || !rec.Cancelled {
		t.Fatalf("run record %+v (%v): not marked cancelled", rec, err)
	}

	stages, err = pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	prog := h.follow(p)
	if prog.Finished == nil || prog.Finished.Failed != 3 {
		t.Fatalf("run finished as %+v\n%s", prog.Finished, prog.Summary())
	}
	for id, tp := range prog.Tests {
		if tp.Result == nil || tp.Result.Passed || scheduler.BaseState(tp.Result.State) != scheduler.Cancelled {
			t.Errorf("%s: result %+v, want CANCELLED", id, tp.Result)
		}
	}
	if jobs := h.sacctRun(p.RunID); len(jobs) != 1 {
		t.Fatalf("SLURM has %d jobs of the run, want only the one cancelled while running: %+v", len(jobs), jobs)
	}
	if got := prog.FailedTests(); len(got) != 3 {
		t.Fatalf("rerun --failed would take %v, want the 3 cancelled tests", got)
	}
}
