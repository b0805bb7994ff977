// Package watch is the watcher stage: it holds every submitted job (an unacknowledged
// message of its durable consumer, so a job is tracked by exactly one watcher and a
// restarted or surviving watcher takes over the jobs of one that died), asks the
// scheduler about all of them with one query per poll cycle, publishes state changes,
// cancels jobs over their time limit, and publishes "completed" with the final state.
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Durable is the watcher's consumer name.
const Durable = "watcher"

// DefaultAckWait is how long a job's message goes without a heartbeat before another
// watcher takes it; the watcher beats four times per ack-wait.
const DefaultAckWait = 8 * time.Second

// DefaultTimeLimit is the seed's wait limit: 10 hours.
const DefaultTimeLimit = 36000 * time.Second

// Config of a watcher.
type Config struct {
	Bus       *bus.Bus
	Scheduler scheduler.Scheduler
	Log       *slog.Logger
	// PollMin is the interval right after any change; it doubles up to PollMax while
	// nothing changes.
	PollMin, PollMax time.Duration
	// TimeLimit applies to jobs that carry none (default 36000 s).
	TimeLimit time.Duration
	// ReasonsEvery: ask for pending reasons every this many cycles (default 10).
	ReasonsEvery int
	// AckWait: a watcher silent this long loses its jobs to another.
	AckWait time.Duration
	// MaxJobs caps the jobs one watcher holds (default 100000).
	MaxJobs int
	// QueuePoll is the interval of the queue check (squeue) while jobs are held, when the
	// scheduler has one (scheduler.QueueLister); default 1 s, negative turns it off. Then
	// Status (sacct) is asked only about jobs that left the queue, and about every held
	// job once per FullEvery as a safety net.
	QueuePoll time.Duration
	// FullEvery is the interval of the full Status query in queue mode (default PollMax).
	FullEvery time.Duration
	// MaxRetries is how many times a test whose job ended NODE_FAIL or BOOT_FAIL, or was
	// preempted for good, is submitted again, each time excluding the nodes that failed
	// (sbatch --exclude); 0 means DefaultMaxRetries, negative never.
	MaxRetries int
}

// DefaultMaxRetries is Config.MaxRetries's default.
const DefaultMaxRetries = 2

// MaxRetriesFlag turns a --max-retries flag value into Config.MaxRetries: 0 on the
// command line means no retry.
func MaxRetriesFlag(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// QueuePollFlag turns a --queue-poll flag value into Config.QueuePoll: 0 on the command
// line turns the queue check off.
func QueuePollFlag(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// Watcher is the stage.
type Watcher struct {
	cfg Config
	log *slog.Logger

	ledger *ledger.Ledger

	queue scheduler.QueueLister // nil: every cycle asks Status about every job

	mu   sync.Mutex
	jobs map[string]*tracked // by ledger key
	wake chan struct{}

	cycles, queries int64

	queryErr error    // the last scheduler query's failure, nil when it worked
	trouble  *trouble // failing queries, while they fail (the run loop's only)
}

type tracked struct {
	ev      events.JobSubmitted
	rev     uint64 // the ledger entry's revision, when known
	msg     *bus.Delivery
	state   string
	detail  string
	reason  string
	retryAt time.Time // a failed resubmission is tried again from then on
}

// New applies defaults.
func New(cfg Config) (*Watcher, error) {
	if cfg.Bus == nil || cfg.Scheduler == nil {
		return nil, errors.New("watch: a bus and a scheduler are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.PollMin <= 0 {
		cfg.PollMin = 2 * time.Second
	}
	if cfg.PollMax < cfg.PollMin {
		cfg.PollMax = max(cfg.PollMin, 60*time.Second)
	}
	if cfg.TimeLimit <= 0 {
		cfg.TimeLimit = DefaultTimeLimit
	}
	if cfg.ReasonsEvery <= 0 {
		cfg.ReasonsEvery = 10
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 100000
	}
	if cfg.QueuePoll == 0 {
		cfg.QueuePoll = time.Second
	}
	if cfg.FullEvery <= 0 {
		cfg.FullEvery = cfg.PollMax
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	w := &Watcher{cfg: cfg, log: cfg.Log.With("stage", "watcher"), ledger: ledger.New(cfg.Bus), jobs: map[string]*tracked{}, wake: make(chan struct{}, 1)}
	if q, ok := cfg.Scheduler.(scheduler.QueueLister); ok && cfg.QueuePoll > 0 {
		w.queue = q
	}
	return w, nil
}

// Stats returns poll cycles and scheduler queries so far.
func (w *Watcher) Stats() (cycles, queries int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cycles, w.queries
}

// Run tracks jobs until ctx ends; then it hands its jobs back at once.
func (w *Watcher) Run(ctx context.Context) error {
	cons, err := w.cfg.Bus.Consumer(ctx, Durable, "watcher: submitted jobs, held until completed", events.SubmittedFilter, w.cfg.AckWait, w.cfg.MaxJobs)
	if err != nil {
		return err
	}
	opts := bus.ConsumeOptions{
		Stage: "watcher", What: "submitted event", Log: w.log, Batch: 500,
		// A few heartbeats per ack-wait, however long a scheduler query takes.
		Heartbeat: w.cfg.AckWait / 4,
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		_ = bus.ConsumeEvents(ctx, cons, opts, decodeSubmitted, func(m *bus.Delivery, ev events.JobSubmitted) { w.take(ctx, m, ev) })
	}()
	defer func() {
		// What is still in the client's buffer is handed back by the consume loop once
		// ctx is done; then the jobs this watcher holds are handed back.
		<-consumed
		w.handBack()
	}()
	interval := w.cfg.PollMin
	timer := time.NewTimer(interval)
	defer timer.Stop()
	var lastFull time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			interval = w.cfg.PollMin
		case <-timer.C:
			full := w.queue == nil || time.Since(lastFull) >= w.cfg.FullEvery
			changed, held := w.cycle(ctx, full)
			if full && held > 0 {
				lastFull = time.Now()
			}
			if changed {
				interval = w.cfg.PollMin
			} else {
				interval = min(interval*2, w.cfg.PollMax)
			}
			if w.queue != nil && held > 0 {
				// The queue check is cheap: keep at least its pace while jobs run.
				interval = min(interval, w.cfg.QueuePoll)
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		// A little jitter keeps many watchers from polling in step.
		timer.Reset(interval + time.Duration(rand.Int64N(int64(interval)/10+1)))
	}
}

// decodeSubmitted decodes and checks a submitted event: one without a job id is as
// malformed as one that does not decode.
func decodeSubmitted(subject string, data []byte) (events.JobSubmitted, error) {
	var ev events.JobSubmitted
	err := events.DecodeJob(subject, data, &ev)
	if err == nil && ev.JobID == "" {
		err = errors.New("no job id")
	}
	return ev, err
}

func (w *Watcher) take(ctx context.Context, m *bus.Delivery, ev events.JobSubmitted) {
	key := events.Key(ev.RunID, ev.TestID)
	rev := ev.LedgerRev
	if m.NumDelivered != 1 || rev == 0 {
		// Delivered before: the job may have ended while no watcher held it.
		rec, r, err := w.ledger.Job(ctx, ev.RunID, ev.TestID)
		if err == nil && rec.Phase == events.PhaseCompleted {
			_ = m.Ack() // completed before a restart; nothing left to watch
			return
		}
		if err == nil && rec.Phase == events.PhaseSubmitted && rec.JobID != ev.JobID &&
			events.AttemptOf(rec.Attempt) > events.AttemptOf(ev.Attempt) {
			// An earlier attempt, submitted again before a restart: make sure the new
			// attempt's event went out (its id dedupes it), and let the old one go.
			if perr := w.publishSubmitted(ctx, &ev, &rec, r); perr != nil {
				w.log.Warn("republish the next attempt's submitted event", "test", ev.TestID, "err", perr)
				_ = m.NakAfter(time.Second)
				return
			}
			_ = m.Ack()
			return
		}
		rev = r
	}
	w.mu.Lock()
	if t, ok := w.jobs[key]; ok {
		t.msg = m // a redelivery to us: keep the newest handle
	} else {
		w.jobs[key] = &tracked{ev: ev, rev: rev, msg: m}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// handBack returns every held job to the consumer so another watcher takes it at once.
func (w *Watcher) handBack() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, t := range w.jobs {
		_ = t.msg.Nak()
		delete(w.jobs, k)
	}
}

// cycle is one poll. Without a queue check (or when full), one Status query covers
// every held job. With one, the queue (squeue) is asked about every held job and Status
// (sacct) only about those that left it: the controller answers from memory, and the
// accounting database is asked only when a job has ended. It reports whether any job
// changed and how many jobs are held.
func (w *Watcher) cycle(ctx context.Context, full bool) (bool, int) {
	w.mu.Lock()
	held := make([]*tracked, 0, len(w.jobs))
	for _, t := range w.jobs {
		held = append(held, t)
	}
	w.cycles++
	cycle := w.cycles
	w.mu.Unlock()
	if len(held) == 0 {
		return false, 0
	}
	now := time.Now()
	var ids []string
	since := now
	changed := false
	defer func() {
		byState := map[string]int{}
		for _, t := range held {
			byState[cmp.Or(t.state, "SUBMITTED")]++
		}
		obs.Jobs(byState)
	}()
	for _, t := range held {
		if t.ev.Debug {
			// DEBUG_MODE: the job ran earlier (DEBUG_JOB_ID); its logs are read as they are.
			w.complete(ctx, t, scheduler.JobStatus{ID: t.ev.JobID, State: scheduler.Completed, Detail: "DEBUG_MODE"}, nil)
			changed = true
			continue
		}
		ids = append(ids, t.ev.JobID)
		if t.ev.Submitted.Before(since) {
			since = t.ev.Submitted
		}
	}
	if len(ids) == 0 {
		return changed, len(held)
	}
	st, queued, ok := w.query(ctx, cycle, full, since, ids)
	w.noteQuery(ctx, held, w.queryErr)
	if !ok {
		return false, len(held)
	}
	type ended struct {
		t *tracked
		s scheduler.JobStatus
	}
	var ending []ended
	defer func() {
		// Each completion is a few round trips to JetStream; do several at once.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for _, e := range ending {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				w.finish(ctx, e.t, e.s)
			}()
		}
		wg.Wait()
	}()
	for _, t := range held {
		if t.ev.Debug {
			continue
		}
		s, ok := st[t.ev.JobID]
		limit := t.ev.TimeLimit
		if limit <= 0 {
			limit = w.cfg.TimeLimit
		}
		_, inQueue := queued[t.ev.JobID]
		if ok && (scheduler.IsTerminal(s.State) || (s.State == scheduler.Preempted && !inQueue)) {
			if now.Before(t.retryAt) {
				continue
			}
			ending = append(ending, ended{t, s})
			changed = true
			continue
		}
		if now.Sub(t.ev.Submitted) > limit {
			if w.overLimit(ctx, t, s, ok, limit, now) {
				changed = true
			}
			continue
		}
		if q, inQueue := queued[t.ev.JobID]; inQueue {
			// The controller's view is the newer one while the job is queued or running.
			s = scheduler.JobStatus{ID: t.ev.JobID, State: q.State, Detail: q.Detail, Reason: q.Reason}
		} else if !ok {
			continue // not (yet) in the scheduler's answer: still waiting
		}
		if w.noteState(ctx, t, s) {
			changed = true
		}
	}
	return changed, len(held)
}

// query asks the scheduler about ids: Status for all of them, or, in queue mode, the
// queue for all of them and Status for those that left it (and for all when full). A
// failed query is logged and reported as not ok: never a reason to call a job finished.
func (w *Watcher) query(ctx context.Context, cycle int64, full bool, since time.Time, ids []string) (map[string]scheduler.JobStatus, map[string]scheduler.QueueEntry, bool) {
	var queued map[string]scheduler.QueueEntry
	ask := ids
	if w.queue != nil {
		t0 := time.Now()
		q, err := w.queue.Queue(ctx, ids)
		obs.SchedulerCall("queue", t0, err)
		if err != nil {
			w.log.Warn("queue query failed; asking for every job's status", "jobs", len(ids), "err", err)
			full = true
		}
		queued = q
		if !full {
			ask = ask[:0:0]
			for _, id := range ids {
				e, in := q[id]
				if !in || e.State == "COMPLETING" || scheduler.IsTerminal(e.State) {
					ask = append(ask, id)
				}
			}
		}
	}
	st := map[string]scheduler.JobStatus{}
	if len(ask) > 0 {
		w.mu.Lock()
		w.queries++
		w.mu.Unlock()
		var err error
		t0 := time.Now()
		st, err = w.cfg.Scheduler.Status(ctx, since.Add(-time.Minute), ask)
		obs.SchedulerCall("status", t0, err)
		if err != nil {
			w.log.Warn("status query failed", "jobs", len(ask), "err", err)
			w.queryErr = err
			return nil, nil, false
		}
	}
	w.queryErr = nil
	if w.queue == nil {
		if pr, ok := w.cfg.Scheduler.(scheduler.PendingReasoner); ok && cycle%int64(w.cfg.ReasonsEvery) == 0 {
			t0 := time.Now()
			reasons, err := pr.PendingReasons(ctx, ids)
			obs.SchedulerCall("reasons", t0, err)
			for id, r := range reasons {
				if s, ok := st[id]; ok {
					s.Reason = r
					st[id] = s
				}
			}
		}
	}
	return st, queued, true
}

// noteState publishes a job's state when it changed; it reports whether it did.
func (w *Watcher) noteState(ctx context.Context, t *tracked, s scheduler.JobStatus) bool {
	if s.State == t.state && s.Detail == t.detail && (s.Reason == t.reason || s.Reason == "") {
		return false
	}
	t.state, t.detail, t.reason = s.State, s.Detail, s.Reason
	ev := events.JobState{Header: events.NewHeader(t.ev.RunID), TestID: t.ev.TestID, JobID: t.ev.JobID, State: s.State, Detail: s.Detail, Reason: s.Reason,
		Attempt: events.AttemptOf(t.ev.Attempt)}
	if err := w.cfg.Bus.Publish(ctx, events.JobSubject(t.ev.RunID, t.ev.TestID, events.KindState),
		events.StateID(t.ev.RunID, t.ev.TestID, t.ev.JobID, s.Detail+"|"+s.Reason), ev); err != nil {
		w.log.Warn("publish state", "err", err)
	}
	return true
}

// errNotLedgers marks a submitted event whose job the run ledger does not record.
var errNotLedgers = errors.New("not the job the run ledger records")

// ours checks that a job the watcher is about to cancel is the one the pipeline
// submitted for that run and test: the ledger records this job id for the test, and the
// scheduler knows the job by the test's name and comment. An event alone proves
// nothing: whoever may publish could name any job id.
func (w *Watcher) ours(ctx context.Context, t *tracked, s scheduler.JobStatus, known bool) error {
	run, test, id := t.ev.RunID, t.ev.TestID, t.ev.JobID
	rec, _, err := w.ledger.Job(ctx, run, test)
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("%w: no ledger entry for run %s test %s", errNotLedgers, run, test)
		}
		return fmt.Errorf("read ledger: %w", err)
	}
	if rec.JobID != id || rec.RunID != run || rec.TestID != test {
		return fmt.Errorf("%w: the ledger has job %q for run %s test %s, the event %q", errNotLedgers, rec.JobID, run, test, id)
	}
	if !events.JobNameFor(rec.JobName, run, test) {
		return fmt.Errorf("ledger job name %q is not run %s test %s's", rec.JobName, run, test)
	}
	if known && s.Name != rec.JobName {
		return fmt.Errorf("the scheduler names job %s %q, not %q", id, s.Name, rec.JobName)
	}
	if c, ok := w.cfg.Scheduler.(scheduler.Commenter); ok {
		t0 := time.Now()
		comment, err := c.Comment(ctx, id)
		obs.SchedulerCall("comment", t0, err)
		if err != nil {
			return fmt.Errorf("job %s's comment: %w", id, err)
		}
		if want := events.JobComment(run, test); comment != want {
			return fmt.Errorf("job %s's comment is %q, not %q", id, comment, want)
		}
	}
	return nil
}

// complete publishes the job's end, marks the ledger and lets the message go.
func (w *Watcher) complete(ctx context.Context, t *tracked, s scheduler.JobStatus, reasons []string) {
	ev := events.JobCompleted{
		Header: events.NewHeader(t.ev.RunID), TestID: t.ev.TestID, Index: t.ev.Index, JobID: t.ev.JobID,
		State: s.State, Detail: s.Detail, ExitCode: s.ExitCode, Signal: s.Signal,
		Submit: t.ev.Submitted, Start: s.Start, End: s.End, NodeList: s.NodeList, LogDir: t.ev.LogDir, Reasons: reasons,
		Spec: t.ev.Spec, Attempt: events.AttemptOf(t.ev.Attempt),
	}
	if ev.Detail == "" {
		ev.Detail = s.State
	}
	if err := w.cfg.Bus.Publish(ctx, events.JobSubject(t.ev.RunID, t.ev.TestID, events.KindCompleted),
		events.CompletedID(t.ev.RunID, t.ev.TestID), ev); err != nil {
		w.log.Warn("publish completed; will retry", "test", t.ev.TestID, "err", err)
		obs.Event("watcher", obs.Retry)
		return
	}
	if err := w.markCompleted(ctx, t, s.State); err != nil {
		w.log.Warn("mark ledger completed; will retry", "test", t.ev.TestID, "err", err)
		obs.Event("watcher", obs.Retry)
		return
	}
	_ = t.msg.Ack()
	outcome := obs.OK
	if s.State != scheduler.Completed {
		outcome = obs.Failed
	}
	obs.Event("watcher", outcome)
	if !t.ev.Submitted.IsZero() {
		obs.Duration("watcher", time.Since(t.ev.Submitted))
	}
	w.mu.Lock()
	delete(w.jobs, events.Key(t.ev.RunID, t.ev.TestID))
	w.mu.Unlock()
}

// markCompleted records the job's end in the ledger: over the revision the job was
// submitted (or found) with, so without a read, unless the entry changed since.
func (w *Watcher) markCompleted(ctx context.Context, t *tracked, state string) error {
	if t.rev > 0 {
		rec := events.JobRecord{
			RunID: t.ev.RunID, TestID: t.ev.TestID, Index: t.ev.Index, Phase: events.PhaseCompleted,
			JobID: t.ev.JobID, JobName: t.ev.JobName, State: state, LogDir: t.ev.LogDir,
			Submitted: t.ev.Submitted, TimeLimit: t.ev.TimeLimit, Debug: t.ev.Debug,
			Attempt: events.AttemptOf(t.ev.Attempt), Exclude: t.ev.Exclude,
		}
		_, err := w.ledger.UpdateJob(ctx, t.ev.RunID, t.ev.TestID, rec, t.rev)
		if err == nil || !errors.Is(err, ledger.ErrConflict) {
			return err
		}
	}
	_, _, err := w.ledger.MutateJob(ctx, t.ev.RunID, t.ev.TestID, func(r *events.JobRecord, _ bool) error {
		r.Phase, r.State = events.PhaseCompleted, state
		if r.RunID == "" {
			r.RunID, r.TestID, r.Index, r.JobID = t.ev.RunID, t.ev.TestID, t.ev.Index, t.ev.JobID
		}
		return nil
	})
	return err
}

// overLimit ends a job that has no final state after its time limit: cancelled when it
// is the pipeline's, completed as TIMEOUT either way. A submitted event the ledger does
// not back is terminated instead (false: nothing completed).
func (w *Watcher) overLimit(ctx context.Context, t *tracked, s scheduler.JobStatus, ok bool, limit time.Duration, now time.Time) bool {
	why := fmt.Sprintf("no final state after %s; cancelled by the watcher", limit)
	if err := w.ours(ctx, t, s, ok); errors.Is(err, errNotLedgers) {
		// A submitted event the ledger does not back: nobody's job to end.
		w.log.Error("submitted event not in the ledger; terminating it, nothing cancelled", "test", t.ev.TestID, "job", t.ev.JobID, "reason", err)
		_ = t.msg.Term(err.Error())
		w.mu.Lock()
		delete(w.jobs, events.Key(t.ev.RunID, t.ev.TestID))
		w.mu.Unlock()
		return false
	} else if err != nil {
		w.log.Error("job over its time limit is not the pipeline's; not cancelling it", "test", t.ev.TestID, "job", t.ev.JobID, "reason", err)
		why = fmt.Sprintf("no final state after %s; job %s not cancelled: %v", limit, t.ev.JobID, err)
	} else {
		w.log.Warn("job over its time limit; cancelling", "test", t.ev.TestID, "job", t.ev.JobID, "limit", limit)
		t0 := time.Now()
		err := w.cfg.Scheduler.Cancel(ctx, t.ev.JobID)
		obs.SchedulerCall("cancel", t0, err)
		if err != nil {
			w.log.Warn("cancel", "job", t.ev.JobID, "err", err)
		}
	}
	s.ID, s.State, s.Detail = t.ev.JobID, scheduler.Timeout, "TIMEOUT (watcher limit)"
	if s.End.IsZero() {
		s.End = now.UTC()
	}
	w.complete(ctx, t, s, []string{why})
	return true
}
