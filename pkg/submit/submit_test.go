package submit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

type env struct {
	t    *testing.T
	ctx  context.Context
	bus  *bus.Bus
	fake *fake.Fake
	dir  string
	view *notices
}

// notices keeps what the submitter notifies.
type notices struct {
	mu   sync.Mutex
	list []submit.Notice
}

func (n *notices) add(x submit.Notice) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = append(n.list, x)
}

func (n *notices) all() []submit.Notice {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.list)
}

func setup(t *testing.T, jobTime time.Duration) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &env{t: t, ctx: ctx, bus: b, fake: fake.New(jobTime), dir: t.TempDir(), view: &notices{}}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a submitter and a watcher until the test ends or stop is called.
func (e *env) start(debug bool) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	s, err := submit.New(submit.Config{Bus: e.bus, Scheduler: e.fake, OutputPath: e.dir, Log: quiet, Notify: e.view.add, DebugMode: debug, DebugJobID: "4242", RetryMin: 20 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	w, err := watch.New(watch.Config{Bus: e.bus, Scheduler: e.fake, Log: quiet, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{s.Run, w.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = run(ctx) }()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	e.t.Cleanup(stop)
	return stop
}

// publish sends a run of n jobs in batches of size (one message per logical batch).
func (e *env) publish(run string, n, size int, policy string) []events.JobSpec {
	var specs []events.JobSpec
	for i := range n {
		id := fmt.Sprintf("disagg_perf_t%02d", i)
		specs = append(specs, events.JobSpec{Index: i, TestID: id, LogDir: filepath.Join(e.dir, "slurm_logs", id, run),
			Request: fake.Request(run, id, filepath.Join(e.dir, "slurm_logs", id, run), "job.sh"),
			Files:   []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\necho hi\n"), Mode: 0o755}}})
	}
	per := size
	if per <= 0 {
		per = n
	}
	total := (n + per - 1) / per
	for k := range total {
		jobs := specs[k*per : min((k+1)*per, n)]
		ev := events.Batch{Header: events.NewHeader(run), Index: k, Total: total, BatchSize: size, Policy: policy, Tests: n, Jobs: jobs}
		if err := e.bus.Publish(e.ctx, events.BatchSubject(run, k), events.BatchID(run, k), ev); err != nil {
			e.t.Fatal(err)
		}
	}
	return specs
}

func (e *env) waitCompleted(run string, n int) []events.JobCompleted {
	e.t.Helper()
	sub, err := e.bus.NC.SubscribeSync("bench.jobs." + events.Token(run) + ".*.completed")
	if err != nil {
		e.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// Completions published before the subscription are read back from the ledger.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		done := 0
		for i := range n {
			var rec events.JobRecord
			if _, err := ledger.GetJSON(e.ctx, e.bus.Jobs, events.Key(run, fmt.Sprintf("disagg_perf_t%02d", i)), &rec); err == nil && rec.Phase == events.PhaseCompleted {
				done++
			}
		}
		if done == n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("run %s: not every job completed in time", run)
	return nil
}

func TestSlidingWindowNeverExceedsBatchSize(t *testing.T) {
	e := setup(t, 150*time.Millisecond)
	e.start(false)
	e.publish("r1", 12, 3, events.PolicySliding)
	e.waitCompleted("r1", 12)
	if got := e.fake.MaxActive(); got > 3 {
		t.Fatalf("max active jobs = %d, want <= 3", got)
	}
	if got := e.fake.MaxActive(); got < 2 {
		t.Fatalf("max active jobs = %d: the window was not used", got)
	}
	if e.fake.TotalSubmits() != 12 {
		t.Fatalf("%d submissions for 12 tests", e.fake.TotalSubmits())
	}
	// The submitter tells of the run, its logical batches and each job, for the
	// troubleshooting view the commands draw (services/internal/seedview).
	got := e.view.all()
	for _, want := range []submit.Notice{
		submit.RunAccepted{RunID: "r1", BatchSize: 3, Policy: events.PolicySliding, Tests: 12, Batches: 4},
		submit.BatchStarted{RunID: "r1", Batch: 3, From: 9, To: 12},
		submit.JobSubmitted{RunID: "r1", TestID: "disagg_perf_t00", JobID: "1001", Pos: 1, Of: 3},
	} {
		if !slices.Contains(got, want) {
			t.Errorf("notices lack %+v:\n%+v", want, got)
		}
	}
}

func TestBarrierWaitsForTheWholePreviousBatch(t *testing.T) {
	e := setup(t, 100*time.Millisecond)
	e.start(false)
	e.publish("r2", 7, 3, events.PolicyBarrier)
	e.waitCompleted("r2", 7)
	jobs := e.fake.Jobs()
	if len(jobs) != 7 {
		t.Fatalf("%d jobs", len(jobs))
	}
	for k := 1; k*3 < 7; k++ {
		var prevEnd time.Time
		for _, j := range jobs[(k-1)*3 : k*3] {
			if j.End.After(prevEnd) {
				prevEnd = j.End
			}
		}
		for _, j := range jobs[k*3 : min(k*3+3, 7)] {
			if j.Submitted.Before(prevEnd) {
				t.Fatalf("batch %d job %s submitted at %v before batch %d ended at %v", k, j.Name, j.Submitted, k-1, prevEnd)
			}
		}
	}
}

func TestRepeatedBatchSubmitsEachTestOnce(t *testing.T) {
	e := setup(t, 0)
	// A slow sbatch keeps the first batch's claims fresh while the repeat arrives.
	e.fake.SubmitErr = func(scheduler.JobRequest) error { time.Sleep(300 * time.Millisecond); return nil }
	e.start(false)
	specs := e.publish("r3", 5, 0, events.PolicySliding)
	// The same work again under another message id, as a replayed or re-published batch.
	ev := events.Batch{Header: events.NewHeader("r3"), Index: 0, Total: 1, Tests: 5, Policy: events.PolicySliding, Jobs: specs}
	data, _ := json.Marshal(ev)
	if _, err := e.bus.JS.Publish(e.ctx, events.BatchSubject("r3", 0), data); err != nil {
		t.Fatal(err)
	}
	e.waitCompleted("r3", 5)
	// The repeat is done with soon too: it learns each test's fate from the ledger rather
	// than waiting for the first submitter's claims to go stale (a minute here).
	cons, err := e.bus.JS.Consumer(e.ctx, events.Stream, submit.Durable)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ci, err := cons.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.NumPending == 0 && ci.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batches still at work after 10s: %d pending, %d unacknowledged", ci.NumPending, ci.NumAckPending)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range specs {
		if n := e.fake.Submits(s.Request.Name); n != 1 {
			t.Errorf("%s submitted %d times", s.TestID, n)
		}
	}
}

func TestClaimedBeforeCrashIsFoundByName(t *testing.T) {
	e := setup(t, 0)
	// A submitter claimed t00 and submitted it, then died before recording the job id.
	name := "disaggbench.r4.disagg_perf_t00"
	if _, err := e.fake.Submit(e.ctx, scheduler.JobRequest{Name: name}); err != nil {
		t.Fatal(err)
	}
	rec, _ := json.Marshal(events.JobRecord{RunID: "r4", TestID: "disagg_perf_t00", Phase: events.PhaseClaimed, JobName: name})
	if _, err := e.bus.Jobs.Create(e.ctx, events.Key("r4", "disagg_perf_t00"), rec); err != nil {
		t.Fatal(err)
	}
	e.start(false)
	e.publish("r4", 2, 5, events.PolicySliding)
	e.waitCompleted("r4", 2)
	if n := e.fake.Submits(name); n != 1 {
		t.Fatalf("claimed test submitted %d times in all, want 1", n)
	}
	var got events.JobRecord
	if _, err := ledger.GetJSON(e.ctx, e.bus.Jobs, events.Key("r4", "disagg_perf_t00"), &got); err != nil || got.JobID != "1001" {
		t.Fatalf("ledger has job %q (%v), want the job found by name, 1001", got.JobID, err)
	}
}

func TestTransientErrorsAreRetriedAndPermanentOnesFail(t *testing.T) {
	e := setup(t, 0)
	var mu sync.Mutex
	tries := map[string]int{}
	e.fake.SubmitErr = func(req scheduler.JobRequest) error {
		mu.Lock()
		defer mu.Unlock()
		tries[req.Name]++
		switch {
		case strings.HasSuffix(req.Name, "t00") && tries[req.Name] < 3:
			return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits) QOSMaxSubmitJobPerUserLimit"}
		case strings.HasSuffix(req.Name, "t01"):
			return &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: "sbatch: error: invalid partition specified: nope"}
		}
		return nil
	}
	sub, err := e.bus.NC.SubscribeSync(events.CompletedFilter)
	if err != nil {
		t.Fatal(err)
	}
	probs, err := e.bus.NC.SubscribeSync("bench.jobs.r5.*.problem")
	if err != nil {
		t.Fatal(err)
	}
	e.start(false)
	e.publish("r5", 3, 0, events.PolicySliding)
	e.waitCompleted("r5", 3)
	if tries["disaggbench.r5.disagg_perf_t00"] != 3 {
		t.Errorf("t00 tried %d times, want 3", tries["disaggbench.r5.disagg_perf_t00"])
	}
	// The transient failures are a problem on the run's progress line: said once in
	// these few seconds, with the time the test fails unless it recovers.
	m, err := probs.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("no problem event for the failing submissions: %v", err)
	}
	var pr events.Problem
	_ = json.Unmarshal(m.Data, &pr)
	if pr.TestID != "disagg_perf_t00" || pr.Stage != "submitter" || !strings.Contains(pr.Reason, "QOSMaxSubmitJobPerUserLimit") || !pr.GiveUp.After(pr.Since) {
		t.Errorf("problem event %+v", pr)
	}
	if m, err := probs.NextMsg(300 * time.Millisecond); err == nil {
		t.Errorf("a second problem event within 15 s: %s", m.Data)
	}
	var failed events.JobCompleted
	for range 3 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var ev events.JobCompleted
		_ = json.Unmarshal(m.Data, &ev)
		if ev.TestID == "disagg_perf_t01" {
			failed = ev
		}
	}
	if failed.State != events.StateSubmitFailed || len(failed.Reasons) == 0 || !strings.Contains(failed.Reasons[0], "invalid partition") {
		t.Fatalf("permanent failure not reported with the scheduler's message: %+v", failed)
	}
}

// DEBUG_MODE submits nothing and hands on the existing log folder of DEBUG_JOB_ID (an
// earlier run's folder of the test, or any test's), not the new, empty one.
func TestDebugModeSkipsSubmission(t *testing.T) {
	e := setup(t, 0)
	earlier := filepath.Join(e.dir, "slurm_logs", "disagg_perf_t01", "r0")
	os.MkdirAll(earlier, 0o755)
	os.WriteFile(filepath.Join(earlier, "slurm-4242.out"), []byte("done\n"), 0o644)
	os.MkdirAll(filepath.Join(e.dir, "slurm_logs", "disagg_perf_t01", "r1"), 0o755) // another job's folder
	e.start(true)
	e.publish("r6", 2, 5, events.PolicySliding)
	for _, c := range e.waitCompleted("r6", 2) {
		if c.LogDir != earlier {
			t.Errorf("%s: log folder %s, want the job's %s", c.TestID, c.LogDir, earlier)
		}
	}
	if e.fake.TotalSubmits() != 0 {
		t.Fatalf("debug mode submitted %d jobs", e.fake.TotalSubmits())
	}
	var rec events.JobRecord
	if _, err := ledger.GetJSON(e.ctx, e.bus.Jobs, events.Key("r6", "disagg_perf_t01"), &rec); err != nil || rec.JobID != "4242" {
		t.Fatalf("debug job id not used: %+v %v", rec, err)
	}
}

func TestRunsDoNotWaitForEachOther(t *testing.T) {
	e := setup(t, 300*time.Millisecond)
	e.start(false)
	e.publish("ra", 4, 1, events.PolicySliding) // one job at a time: about 1.2 s
	e.publish("rb", 2, 1, events.PolicySliding)
	e.waitCompleted("ra", 4)
	e.waitCompleted("rb", 2)
	var lastA, firstB time.Time
	for _, j := range e.fake.Jobs() {
		switch {
		case strings.HasPrefix(j.Name, "disaggbench.ra."):
			lastA = j.Submitted
		case strings.HasPrefix(j.Name, "disaggbench.rb.") && firstB.IsZero():
			firstB = j.Submitted
		}
	}
	if !firstB.Before(lastA) {
		t.Fatalf("run rb's first job waited for run ra (rb at %v, ra's last at %v)", firstB, lastA)
	}
	if got := e.fake.MaxActive(); got > 2 {
		t.Fatalf("%d jobs active at once; each run's window is 1", got)
	}
}

func TestSeveralSubmittersKeepOneWindow(t *testing.T) {
	e := setup(t, 150*time.Millisecond)
	e.start(false)
	e.start(false) // a second submitter and watcher on the same work
	e.publish("rc", 12, 3, events.PolicySliding)
	e.waitCompleted("rc", 12)
	if got := e.fake.MaxActive(); got > 3 {
		t.Fatalf("max active jobs = %d with two submitters, want <= 3", got)
	}
	if e.fake.TotalSubmits() != 12 {
		t.Fatalf("%d submissions for 12 tests", e.fake.TotalSubmits())
	}
}

// Two submitters given the same batch of a run without a window at once: the one that
// loses a claim has no ledger watch, so it reads the entry while the owner works, and is
// done as soon as the owner has submitted, not when the claim would go stale.
func TestSameBatchInTwoSubmittersWithoutWindow(t *testing.T) {
	e := setup(t, 0)
	e.fake.SubmitErr = func(scheduler.JobRequest) error { time.Sleep(300 * time.Millisecond); return nil }
	var specs []events.JobSpec
	for i := range 6 {
		id := fmt.Sprintf("disagg_perf_t%02d", i)
		specs = append(specs, events.JobSpec{Index: i, TestID: id, LogDir: filepath.Join(e.dir, "slurm_logs", id, "r9"),
			Request: fake.Request("r9", id, filepath.Join(e.dir, "slurm_logs", id, "r9"), "job.sh"),
			Files:   []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\n"), Mode: 0o755}}})
	}
	b := events.Batch{Header: events.NewHeader("r9"), Total: 1, Tests: len(specs), Policy: events.PolicySliding, Jobs: specs}
	ctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for k := range 2 {
		s, err := submit.New(submit.Config{Bus: e.bus, Scheduler: e.fake, OutputPath: e.dir, Log: quiet, Notify: e.view.add, Owner: fmt.Sprint("s", k)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := b
			if err := s.Batch(ctx, &b); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("the two submitters took %s", el)
	}
	for _, sp := range specs {
		if n := e.fake.Submits(sp.Request.Name); n != 1 {
			t.Errorf("%s submitted %d times", sp.TestID, n)
		}
	}
}

// A quota refusal holds the submission however long it lasts (past RetryFor), tells
// followers the test waits for quota, and submits once the limit lifts; the other run
// goes on meanwhile.
func TestQuotaRefusalWaitsAndNeverFails(t *testing.T) {
	e := setup(t, 0)
	var lifted atomic.Bool
	var refusals atomic.Int32
	e.fake.SubmitErr = func(req scheduler.JobRequest) error {
		if strings.HasPrefix(req.Name, "disaggbench.rq.") && !lifted.Load() {
			refusals.Add(1)
			return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Quota: true, Msg: "sbatch: error: QOSMaxSubmitJobPerUserLimit"}
		}
		return nil
	}
	states, err := e.bus.NC.SubscribeSync("bench.jobs." + events.Token("rq") + ".*.state")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	s, err := submit.New(submit.Config{Bus: e.bus, Scheduler: e.fake, OutputPath: e.dir, Log: quiet, Notify: e.view.add,
		RetryMin: 10 * time.Millisecond, RetryFor: time.Millisecond, QuotaRetry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := watch.New(watch.Config{Bus: e.bus, Scheduler: e.fake, Log: quiet, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
	go func() { _ = s.Run(ctx) }()
	go func() { _ = w.Run(ctx) }()
	e.publish("rq", 2, 0, events.PolicySliding)
	e.publish("other", 2, 0, events.PolicySliding)
	e.waitCompleted("other", 2) // not held up by rq's wait
	m, err := states.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal("no quota wait announced:", err)
	}
	var st events.JobState
	_ = json.Unmarshal(m.Data, &st)
	if st.State != events.StateQuotaWait || !strings.Contains(st.Reason, "QOSMaxSubmitJobPerUserLimit") {
		t.Errorf("state event %+v", st)
	}
	time.Sleep(300 * time.Millisecond) // well past RetryFor
	if refusals.Load() < 3 {
		t.Fatalf("%d refusals: the submission was not retried", refusals.Load())
	}
	for i := range 2 {
		var rec events.JobRecord
		if _, err := ledger.GetJSON(e.ctx, e.bus.Jobs, events.Key("rq", fmt.Sprintf("disagg_perf_t%02d", i)), &rec); err == nil && rec.Phase != events.PhaseClaimed {
			t.Fatalf("t%02d is %s while the quota refuses it", i, rec.Phase)
		}
	}
	lifted.Store(true)
	e.waitCompleted("rq", 2)
	for _, j := range e.fake.Jobs() {
		if j.State != scheduler.Completed {
			t.Errorf("job %s ended %s", j.Name, j.State)
		}
	}
}

// TestQueueAheadHoldsOneJobOnTheWindow: with QueueAhead, a full window of two gets one
// more job, held on the window's jobs (afterany); the scheduler starts it when one of
// them ends, so no more than two ever run at once, and every test runs once.
func TestQueueAheadHoldsOneJobOnTheWindow(t *testing.T) {
	e := setup(t, 200*time.Millisecond)
	e.start(false)
	const n, size = 8, 2
	var specs []events.JobSpec
	for i := range n {
		id := fmt.Sprintf("disagg_perf_t%02d", i)
		dir := filepath.Join(e.dir, "slurm_logs", id, "r1")
		specs = append(specs, events.JobSpec{Index: i, TestID: id, LogDir: dir, Request: fake.Request("r1", id, dir, "job.sh"),
			Files: []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\necho hi\n"), Mode: 0o755}}})
	}
	for k := range n / size {
		ev := events.Batch{Header: events.NewHeader("r1"), Index: k, Total: n / size, BatchSize: size, Policy: events.PolicySliding,
			Tests: n, Jobs: specs[k*size : (k+1)*size], QueueAhead: true}
		if err := e.bus.Publish(e.ctx, events.BatchSubject("r1", k), events.BatchID("r1", k), ev); err != nil {
			t.Fatal(err)
		}
	}
	e.waitCompleted("r1", n)
	jobs := e.fake.Jobs()
	if len(jobs) != n {
		t.Fatalf("%d submissions for %d tests", len(jobs), n)
	}
	held := 0
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	ids := map[string]bool{}
	for _, j := range jobs {
		ids[j.ID] = true
		if j.Req.Dependency != "" {
			held++
			for _, d := range strings.Split(j.Req.Dependency, "?") {
				dep, ok := strings.CutPrefix(d, "afterany:")
				if !ok || !ids[dep] {
					t.Errorf("job %s held on %q: not an earlier job", j.ID, j.Req.Dependency)
				}
			}
		}
		edges = append(edges, edge{j.Start, +1}, edge{j.End, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	running, peak := 0, 0
	for _, ed := range edges {
		running += ed.delta
		peak = max(peak, running)
	}
	if held == 0 || peak > size || e.fake.MaxActive() > size+1 {
		t.Errorf("%d jobs held, %d running at once (want <= %d), %d at the scheduler at once (want <= %d)", held, peak, size, e.fake.MaxActive(), size+1)
	}
}
