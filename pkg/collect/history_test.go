package collect_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// A job that ran to its end adds its duration to its test's history on its GPU type,
// which the planner orders later runs by; a cancelled one adds nothing.
func TestCollectorRecordsDurations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := collect.New(collect.Config{Bus: b, OutputPath: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	defer func() { stop(); <-done }()

	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		test, state string
		secs        int
	}{{"t1", scheduler.Completed, 42}, {"t2", scheduler.Cancelled, 7}} {
		spec := &events.JobSpec{TestID: tc.test, TestType: "disagg", Category: "perf", GPUType: "GB200"}
		ev := events.JobCompleted{Header: events.NewHeader("r"), TestID: tc.test, JobID: "1", State: tc.state,
			Start: start, End: start.Add(time.Duration(tc.secs) * time.Second), Spec: spec}
		if err := b.Publish(ctx, events.JobSubject("r", tc.test, events.KindCompleted), events.CompletedID("r", tc.test), ev); err != nil {
			t.Fatal(err)
		}
	}
	var h events.DurationHistory
	for {
		if _, err := ledger.GetJSON(ctx, b.History, events.HistoryKey("t1", "GB200"), &h); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("no history recorded for t1")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(h.Seconds) != 1 || h.Seconds[0] != 42 {
		t.Errorf("t1 history %v, want [42]", h.Seconds)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := b.History.Get(ctx, events.HistoryKey("t2", "GB200")); err == nil {
		t.Error("a cancelled job's duration was recorded")
	}
}
