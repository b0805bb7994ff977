package collect_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// takeoverAckWait is the ack-wait the takeover test gives the stages (0 with
// DISAGGBENCH_TAKEOVER_DEFAULTS=1: each stage's default, to measure those).
func takeoverAckWait() time.Duration {
	if os.Getenv("DISAGGBENCH_TAKEOVER_DEFAULTS") == "1" {
		return 0
	}
	return 2 * time.Second
}

// instance is one stage instance on its own connection to the shared server.
type instance struct {
	b    *bus.Bus
	stop context.CancelFunc
	done chan struct{}
}

func startInstance(t *testing.T, ctx context.Context, store string, run func(context.Context, *bus.Bus) error) *instance {
	t.Helper()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: store, Listen: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ictx, cancel := context.WithCancel(ctx)
	in := &instance{b: b, stop: cancel, done: make(chan struct{})}
	go func() { defer close(in.done); _ = run(ictx, b) }()
	return in
}

// crash ends the instance as a killed process does: its connection goes at once,
// nothing is handed back.
func (in *instance) crash() {
	in.b.NC.Close()
	in.stop()
}

// TestTakeoverAfterAStageDies (here for the three stages): two instances of a stage; the one holding a message
// keeps it, however long, while it lives (its heartbeats), and once it dies without a
// word the other takes the message within the ack-wait. The time from the death to the
// new delivery is logged per stage.
func TestTakeoverAfterAStageDies(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out ack-waits")
	}
	ackWait := takeoverAckWait()
	sched := fake.New(time.Hour) // jobs that run for the whole test

	t.Run("submitter", func(t *testing.T) {
		t.Parallel()
		takeover(t, submit.Durable, ackWait, func(ctx context.Context, b *bus.Bus, out string) error {
			s, err := submit.New(submit.Config{Bus: b, Scheduler: sched, OutputPath: out, Log: quiet, AckWait: ackWait})
			if err != nil {
				return err
			}
			return s.Run(ctx)
		}, func(ctx context.Context, b *bus.Bus, out string) {
			// A window of one: the second batch is held until the first job ends, which
			// it does not while the test runs.
			var jobs []events.JobSpec
			for i, id := range []string{"disagg_perf_t00", "disagg_perf_t01"} {
				dir := filepath.Join(out, "slurm_logs", id, "r1")
				jobs = append(jobs, events.JobSpec{Index: i, TestID: id, LogDir: dir, Request: fake.Request("r1", id, dir, "job.sh"),
					Files: []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\necho hi\n"), Mode: 0o755}}})
			}
			for k := range 2 {
				ev := events.Batch{Header: events.NewHeader("r1"), Index: k, Total: 2, BatchSize: 1, Policy: events.PolicySliding, Tests: 2, Jobs: jobs[k : k+1]}
				if err := b.Publish(ctx, events.BatchSubject("r1", k), events.BatchID("r1", k), ev); err != nil {
					t.Fatal(err)
				}
			}
		})
	})

	t.Run("watcher", func(t *testing.T) {
		t.Parallel()
		takeover(t, watch.Durable, ackWait, func(ctx context.Context, b *bus.Bus, _ string) error {
			w, err := watch.New(watch.Config{Bus: b, Scheduler: sched, Log: quiet, AckWait: ackWait, PollMin: 100 * time.Millisecond, PollMax: 5 * time.Second})
			if err != nil {
				return err
			}
			return w.Run(ctx)
		}, func(ctx context.Context, b *bus.Bus, _ string) {
			req := fake.Request("r1", "t00", "/logs", "job.sh")
			id, err := sched.Submit(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			rec, _ := json.Marshal(events.JobRecord{RunID: "r1", TestID: "t00", Phase: events.PhaseSubmitted, JobID: id, JobName: req.Name})
			rev, err := b.Jobs.Create(ctx, events.Key("r1", "t00"), rec)
			if err != nil {
				t.Fatal(err)
			}
			ev := events.JobSubmitted{Header: events.NewHeader("r1"), TestID: "t00", JobID: id, Submitted: time.Now(), JobName: req.Name, LedgerRev: rev}
			if err := b.Publish(ctx, events.JobSubject("r1", "t00", events.KindSubmitted), events.SubmittedID("r1", "t00", id), ev); err != nil {
				t.Fatal(err)
			}
		})
	})

	t.Run("collector", func(t *testing.T) {
		t.Parallel()
		takeover(t, collect.Durable, ackWait, func(ctx context.Context, b *bus.Bus, out string) error {
			c, err := collect.New(collect.Config{Bus: b, OutputPath: out, Log: quiet, AckWait: ackWait})
			if err != nil {
				return err
			}
			return c.Run(ctx)
		}, func(ctx context.Context, b *bus.Bus, out string) {
			// Judging the test hangs, as reading a log folder on a file system that
			// stopped answering does, and the collector holds the message.
			release := make(chan struct{})
			collect.HoldPrepare(func() { <-release })
			t.Cleanup(func() { close(release); collect.HoldPrepare(nil) })
			ev := events.JobCompleted{Header: events.NewHeader("r1"), TestID: "disagg_perf_t00", JobID: "1", State: events.StateInvalid,
				Reasons: []string{"invalid config"}, Spec: &events.JobSpec{TestID: "disagg_perf_t00"}}
			if err := b.Publish(ctx, events.JobSubject("r1", "disagg_perf_t00", events.KindCompleted), events.CompletedID("r1", "disagg_perf_t00"), ev); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func takeover(t *testing.T, durable string, ackWait time.Duration, run func(context.Context, *bus.Bus, string) error, work func(context.Context, *bus.Bus, string)) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	store, out := t.TempDir(), t.TempDir()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: store, Listen: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wrap := func(ctx context.Context, b *bus.Bus) error { return run(ctx, b, out) }
	a := startInstance(t, ctx, store, wrap)
	defer func() {
		a.crash()
		a.b.Close()
	}()
	work(ctx, b, out)

	info := func() (delivered uint64, ackPending int, redelivered int) {
		cons, err := b.JS.Consumer(ctx, events.Stream, durable)
		if err != nil {
			return 0, 0, 0
		}
		in, err := cons.Info(ctx)
		if err != nil {
			return 0, 0, 0
		}
		return in.Delivered.Consumer, in.NumAckPending, in.NumRedelivered
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p, _ := info(); p == 0; _, p, _ = info() {
		if time.Now().After(deadline) {
			t.Fatal("the first instance took nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	bi := startInstance(t, ctx, store, wrap)
	defer func() {
		bi.stop()
		bi.b.Close()
	}()
	wait := ackWait
	if wait == 0 {
		wait = map[string]time.Duration{submit.Durable: submit.DefaultAckWait, watch.Durable: watch.DefaultAckWait, collect.Durable: collect.DefaultAckWait}[durable]
	}
	// Alive, the holder keeps its message past several ack-waits.
	held, _, _ := info()
	time.Sleep(2*wait + wait/2)
	if d, p, r := info(); d != held || r != 0 || p == 0 {
		t.Fatalf("the live holder lost its message: delivered %d -> %d, redelivered %d, ack pending %d", held, d, r, p)
	}
	a.crash()
	died := time.Now()
	deadline = died.Add(3 * wait)
	for d, _, _ := info(); d == held; d, _, _ = info() {
		if time.Now().After(deadline) {
			t.Fatalf("no other instance took the message within %v of the holder's death", 3*wait)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s: taken over %v after the holder died (ack-wait %v)", durable, time.Since(died).Round(10*time.Millisecond), wait)
}
