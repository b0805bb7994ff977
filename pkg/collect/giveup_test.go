package collect_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/progress"
)

// TestUnwritableResultsFailTheTestInBoundedTime: with the results folder impossible to
// create, the collector reports a problem event, then fails the test with the reason
// once GiveUpAfter has passed, and the run ends instead of retrying forever.
func TestUnwritableResultsFailTheTestInBoundedTime(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// A file where the Parquet folder should be: no write can succeed, even as root.
	if err := os.WriteFile(filepath.Join(out, "results"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run, test := "r-giveup", "disagg_perf_x"
	if _, err := ledger.New(b).MutateRun(ctx, run, func(r *events.RunRecord) error {
		*r = events.RunRecord{RunID: run, Tests: 1, Started: time.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, events.RunStartedSubject(run), events.StartedID(run),
		events.RunStarted{Header: events.NewHeader(run), Tests: 1, TestIDs: []string{test}}); err != nil {
		t.Fatal(err)
	}
	col, err := collect.New(collect.Config{Bus: b, OutputPath: out, GiveUpAfter: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = col.Run(cctx); close(done) }()
	defer func() { stop(); <-done }()
	ev := events.JobCompleted{Header: events.NewHeader(run), TestID: test, Index: -1, State: events.StateInvalid,
		Reasons: []string{"x.yaml:1:1: bad"}, Spec: &events.JobSpec{TestID: test}}
	if err := b.Publish(ctx, events.JobSubject(run, test, events.KindCompleted), events.CompletedID(run, test), ev); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sawProblem := false
	prog, err := progress.Follow(ctx, b, run, false, func(line string, p *progress.Progress) {
		if strings.HasPrefix(line, "PROBLEM "+test) && strings.Contains(line, "results not written") {
			sawProblem = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawProblem {
		t.Error("no problem event while the collector retried")
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v to give up after 3s", d)
	}
	r := prog.Tests[test].Result
	if r == nil || r.Passed || !strings.Contains(strings.Join(r.Reasons, "; "), "results not written") ||
		!strings.Contains(strings.Join(r.Reasons, "; "), "gave up after 3s") {
		t.Fatalf("result %+v", r)
	}
	if prog.Finished == nil || prog.Finished.Failed != 1 {
		t.Fatalf("run finished as %+v", prog.Finished)
	}
}
