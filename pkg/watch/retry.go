package watch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// retryPause is how long a resubmission that failed for a passing reason (a busy
// controller, a quota) waits before it is tried again.
const retryPause = 5 * time.Second

// Retryable reports whether a job that ended in this state is worth submitting again:
// its nodes failed under it (NODE_FAIL), never booted (BOOT_FAIL), or it was preempted
// and not requeued (PREEMPTED). Other ends are the test's own: TIMEOUT keeps its partial
// results, OUT_OF_MEMORY and a failing exit code fail with their reason.
func Retryable(state string) bool {
	switch scheduler.BaseState(state) {
	case scheduler.NodeFail, scheduler.BootFail, scheduler.Preempted:
		return true
	}
	return false
}

// finish ends a job that reached a final state: a retryable end with attempts left
// submits the test again; anything else is published as completed.
func (w *Watcher) finish(ctx context.Context, t *tracked, s scheduler.JobStatus) {
	var reasons []string
	if Retryable(s.State) && !t.ev.Debug {
		attempt := events.AttemptOf(t.ev.Attempt)
		if attempt > w.cfg.MaxRetries {
			if w.cfg.MaxRetries > 0 {
				reasons = append(reasons, fmt.Sprintf("job %s ended %s on attempt %d; no retry left (--max-retries %d)",
					t.ev.JobID, cmpOr(s.Detail, s.State), attempt, w.cfg.MaxRetries))
			}
		} else {
			err := w.retry(ctx, t, s)
			if err == nil {
				return
			}
			var later *retryLater
			if errors.As(err, &later) {
				w.log.Warn("submitting again failed; will retry", "test", t.ev.TestID, "job", t.ev.JobID, "err", err)
				t.retryAt = time.Now().Add(retryPause)
				return
			}
			w.log.Error("not submitted again", "test", t.ev.TestID, "job", t.ev.JobID, "err", err)
			reasons = append(reasons, fmt.Sprintf("job %s ended %s; not submitted again: %v", t.ev.JobID, cmpOr(s.Detail, s.State), err))
		}
	}
	w.complete(ctx, t, s, reasons)
}

// retryLater wraps a failure that a later try may not meet.
type retryLater struct{ err error }

func (e *retryLater) Error() string { return e.err.Error() }
func (e *retryLater) Unwrap() error { return e.err }

// retry submits the test again, excluding the nodes of this and earlier failures, and
// moves the ledger entry to the new job (over the revision read, so a test is submitted
// again once, whoever watches it). The new job's submitted event brings it to a watcher;
// the old event is let go. A request the ledger does not back is never submitted.
func (w *Watcher) retry(ctx context.Context, t *tracked, s scheduler.JobStatus) error {
	run, test, old := t.ev.RunID, t.ev.TestID, t.ev.JobID
	attempt := events.AttemptOf(t.ev.Attempt)
	rec, rev, err := w.ledger.Job(ctx, run, test)
	if err != nil {
		return &retryLater{fmt.Errorf("read ledger: %w", err)}
	}
	if rec.Phase == events.PhaseSubmitted && rec.JobID != old && events.AttemptOf(rec.Attempt) > attempt {
		// Submitted again already (by us before a failed publish, or by another watcher).
		if err := w.publishSubmitted(ctx, &t.ev, &rec, rev); err != nil {
			return &retryLater{err}
		}
		w.letGo(t)
		return nil
	}
	req := t.ev.Request
	switch {
	case req == nil:
		return errors.New("the submitted event carries no request to submit again")
	case rec.Phase != events.PhaseSubmitted || rec.JobID != old || rec.RunID != run || rec.TestID != test:
		return fmt.Errorf("%w: the ledger has job %q (%s) for run %s test %s, the event %q", errNotLedgers, rec.JobID, rec.Phase, run, test, old)
	case events.AttemptOf(rec.Attempt) != attempt:
		return fmt.Errorf("%w: the ledger has attempt %d, the event %d", errNotLedgers, events.AttemptOf(rec.Attempt), attempt)
	case !events.JobNameFor(rec.JobName, run, test) || req.Name != rec.JobName:
		return fmt.Errorf("the request's job name %q is not the ledger's %q for run %s test %s", req.Name, rec.JobName, run, test)
	case req.Comment != events.JobComment(run, test):
		return fmt.Errorf("the request's comment %q is not run %s test %s's", req.Comment, run, test)
	case rec.LogDir == "" || req.LogDir != rec.LogDir || !events.Within(rec.LogDir, req.Script):
		return fmt.Errorf("the request's folder %q or script %q is not the ledger's folder %q", req.LogDir, req.Script, rec.LogDir)
	}
	exclude := slices.Clone(t.ev.Exclude)
	if n := strings.TrimSpace(s.NodeList); n != "" && !slices.Contains(exclude, n) {
		exclude = append(exclude, n)
	}
	id := w.resubmitted(ctx, t)
	if id == "" {
		r := *req
		r.ExtraArgs = slices.Clone(r.ExtraArgs)
		if len(exclude) > 0 {
			r.ExtraArgs = append(r.ExtraArgs, "--exclude="+strings.Join(exclude, ","))
		}
		if id, err = w.cfg.Scheduler.Submit(ctx, r); err != nil {
			if errors.Is(err, scheduler.ErrTransient) {
				return &retryLater{fmt.Errorf("submit attempt %d: %w", attempt+1, err)}
			}
			return fmt.Errorf("submit attempt %d: %w", attempt+1, err)
		}
	}
	rec.JobID, rec.Submitted, rec.Attempt, rec.Exclude, rec.State, rec.After = id, time.Now().UTC(), attempt+1, exclude, "", nil
	nrev, err := w.ledger.UpdateJob(ctx, run, test, rec, rev)
	if err != nil {
		// The new job exists: the next try finds it by name instead of submitting again.
		return &retryLater{fmt.Errorf("record attempt %d (job %s) in the ledger: %w", attempt+1, id, err)}
	}
	w.log.Warn("job failed on its nodes; submitted again", "test", test, "job", old, "state", s.Detail,
		"nodes", s.NodeList, "attempt", attempt+1, "new_job", id, "exclude", strings.Join(exclude, ","))
	st := events.JobState{Header: events.NewHeader(run), TestID: test, JobID: old, State: events.StateRetry,
		Detail: fmt.Sprintf("%s on %s: attempt %d of %d is job %s, excluding %s",
			cmpOr(s.Detail, s.State), cmpOr(s.NodeList, "unknown nodes"), attempt+1, w.cfg.MaxRetries+1, id, cmpOr(strings.Join(exclude, ","), "no node")),
		Attempt: attempt}
	if err := w.cfg.Bus.Publish(ctx, events.JobSubject(run, test, events.KindState),
		events.StateID(run, test, old, events.StateRetry), st); err != nil {
		w.log.Warn("publish retry state", "test", test, "err", err)
	}
	if err := w.publishSubmitted(ctx, &t.ev, &rec, nrev); err != nil {
		return &retryLater{err}
	}
	w.letGo(t)
	return nil
}

// resubmitted returns a job of the test's name submitted after the tracked one (a
// resubmission whose ledger record was lost), or "".
func (w *Watcher) resubmitted(ctx context.Context, t *tracked) string {
	if t.ev.JobName == "" {
		return ""
	}
	jobs, err := w.cfg.Scheduler.FindByName(ctx, t.ev.Submitted.Add(-time.Minute), t.ev.JobName)
	if err != nil {
		return ""
	}
	found := ""
	for _, j := range jobs {
		if laterJob(j.ID, t.ev.JobID) && (found == "" || laterJob(j.ID, found)) {
			found = j.ID
		}
	}
	return found
}

// laterJob reports whether job id a was submitted after b (SLURM's ids grow).
func laterJob(a, b string) bool {
	base := func(id string) (int64, bool) {
		id, _, _ = strings.Cut(id, "_")
		id, _, _ = strings.Cut(id, "+")
		n, err := strconv.ParseInt(id, 10, 64)
		return n, err == nil
	}
	x, ok1 := base(a)
	y, ok2 := base(b)
	return ok1 && ok2 && x > y
}

// publishSubmitted publishes the submitted event of the ledger's attempt, from the
// earlier attempt's event.
func (w *Watcher) publishSubmitted(ctx context.Context, prev *events.JobSubmitted, rec *events.JobRecord, rev uint64) error {
	ev := *prev
	ev.Header = events.NewHeader(prev.RunID)
	ev.JobID, ev.Submitted, ev.Attempt, ev.Exclude, ev.LedgerRev = rec.JobID, rec.Submitted, events.AttemptOf(rec.Attempt), rec.Exclude, rev
	return w.cfg.Bus.Publish(ctx, events.JobSubject(ev.RunID, ev.TestID, events.KindSubmitted),
		events.SubmittedID(ev.RunID, ev.TestID, ev.JobID), ev)
}

// letGo acknowledges a tracked job's event and forgets it.
func (w *Watcher) letGo(t *tracked) {
	_ = t.msg.Ack()
	w.mu.Lock()
	delete(w.jobs, events.Key(t.ev.RunID, t.ev.TestID))
	w.mu.Unlock()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
