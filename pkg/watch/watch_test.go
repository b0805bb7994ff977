package watch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func setup(t *testing.T) (context.Context, *bus.Bus) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return ctx, b
}

// submitAll submits n jobs to the fake and publishes their submitted events.
func submitAll(t *testing.T, ctx context.Context, b *bus.Bus, f *fake.Fake, run string, n int, limit time.Duration) {
	for i := range n {
		test := fmt.Sprintf("t%03d", i)
		req := fake.Request(run, test, "/logs", "job.sh")
		id, err := f.Submit(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		// The ledger entry the submitter records before it publishes.
		rec := events.JobRecord{RunID: run, TestID: test, Index: i, Phase: events.PhaseSubmitted, JobID: id, JobName: req.Name}
		data, _ := json.Marshal(rec)
		rev, err := b.Jobs.Create(ctx, events.Key(run, test), data)
		if err != nil {
			t.Fatal(err)
		}
		ev := events.JobSubmitted{Header: events.NewHeader(run), TestID: test, Index: i, JobID: id, Submitted: time.Now(), TimeLimit: limit,
			JobName: req.Name, LedgerRev: rev}
		if err := b.Publish(ctx, events.JobSubject(run, test, events.KindSubmitted), events.SubmittedID(run, test, id), ev); err != nil {
			t.Fatal(err)
		}
	}
}

func completions(t *testing.T, b *bus.Bus, run string) (func(n int, within time.Duration) []events.JobCompleted, func()) {
	sub, err := b.NC.SubscribeSync("bench.jobs." + events.Token(run) + ".*.completed")
	if err != nil {
		t.Fatal(err)
	}
	return func(n int, within time.Duration) []events.JobCompleted {
		var out []events.JobCompleted
		deadline := time.Now().Add(within)
		for len(out) < n {
			m, err := sub.NextMsg(time.Until(deadline))
			if err != nil {
				t.Fatalf("got %d of %d completions: %v", len(out), n, err)
			}
			var ev events.JobCompleted
			_ = json.Unmarshal(m.Data, &ev)
			out = append(out, ev)
		}
		return out
	}, func() { _ = sub.Unsubscribe() }
}

func run(t *testing.T, ctx context.Context, w *watch.Watcher) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func TestOneStatusQueryPerCycleForAllJobs(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(600 * time.Millisecond)
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 50 * time.Millisecond, PollMax: 100 * time.Millisecond})
	run(t, ctx, w)
	submitAll(t, ctx, b, f, "r", 200, 0)
	got := next(200, 20*time.Second)
	cycles, queries := w.Stats()
	if queries > cycles || f.StatusCalls() != int(queries) {
		t.Fatalf("%d status queries in %d cycles (fake saw %d): want at most one per cycle", queries, cycles, f.StatusCalls())
	}
	if queries > 60 {
		t.Fatalf("%d queries for 200 jobs: not batched", queries)
	}
	for _, ev := range got {
		if ev.State != scheduler.Completed || ev.NodeList != "fake-node" || ev.End.IsZero() {
			t.Fatalf("completion lacks the final state: %+v", ev)
		}
	}
}

func TestFailingOrSilentSchedulerNeverFinishesAJob(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(0)
	var failing atomic.Bool
	failing.Store(true)
	f.StatusErr = func() error {
		if failing.Load() {
			return errors.New("sacct: error: slurmdbd: Connection refused")
		}
		return nil
	}
	next, _ := completions(t, b, "r")
	probs, err := b.NC.SubscribeSync("bench.jobs.r.*.problem")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w)
	submitAll(t, ctx, b, f, "r", 3, 0)
	time.Sleep(500 * time.Millisecond)
	// Each test is told why nothing moves, once for these half a second.
	problems := func(n int) []events.Problem {
		var out []events.Problem
		for range n {
			m, err := probs.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("got %d of %d problem events: %v", len(out), n, err)
			}
			var p events.Problem
			_ = json.Unmarshal(m.Data, &p)
			out = append(out, p)
		}
		return out
	}
	for _, p := range problems(3) {
		if p.Stage != "watcher" || p.Resolved || !strings.Contains(p.Reason, "Connection refused") || !p.GiveUp.IsZero() {
			t.Fatalf("problem while queries fail: %+v", p)
		}
	}
	// Half a second of failing queries: no job may have completed.
	for i := range 3 {
		var rec events.JobRecord
		if _, err := ledger.GetJSON(ctx, b.Jobs, events.Key("r", fmt.Sprintf("t%03d", i)), &rec); err != nil || rec.Phase == events.PhaseCompleted {
			t.Fatalf("t%03d completed while every status query failed", i)
		}
	}
	failing.Store(false)
	got := next(3, 10*time.Second)
	if len(got) != 3 {
		t.Fatalf("%d completions", len(got))
	}
	for _, p := range problems(3) {
		if p.Stage != "watcher" || !p.Resolved {
			t.Fatalf("after the queries work again: %+v, want the problem resolved", p)
		}
	}
	if m, err := probs.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("more problem events than one and its resolution per test: %s", m.Data)
	}
	if f.StatusCalls() < 5 {
		t.Fatalf("only %d status calls while failing", f.StatusCalls())
	}
}

func TestJobsHiddenFromTheSchedulerAreNotFinished(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(0)
	f.Hidden = 700 * time.Millisecond
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w)
	start := time.Now()
	submitAll(t, ctx, b, f, "r", 1, 0)
	next(1, 10*time.Second)
	if since := time.Since(start); since < 650*time.Millisecond {
		t.Fatalf("a job missing from the answer completed after %v", since)
	}
}

func TestTimeLimitCancelsAndCompletesAsTimeout(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(time.Hour)
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w)
	submitAll(t, ctx, b, f, "r", 1, 300*time.Millisecond)
	ev := next(1, 10*time.Second)[0]
	if ev.State != scheduler.Timeout || len(ev.Reasons) == 0 {
		t.Fatalf("completion %+v, want TIMEOUT with a reason", ev)
	}
	if st := f.Jobs()[0].State; st != "CANCELLED by 0" {
		t.Fatalf("job not cancelled at the scheduler: %s", st)
	}
}

func TestRestartedWatcherTakesOverHeldJobs(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(800 * time.Millisecond)
	next, _ := completions(t, b, "r")
	w1, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	stop1 := run(t, ctx, w1)
	submitAll(t, ctx, b, f, "r", 10, 0)
	time.Sleep(300 * time.Millisecond)
	stop1() // hands its jobs back
	w2, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	w3, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w2)
	run(t, ctx, w3)
	got := next(10, 15*time.Second)
	seen := map[string]int{}
	for _, ev := range got {
		seen[ev.TestID]++
	}
	if len(seen) != 10 {
		t.Fatalf("completions for %d distinct tests, want 10", len(seen))
	}
	time.Sleep(300 * time.Millisecond)
	for test, n := range seen {
		if n != 1 {
			t.Errorf("%s completed %d times", test, n)
		}
	}
}

// A job's end is written over the ledger revision its submitted event carries, and over
// a read of the entry when that revision is stale (the entry changed since): either way
// the ledger ends COMPLETED, and a stale write never replaces a newer entry blindly.
func TestLedgerMarkedCompletedOverTheSubmittedRevision(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(0)
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 50 * time.Millisecond})
	run(t, ctx, w)
	for i, stale := range []bool{false, true} {
		test := fmt.Sprintf("t%d", i)
		id, _ := f.Submit(ctx, scheduler.JobRequest{Name: "r." + test})
		key := events.Key("r", test)
		rec := events.JobRecord{RunID: "r", TestID: test, Index: i, Phase: events.PhaseSubmitted, JobID: id, JobName: "r." + test, Owner: "submitter-1"}
		data, _ := json.Marshal(rec)
		rev, err := b.Jobs.Put(ctx, key, data)
		if err != nil {
			t.Fatal(err)
		}
		if stale {
			// Changed after the event was made: the event's revision no longer holds.
			rec.LogDir = "/changed"
			data, _ = json.Marshal(rec)
			if _, err := b.Jobs.Put(ctx, key, data); err != nil {
				t.Fatal(err)
			}
		}
		ev := events.JobSubmitted{Header: events.NewHeader("r"), TestID: test, Index: i, JobID: id, JobName: "r." + test, Submitted: time.Now(), LedgerRev: rev}
		if err := b.Publish(ctx, events.JobSubject("r", test, events.KindSubmitted), events.SubmittedID("r", test, id), ev); err != nil {
			t.Fatal(err)
		}
		next(1, 10*time.Second)
		var got events.JobRecord
		deadline := time.Now().Add(10 * time.Second)
		for got.Phase != events.PhaseCompleted && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			_, _ = ledger.GetJSON(ctx, b.Jobs, key, &got)
		}
		if got.Phase != events.PhaseCompleted || got.State != scheduler.Completed || got.JobID != id || got.JobName != "r."+test {
			t.Fatalf("stale=%v: ledger %+v", stale, got)
		}
		if stale && got.LogDir != "/changed" {
			t.Fatalf("the stale revision's write replaced the newer entry: %+v", got)
		}
	}
}

// TestQueueModeAsksStatusOnlyForEndedJobs: with a queue view (squeue), Status (sacct) is
// asked only about jobs that left the queue, never while every job still runs, and the
// jobs' ends are known within a queue interval or two.
func TestQueueModeAsksStatusOnlyForEndedJobs(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(1500 * time.Millisecond)
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: fake.Queued{Fake: f}, Log: quiet,
		PollMin: 20 * time.Millisecond, PollMax: time.Hour, QueuePoll: 50 * time.Millisecond})
	run(t, ctx, w)
	submitAll(t, ctx, b, f, "r", 20, 0)
	time.Sleep(time.Second) // every job still running
	queueCalls, statusBefore := f.QueueCalls(), f.StatusCalls()
	if queueCalls < 5 {
		t.Fatalf("%d queue calls in a second at a 50 ms interval", queueCalls)
	}
	// One full status query at the start (the safety net), none while jobs only run.
	if statusBefore > 1 {
		t.Fatalf("%d status calls while every job was in the queue", statusBefore)
	}
	got := next(20, 10*time.Second)
	for _, ev := range got {
		if ev.State != scheduler.Completed || ev.End.IsZero() {
			t.Fatalf("completion lacks the final state: %+v", ev)
		}
	}
	if f.StatusCalls()-statusBefore > 5 {
		t.Errorf("%d status calls for 20 jobs ending together: want a few", f.StatusCalls()-statusBefore)
	}
}

// TestQueueModeWaitsForAccounting: a job that left the queue while accounting still
// calls it RUNNING is asked about again each cycle, and completes once accounting says
// it ended, never before.
func TestQueueModeWaitsForAccounting(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(200 * time.Millisecond)
	f.AccountingLag = 800 * time.Millisecond
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: fake.Queued{Fake: f}, Log: quiet,
		PollMin: 20 * time.Millisecond, PollMax: time.Hour, QueuePoll: 50 * time.Millisecond})
	run(t, ctx, w)
	start := time.Now()
	submitAll(t, ctx, b, f, "r", 1, 0)
	got := next(1, 10*time.Second)
	if since := time.Since(start); since < 950*time.Millisecond {
		t.Fatalf("completed %v after submission, before accounting knew the end", since)
	}
	if got[0].State != scheduler.Completed {
		t.Fatalf("state %s", got[0].State)
	}
	if f.StatusCalls() < 5 {
		t.Fatalf("%d status calls: the lagging job was not asked about each cycle", f.StatusCalls())
	}
}

// BenchmarkWatcherCallRates reports the scheduler calls a minute that one watcher makes
// with the production settings (squeue every second, full sacct every 60 s) while N
// jobs run, for N = 1, 50 and 500, and at rest. The scheduler is the in-memory fake
// with a queue view; it counts calls as SLURM's commands would be run.
//
//	go test -run '^$' -bench WatcherCallRates -benchtime=1x ./pkg/watch
func BenchmarkWatcherCallRates(b *testing.B) {
	window := 12 * time.Second
	if s := os.Getenv("BENCH_WINDOW"); s != "" {
		window, _ = time.ParseDuration(s)
	}
	for _, n := range []int{0, 1, 50, 500} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			for range b.N {
				ctx, cancel := context.WithTimeout(context.Background(), window+30*time.Second)
				bs, err := bus.Connect(ctx, bus.Options{StoreDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				f := fake.New(time.Hour)
				w, _ := watch.New(watch.Config{Bus: bs, Scheduler: fake.Queued{Fake: f}, Log: quiet,
					PollMin: 2 * time.Second, PollMax: 60 * time.Second})
				wctx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); _ = w.Run(wctx) }()
				for i := range n {
					test := fmt.Sprintf("t%03d", i)
					id, _ := f.Submit(ctx, scheduler.JobRequest{Name: "r." + test})
					ev := events.JobSubmitted{Header: events.NewHeader("r"), TestID: test, Index: i, JobID: id, Submitted: time.Now()}
					if err := bs.Publish(ctx, events.JobSubject("r", test, events.KindSubmitted), events.SubmittedID("r", test, id), ev); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(window)
				q, s := f.QueueCalls(), f.StatusCalls()
				stop()
				<-done
				bs.Close()
				cancel()
				per := time.Minute.Seconds() / window.Seconds()
				b.ReportMetric(float64(q)*per, "squeue/min")
				b.ReportMetric(float64(s)*per, "sacct/min")
			}
		})
	}
}

// A submitted event is not a licence to cancel: a job id the ledger does not record for
// the run and test, or a job the scheduler knows by another name or comment, is never
// cancelled, however long it runs.
func TestWatcherCancelsOnlyItsOwnJobs(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(time.Hour)
	next, _ := completions(t, b, "r")
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w)
	// Somebody else's job, and a forged event naming it, with no ledger entry.
	victim, _ := f.Submit(ctx, scheduler.JobRequest{Name: "somebody-elses-job"})
	forged := events.JobSubmitted{Header: events.NewHeader("r"), TestID: "forged", JobID: victim, Submitted: time.Now().Add(-time.Hour), TimeLimit: time.Millisecond}
	if err := b.Publish(ctx, events.JobSubject("r", "forged", events.KindSubmitted), "forged", forged); err != nil {
		t.Fatal(err)
	}
	// A ledger entry that names a job the scheduler knows by another comment.
	other, _ := f.Submit(ctx, scheduler.JobRequest{Name: "disaggbench.r.renamed", Comment: "not ours"})
	rec := events.JobRecord{RunID: "r", TestID: "renamed", Phase: events.PhaseSubmitted, JobID: other, JobName: "disaggbench.r.renamed"}
	data, _ := json.Marshal(rec)
	rev, err := b.Jobs.Create(ctx, events.Key("r", "renamed"), data)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.JobSubmitted{Header: events.NewHeader("r"), TestID: "renamed", JobID: other, JobName: rec.JobName, Submitted: time.Now(), TimeLimit: 100 * time.Millisecond, LedgerRev: rev}
	if err := b.Publish(ctx, events.JobSubject("r", "renamed", events.KindSubmitted), "renamed", ev); err != nil {
		t.Fatal(err)
	}
	got := next(1, 10*time.Second)[0]
	if got.TestID != "renamed" || got.State != scheduler.Timeout || !strings.Contains(strings.Join(got.Reasons, ";"), "not cancelled") {
		t.Fatalf("completion %+v, want renamed's TIMEOUT with the reason it was not cancelled", got)
	}
	time.Sleep(300 * time.Millisecond)
	for _, j := range f.Jobs() {
		if strings.HasPrefix(j.State, "CANCELLED") {
			t.Errorf("job %s (%s) was cancelled", j.ID, j.Name)
		}
	}
	if _, err := b.Jobs.Get(ctx, events.Key("r", "forged")); err == nil {
		t.Errorf("the forged event made a ledger entry")
	}
}
