// Package submit is the submitter stage: it takes batch work from a durable consumer,
// writes each job's files into its log folder, admits jobs so that at most batch-size of a
// run's jobs are queued or running at once (sliding window or the seed's barrier), submits
// them through a Scheduler and publishes "submitted". Every submission is claimed in the
// run ledger first, so a redelivered batch never submits a test twice.
package submit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Durable is the submitter's consumer name.
const Durable = "submitter"

// DefaultAckWait is how long a batch goes without a heartbeat before another submitter
// takes it; the submitter beats three times per ack-wait.
const DefaultAckWait = 6 * time.Second

// Config of a submitter.
type Config struct {
	Bus       *bus.Bus
	Scheduler scheduler.Scheduler
	// OutputPath is this submitter's output folder: it writes job files only under
	// OutputPath/slurm_logs, and refuses a job whose folder is anywhere else.
	OutputPath string
	Log        *slog.Logger
	// Notify, when set, is told of runs, batches and submissions as they happen (see
	// Notice); it must not block.
	Notify func(Notice)
	// DebugMode skips submission and uses DebugJobID, as the seed's DEBUG_MODE=1 does.
	DebugMode  bool
	DebugJobID string
	// RetryMin and RetryMax bound the back-off between tries of a transient failure;
	// RetryFor is how long a job keeps being retried before it fails.
	RetryMin, RetryMax, RetryFor time.Duration
	// QuotaRetry is the longest wait between tries of a submission refused for a quota;
	// such a refusal never fails the test (default 10 s).
	QuotaRetry time.Duration
	// AckWait is how long a batch may go without a heartbeat before it is redelivered.
	AckWait time.Duration
	// Owner names this instance in ledger claims.
	Owner string
	// MaxSubmits caps the scheduler calls under way at once (default 4).
	MaxSubmits int
}

// Submitter is the stage.
type Submitter struct {
	cfg        Config
	submitting chan struct{} // a slot per Submit call under way
	writing    chan struct{} // a slot per job whose files are being written
	log        *slog.Logger
	mu         sync.Mutex
	runs       map[string]*tracker
	ledger     *ledger.Ledger
}

// New checks the config and applies defaults.
func New(cfg Config) (*Submitter, error) {
	if cfg.Bus == nil || cfg.Scheduler == nil || cfg.OutputPath == "" {
		return nil, errors.New("submit: a bus, a scheduler and an output path are required")
	}
	if !filepath.IsAbs(cfg.OutputPath) {
		return nil, fmt.Errorf("submit: output path %q is not absolute", cfg.OutputPath)
	}
	cfg.OutputPath = filepath.Clean(cfg.OutputPath)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.RetryMin = cmpDur(cfg.RetryMin, 2*time.Second)
	cfg.RetryMax = cmpDur(cfg.RetryMax, time.Minute)
	cfg.RetryFor = cmpDur(cfg.RetryFor, 30*time.Minute)
	cfg.QuotaRetry = cmpDur(cfg.QuotaRetry, 10*time.Second)
	cfg.AckWait = cmpDur(cfg.AckWait, DefaultAckWait)
	if cfg.MaxSubmits <= 0 {
		cfg.MaxSubmits = 4
	}
	if cfg.Owner == "" {
		h, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	return &Submitter{cfg: cfg, log: cfg.Log.With("stage", "submitter"), runs: map[string]*tracker{}, ledger: ledger.New(cfg.Bus),
		submitting: make(chan struct{}, cfg.MaxSubmits), writing: make(chan struct{}, 16)}, nil
}

func cmpDur(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

// maxBatchesInFlight is how many batches one submitter works on at once. Batches of
// different runs never wait for each other; within a run, a job is admitted only once
// every job before it has been claimed (by any submitter), which keeps the window exact.
const maxBatchesInFlight = 32

// Run consumes batches until ctx ends.
func (s *Submitter) Run(ctx context.Context) error {
	cons, err := s.cfg.Bus.Consumer(ctx, Durable, "submitter: batch work", events.BatchFilter, s.cfg.AckWait, maxBatchesInFlight)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		s.closeTrackers()
	}()
	slots := make(chan struct{}, maxBatchesInFlight)
	opts := bus.ConsumeOptions{
		Stage: "submitter", What: "batch", Log: s.log,
		Batch:     1, // one batch at a time, so that other submitters get their share
		Heartbeat: s.cfg.AckWait / 3,
	}
	return bus.ConsumeEvents(ctx, cons, opts, events.DecodeBatch, func(msg *bus.Delivery, b *events.Batch) {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			s.handle(ctx, msg, b)
		}()
	})
}

func (s *Submitter) handle(ctx context.Context, msg *bus.Delivery, b *events.Batch) {
	start := time.Now()
	if err := s.Batch(ctx, b); err != nil {
		if ctx.Err() != nil {
			// Stopping: hand the batch back at once; claims make the rest idempotent.
			_ = msg.Nak()
			obs.Event("submitter", obs.Stopping)
			return
		}
		s.log.Error("batch failed; retrying later", "run", b.RunID, "batch", b.Index, "err", err)
		_ = msg.NakAfter(5 * time.Second)
		obs.Event("submitter", obs.Retry)
		return
	}
	if err := msg.AckSync(ctx); err != nil {
		s.log.Warn("ack batch", "err", err)
	}
	obs.Event("submitter", obs.OK)
	obs.Duration("submitter", time.Since(start))
}

// Batch submits every job of one batch, in order, each when the run's window admits it.
// Jobs whose submission fails transiently are retried after the others, with back-off.
func (s *Submitter) Batch(ctx context.Context, b *events.Batch) error {
	tr, err := s.tracker(ctx, b.RunID, b.BatchSize > 0)
	if err != nil {
		return err
	}
	defer s.release(b.RunID)
	if b.Index == 0 {
		s.notify(RunAccepted{RunID: b.RunID, BatchSize: max(b.BatchSize, 0), Policy: b.Policy, Tests: b.Tests,
			Batches: logicalBatches(b.Tests, b.BatchSize)})
	}
	written := s.prewrite(b.RunID, b.Jobs)
	var retry []*pending
	var mu sync.Mutex
	var firstErr error
	one := func(i int) {
		<-written[i].done
		p := &pending{job: &b.Jobs[i], delay: s.cfg.RetryMin, written: written[i].err, refused: written[i].refused}
		done, err := s.job(ctx, tr, b, p)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil && !done {
			retry = append(retry, p)
		}
	}
	if b.BatchSize > 0 {
		// A window: admit and submit in run order, one at a time.
		for i := range b.Jobs {
			if one(i); firstErr != nil {
				return firstErr
			}
		}
	} else {
		// No window: nothing orders the jobs, so submit several at once.
		next := make(chan int, len(b.Jobs))
		for i := range b.Jobs {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		for range min(8, len(b.Jobs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					one(i)
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
	}
	for len(retry) > 0 {
		wait := time.Until(retry[0].next)
		for _, p := range retry {
			wait = min(wait, time.Until(p.next))
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		var still []*pending
		for _, p := range retry {
			if time.Now().Before(p.next) {
				still = append(still, p)
				continue
			}
			done, err := s.job(ctx, tr, b, p)
			if err != nil {
				return err
			}
			if !done {
				still = append(still, p)
			}
		}
		retry = still
	}
	return nil
}

func logicalBatches(n, size int) int {
	if size <= 0 || n == 0 {
		return min(n, 1)
	}
	return (n + size - 1) / size
}

// fileWrite is the outcome of writing one job's files ahead of its turn.
type fileWrite struct {
	done    chan struct{}
	err     error
	refused bool // the job was refused: nothing was written
}

// prewrite writes every job's files with a few writers at once: on a shared file system
// each file costs a few metadata round trips, and a batch's jobs are independent. Writing
// a job's files again is harmless (same bytes, replaced atomically).
func (s *Submitter) prewrite(run string, jobs []events.JobSpec) []*fileWrite {
	logs := filepath.Join(s.cfg.OutputPath, "slurm_logs")
	out := make([]*fileWrite, len(jobs))
	next := make(chan int, len(jobs))
	for i := range jobs {
		out[i] = &fileWrite{done: make(chan struct{})}
		next <- i
	}
	close(next)
	for range min(8, len(jobs)) {
		go func() {
			for i := range next {
				if err := checkJob(logs, run, &jobs[i]); err != nil {
					s.log.Error("job refused", "run", run, "test", jobs[i].TestID, "reason", err)
					out[i].err, out[i].refused = fmt.Errorf("job refused: %w", err), true
					close(out[i].done)
					continue
				}
				s.writing <- struct{}{}
				out[i].err = writeFiles(&jobs[i])
				<-s.writing
				close(out[i].done)
			}
		}()
	}
	return out
}

type pending struct {
	mine    bool  // this attempt holds the test's claim
	written error // writing the job's files failed
	refused bool  // the job was refused: its paths are not to be used
	job     *events.JobSpec
	first   time.Time
	next    time.Time
	delay   time.Duration
	tries   int
	quota   int // tries refused for a quota
	// reported: when a problem event last said this job cannot be submitted.
	reported time.Time
}

// job takes one job as far as it can: done is false when a transient failure asks for a
// later retry.
func (s *Submitter) job(ctx context.Context, tr *tracker, b *events.Batch, p *pending) (done bool, err error) {
	j := p.job
	key := events.Key(b.RunID, j.TestID)
	// The tracker holds the run's ledger (its watch started with every entry), so only a
	// claim made elsewhere since then costs a read: Create below fails and we look again.
	rec, rev := tr.get(key)
	if rev > 0 && rec.Phase != events.PhaseClaimed {
		// Submitted (or over) before: make sure its event went out; the id dedupes it.
		tr.set(key, rec, rev)
		if rec.Phase == events.PhaseSubmitted {
			return true, s.publishSubmitted(ctx, b, j, &rec, rev)
		}
		return true, nil
	}
	if rev == 0 {
		after, err := s.admit(ctx, tr, b, j)
		if err != nil {
			return false, err
		}
		if (b.BatchSize > 0 && j.Index%b.BatchSize == 0) || (b.BatchSize <= 0 && j.Index == 0) {
			s.batchHeader(b, j.Index)
		}
		rec = events.JobRecord{
			RunID: b.RunID, TestID: j.TestID, Index: j.Index, Phase: events.PhaseClaimed,
			JobName: j.Request.Name, LogDir: j.LogDir, TimeLimit: j.TimeLimit, Owner: s.cfg.Owner,
			Claimed: time.Now().UTC(), After: after,
		}
		if p.refused {
			rec.JobName, rec.LogDir = "", ""
		}
		rev, err = s.createClaim(ctx, rec)
		if errors.Is(err, ledger.ErrConflict) {
			// Claimed elsewhere: read the entry, let the tracker know, look again.
			cur, crev, gerr := s.ledger.Job(ctx, b.RunID, j.TestID)
			if gerr != nil {
				return false, fmt.Errorf("read ledger %s: %w", key, gerr)
			}
			tr.set(key, cur, crev)
			return s.job(ctx, tr, b, p)
		}
		if err != nil {
			return false, fmt.Errorf("claim %s: %w", key, err)
		}
		tr.set(key, rec, rev)
		p.mine = true
	} else {
		if !p.mine {
			// Someone else's claim. While it is fresh its owner is at work (another
			// goroutine or submitter given the same test): wait for its outcome. A stale
			// one was left by a submitter that died; take it over.
			if wait := s.staleClaim() - time.Since(rec.Claimed); wait > 0 {
				ch := tr.changed()
				select {
				case <-ctx.Done():
					return false, ctx.Err()
				case <-ch:
				case <-time.After(min(wait, time.Second)):
				}
				if !tr.watching {
					// Nothing tells this tracker of the owner's progress: look.
					cur, crev, err := s.ledger.Job(ctx, b.RunID, j.TestID)
					if err != nil {
						return false, fmt.Errorf("read ledger %s: %w", key, err)
					}
					tr.set(key, cur, crev)
				}
				return s.job(ctx, tr, b, p)
			}
		}
		// Take the claim over, or renew ours before another try.
		rec.Owner, rec.Claimed = s.cfg.Owner, time.Now().UTC()
		nrev, err := s.ledger.UpdateJob(ctx, b.RunID, j.TestID, rec, rev)
		if errors.Is(err, ledger.ErrConflict) {
			cur, crev, gerr := s.ledger.Job(ctx, b.RunID, j.TestID)
			if gerr != nil {
				return false, fmt.Errorf("read ledger %s: %w", key, gerr)
			}
			tr.set(key, cur, crev)
			p.mine = false
			return s.job(ctx, tr, b, p)
		}
		if err != nil {
			return false, fmt.Errorf("claim %s: %w", key, err)
		}
		rev, p.mine = nrev, true
		tr.set(key, rec, rev)
		if found := s.findSubmitted(ctx, &rec); found != "" {
			// The job may have reached the scheduler before a crash or a timed-out sbatch.
			s.log.Info("found the job already submitted", "test", j.TestID, "job", found)
			return true, s.recordSubmitted(ctx, tr, b, j, key, rec, rev, found, time.Now().UTC())
		}
	}
	if p.refused {
		return true, s.fail(ctx, tr, b, j, key, rec, rev, "", p.written.Error())
	}
	if p.written != nil {
		return true, s.fail(ctx, tr, b, j, key, rec, rev, j.LogDir, "writing the job's files: "+p.written.Error())
	}
	if p.first.IsZero() {
		p.first = time.Now()
	}
	var id string
	if s.cfg.DebugMode {
		var why string
		if id, j, why = s.debugJob(j); why != "" {
			return true, s.fail(ctx, tr, b, j, key, rec, rev, j.LogDir, why)
		}
	} else {
		id, err = s.sbatch(ctx, j, &rec)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return s.submitFailed(ctx, tr, b, p, rec, rev, err)
	}
	return true, s.recordSubmitted(ctx, tr, b, j, key, rec, rev, id, time.Now().UTC())
}

// staleClaim is the age after which a claim no submitter renewed is taken over: longer
// than a batch goes without a heartbeat before it is redelivered, and than the pause
// between two tries of a failing submission (each try renews the claim).
// claimRetryFor bounds how long a claim that cannot be written is tried again before the
// batch is handed back (its heartbeats keep it meanwhile).
const claimRetryFor = time.Minute

// createClaim writes a new claim. A cluster electing a leader may write it and answer
// too late: a try that failed transiently is made again, and finding the very claim it
// wrote (this owner, this claim time) means the earlier try was written. Without that,
// the claim would read as another's and the test would wait for it to go stale.
func (s *Submitter) createClaim(ctx context.Context, rec events.JobRecord) (ledger.Rev, error) {
	deadline := time.Now().Add(claimRetryFor)
	for delay, tried := 250*time.Millisecond, false; ; delay, tried = min(2*delay, 5*time.Second), true {
		rev, err := s.ledger.CreateJob(ctx, rec)
		if errors.Is(err, ledger.ErrConflict) {
			cur, crev, gerr := s.ledger.Job(ctx, rec.RunID, rec.TestID)
			if gerr == nil && cur.Phase == events.PhaseClaimed && cur.Owner == rec.Owner && cur.Claimed.Equal(rec.Claimed) {
				if tried {
					s.log.Info("claim written by an earlier try", "test", rec.TestID)
				}
				return crev, nil
			}
			return 0, err
		}
		if err == nil || !bus.IsTransient(err) || time.Now().After(deadline) {
			return rev, err
		}
		s.log.Warn("claim not written yet; retrying", "test", rec.TestID, "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
	}
}

func (s *Submitter) staleClaim() time.Duration {
	return 2 * max(s.cfg.AckWait, s.cfg.RetryMax)
}

func (s *Submitter) findSubmitted(ctx context.Context, rec *events.JobRecord) string {
	if s.cfg.DebugMode || rec.JobName == "" {
		return ""
	}
	t0 := time.Now()
	jobs, err := s.cfg.Scheduler.FindByName(ctx, time.Now().Add(-7*24*time.Hour), rec.JobName)
	obs.SchedulerCall("find", t0, err)
	if err != nil || len(jobs) == 0 {
		return ""
	}
	return jobs[len(jobs)-1].ID
}

func (s *Submitter) recordSubmitted(ctx context.Context, tr *tracker, b *events.Batch, j *events.JobSpec, key string, rec events.JobRecord, rev uint64, id string, at time.Time) error {
	rec.Phase, rec.JobID, rec.Submitted, rec.Debug = events.PhaseSubmitted, id, at, s.cfg.DebugMode
	rec.Attempt = 1
	nrev, err := s.ledger.UpdateJob(ctx, b.RunID, j.TestID, rec, rev)
	if err != nil {
		return fmt.Errorf("record job %s of %s: %w", id, j.TestID, err)
	}
	tr.set(key, rec, nrev)
	pos := j.Index + 1
	total := b.Tests
	if b.BatchSize > 0 {
		pos = j.Index%b.BatchSize + 1
		total = min(b.BatchSize, b.Tests-j.Index/b.BatchSize*b.BatchSize)
	}
	s.notify(JobSubmitted{RunID: b.RunID, TestID: j.TestID, JobID: id, Pos: pos, Of: total})
	return s.publishSubmitted(ctx, b, j, &rec, nrev)
}

// publishQuotaWait tells followers that a test waits for the scheduler's quota.
func (s *Submitter) publishQuotaWait(ctx context.Context, b *events.Batch, j *events.JobSpec, err error) {
	reason := err.Error()
	var se *scheduler.SubmitError
	if errors.As(err, &se) {
		reason = se.Msg
	}
	ev := events.JobState{Header: events.NewHeader(b.RunID), TestID: j.TestID, State: events.StateQuotaWait,
		Detail: events.StateQuotaWait, Reason: strings.TrimSpace(reason)}
	if err := s.cfg.Bus.Publish(ctx, events.JobSubject(b.RunID, j.TestID, events.KindState),
		events.StateID(b.RunID, j.TestID, "", events.StateQuotaWait), ev); err != nil {
		s.log.Warn("publish quota wait", "test", j.TestID, "err", err)
	}
}

// publishProblem says, on the test's first transient failure and then at most every
// 15 s, that the submitter cannot submit it and when it fails unless that changes.
func (s *Submitter) publishProblem(ctx context.Context, b *events.Batch, j *events.JobSpec, p *pending, err error) {
	if !p.reported.IsZero() && time.Since(p.reported) < 15*time.Second {
		return
	}
	p.reported = time.Now()
	ev := events.Problem{Header: events.NewHeader(b.RunID), TestID: j.TestID, Stage: "submitter",
		Reason: "submission failed: " + err.Error(), Since: p.first, GiveUp: p.first.Add(s.cfg.RetryFor)}
	if err := s.cfg.Bus.Publish(ctx, events.JobSubject(b.RunID, j.TestID, events.KindProblem),
		events.ProblemID(b.RunID, j.TestID, "submitter", p.tries), ev); err != nil {
		s.log.Warn("publish problem", "test", j.TestID, "err", err)
	}
}

func (s *Submitter) publishSubmitted(ctx context.Context, b *events.Batch, j *events.JobSpec, rec *events.JobRecord, rev uint64) error {
	ev := events.JobSubmitted{
		Header: events.NewHeader(b.RunID), TestID: j.TestID, Index: j.Index, JobID: rec.JobID,
		Scheduler: s.cfg.Scheduler.Name(), LogDir: j.LogDir, Submitted: rec.Submitted,
		TimeLimit: j.TimeLimit, Debug: rec.Debug, JobName: rec.JobName, LedgerRev: rev,
		Spec: j.Judged(), Attempt: events.AttemptOf(rec.Attempt), Exclude: rec.Exclude,
	}
	if !rec.Debug {
		// What the watcher submits again after a node failure.
		req := j.Request
		ev.Request = &req
	}
	return s.cfg.Bus.Publish(ctx, events.JobSubject(b.RunID, j.TestID, events.KindSubmitted),
		events.SubmittedID(b.RunID, j.TestID, rec.JobID), ev)
}

// fail records a test that cannot be submitted and publishes it as completed, so the
// collector reports it with the scheduler's message. logDir is the job's folder, or ""
// for a refused job, whose folder nobody may touch.
func (s *Submitter) fail(ctx context.Context, tr *tracker, b *events.Batch, j *events.JobSpec, key string, rec events.JobRecord, rev uint64, logDir, reason string) error {
	s.log.Error("test not submitted", "test", j.TestID, "reason", reason)
	s.notify(NotSubmitted{RunID: b.RunID, TestID: j.TestID, Reason: reason})
	rec.Phase, rec.State = events.PhaseCompleted, events.StateSubmitFailed
	nrev, err := s.ledger.UpdateJob(ctx, b.RunID, j.TestID, rec, rev)
	if err != nil {
		return err
	}
	tr.set(key, rec, nrev)
	ev := events.JobCompleted{
		Header: events.NewHeader(b.RunID), TestID: j.TestID, Index: j.Index, State: events.StateSubmitFailed,
		LogDir: logDir, Reasons: []string{reason}, End: time.Now().UTC(), Spec: j.Judged(),
	}
	return s.cfg.Bus.Publish(ctx, events.JobSubject(b.RunID, j.TestID, events.KindCompleted),
		events.CompletedID(b.RunID, j.TestID), ev)
}

func (s *Submitter) batchHeader(b *events.Batch, index int) {
	if b.BatchSize <= 0 {
		s.notify(BatchStarted{RunID: b.RunID, From: 0, To: b.Tests}) // one batch of every test
		return
	}
	s.notify(BatchStarted{RunID: b.RunID, Batch: index / b.BatchSize, From: index, To: min(index+b.BatchSize, b.Tests)})
}

// admit blocks until the run's policy lets job j be submitted.
func (s *Submitter) admit(ctx context.Context, tr *tracker, b *events.Batch, j *events.JobSpec) (after []string, err error) {
	if b.BatchSize <= 0 {
		return nil, nil
	}
	_, dependent := s.cfg.Scheduler.(scheduler.Dependent)
	ahead := b.QueueAhead && b.Policy == events.PolicySliding && dependent && !s.cfg.DebugMode
	for {
		ch := tr.changed()
		if tr.claimedBelow(j.Index) {
			if tr.admits(b.Policy, b.BatchSize, b.Tests, j.Index) {
				return nil, nil
			}
			if ahead {
				if ids, ok := tr.ahead(b.BatchSize); ok {
					return ids, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		}
	}
}

// sbatch submits a job's request, a few at a time across batches. A job queued ahead
// waits on the window's jobs (afterany); when the scheduler refuses a dependency on a
// job it no longer knows (it ended long ago), the job goes without it.
func (s *Submitter) sbatch(ctx context.Context, j *events.JobSpec, rec *events.JobRecord) (id string, err error) {
	// However many batches are in flight, the scheduler sees a few sbatch at a time.
	select {
	case s.submitting <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	req := j.Request
	dep, _ := s.cfg.Scheduler.(scheduler.Dependent)
	if len(rec.After) > 0 && dep != nil {
		// Queued ahead: held until any of the window's jobs ends.
		req.Dependency = dep.AfterAny(rec.After)
	}
	t0 := time.Now()
	id, err = s.cfg.Scheduler.Submit(ctx, req)
	obs.SchedulerCall("submit", t0, err)
	if err != nil && req.Dependency != "" && strings.Contains(strings.ToLower(err.Error()), "dependency") {
		// A job it was to wait on is gone from the controller, so it ended long ago:
		// a slot is free.
		s.log.Info("dependency refused; submitting without it", "test", j.TestID, "err", err)
		req.Dependency = ""
		t0 = time.Now()
		id, err = s.cfg.Scheduler.Submit(ctx, req)
		obs.SchedulerCall("submit", t0, err)
	}
	<-s.submitting
	return id, err
}

// submitFailed decides what a failed submission means: a quota wait (retried however
// long), a transient failure (retried for RetryFor, a problem event said), or the
// test's failure.
func (s *Submitter) submitFailed(ctx context.Context, tr *tracker, b *events.Batch, p *pending, rec events.JobRecord, rev uint64, err error) (bool, error) {
	j := p.job
	key := events.Key(b.RunID, j.TestID)
	if errors.Is(err, scheduler.ErrQuota) {
		// The limit frees up as the user's jobs end: wait, however long, and say so.
		if p.quota == 0 {
			s.log.Info("submission waits for quota", "test", j.TestID, "err", err)
			s.publishQuotaWait(ctx, b, j, err)
		}
		p.quota++
		obs.SubmitRetry()
		p.first = time.Now() // other transient failures get their full time after the wait
		p.next = time.Now().Add(min(s.cfg.RetryMin<<min(p.quota-1, 5), s.cfg.QuotaRetry))
		return false, nil
	}
	if errors.Is(err, scheduler.ErrTransient) && time.Since(p.first) < s.cfg.RetryFor {
		p.tries++
		obs.SubmitRetry()
		p.next = time.Now().Add(p.delay)
		s.log.Warn("submission failed, will retry", "test", j.TestID, "try", p.tries, "in", p.delay, "err", err)
		p.delay = min(p.delay*2, s.cfg.RetryMax)
		s.publishProblem(ctx, b, j, p, err)
		return false, nil
	}
	return true, s.fail(ctx, tr, b, j, key, rec, rev, j.LogDir, "submission failed: "+err.Error())
}

// debugJob is DEBUG_MODE's job: DEBUG_JOB_ID, whose existing log folder is read as it
// is; why says what is missing.
func (s *Submitter) debugJob(j *events.JobSpec) (id string, dj *events.JobSpec, why string) {
	id = s.cfg.DebugJobID
	if id == "" {
		return "", j, "DEBUG_MODE=1 needs DEBUG_JOB_ID"
	}
	dir, err := debugLogDir(j.LogDir, id)
	if err != nil {
		return "", j, err.Error()
	}
	d := *j
	d.LogDir = dir
	return id, &d, ""
}
