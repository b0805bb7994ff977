package progress

import (
	"context"
	"fmt"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Cancelled is one test that Cancel ended.
type Cancelled struct {
	TestID string
	JobID  string // "" when it was never submitted
	Err    error  // the scheduler refused the cancellation
}

// CancelReason is the reason a cancelled test's result carries.
const CancelReason = "cancelled by planner cancel"

// Cancel ends a run: each test not over yet is marked CANCELLED in the ledger (so no
// submitter submits it), its job, if any, is cancelled in the scheduler, and its end is
// published as a CANCELLED completion, which the collector turns into a failed result.
// The run record says it was cancelled.
func Cancel(ctx context.Context, b *bus.Bus, sched scheduler.Scheduler, run string) ([]Cancelled, error) {
	if _, err := Lookup(ctx, b, run); err != nil {
		return nil, err
	}
	prog, err := Follow(ctx, b, run, true, nil)
	if err != nil {
		return nil, err
	}
	if _, err := ledger.New(b).MutateRun(ctx, run, func(r *events.RunRecord) error {
		r.Cancelled = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("record run %s cancelled: %w", run, err)
	}
	var out []Cancelled
	for _, t := range prog.sortedTests() {
		if t.Result != nil || t.Ended {
			continue
		}
		c, err := cancelTest(ctx, b, sched, run, t.TestID)
		if err != nil {
			return out, err
		}
		if c != nil {
			out = append(out, *c)
		}
	}
	return out, nil
}

func cancelTest(ctx context.Context, b *bus.Bus, sched scheduler.Scheduler, run, test string) (*Cancelled, error) {
	key := events.Key(run, test)
	c := &Cancelled{TestID: test}
	ended := false
	rec, _, err := ledger.New(b).MutateJob(ctx, run, test, func(r *events.JobRecord, found bool) error {
		if !found {
			// Never claimed: a cancelled entry keeps every submitter off it.
			*r = events.JobRecord{RunID: run, TestID: test, Index: -1, Phase: events.PhaseCompleted, State: scheduler.Cancelled}
			return nil
		}
		if ended = r.Phase == events.PhaseCompleted; ended {
			return ledger.ErrSkip // ended meanwhile: its own completion tells
		}
		ids := []string{}
		if r.JobID != "" {
			ids = append(ids, r.JobID)
		} else if r.Phase == events.PhaseClaimed && r.JobName != "" {
			// A submission in flight: find the job by the name it carries.
			if jobs, err := sched.FindByName(ctx, time.Now().Add(-7*24*time.Hour), r.JobName); err == nil {
				for _, j := range jobs {
					ids = append(ids, j.ID)
				}
			}
		}
		for _, id := range ids {
			c.JobID = id
			if err := sched.Cancel(ctx, id); err != nil {
				c.Err = err
			}
		}
		r.Phase, r.State = events.PhaseCompleted, scheduler.Cancelled
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger %s: %w", key, err)
	}
	if ended {
		return nil, nil
	}
	ev := events.JobCompleted{
		Header: events.NewHeader(run), TestID: test, Index: rec.Index, JobID: c.JobID, State: scheduler.Cancelled,
		Detail: scheduler.Cancelled + " by planner cancel", Submit: rec.Submitted, End: time.Now().UTC(),
		LogDir: rec.LogDir, Reasons: []string{CancelReason},
	}
	if rec.LogDir == "" {
		ev.Spec = &events.JobSpec{TestID: test}
	}
	if err := b.Publish(ctx, events.JobSubject(run, test, events.KindCompleted), events.CompletedID(run, test), ev); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *Progress) sortedTests() []*TestProgress {
	out := make([]*TestProgress, 0, len(p.Tests))
	for _, t := range p.Tests {
		out = append(out, t)
	}
	sortTests(out)
	return out
}
