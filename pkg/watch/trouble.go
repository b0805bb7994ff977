package watch

import (
	"context"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// troubleEvery is how often a watcher that cannot ask the scheduler says so, per test.
const troubleEvery = 30 * time.Second

// trouble is the watcher's record of failing scheduler queries.
type trouble struct {
	since, reported time.Time
	n               int
	err             string
	told            map[string]events.JobSubmitted // tests told of the problem, by ledger key
}

// noteQuery follows the scheduler queries' outcome: while they fail, each held test gets
// a problem event (at once, then every troubleEvery), so `planner run` and `status`
// show why nothing moves; the first query that works again resolves them. The watcher
// never fails a job for it: it waits for the scheduler.
func (w *Watcher) noteQuery(ctx context.Context, held []*tracked, err error) {
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	if err == nil {
		tr := w.trouble
		if tr == nil {
			return
		}
		w.trouble = nil
		w.log.Info("scheduler queries work again", "after", now.Sub(tr.since).Round(time.Second))
		for _, ev := range tr.told {
			w.publishProblem(ctx, ev, events.Problem{Header: events.NewHeader(ev.RunID), TestID: ev.TestID, Stage: "watcher",
				Reason: "scheduler queries work again", Since: tr.since, Resolved: true}, "watcher-resolved", tr.n)
		}
		return
	}
	if w.trouble == nil {
		w.trouble = &trouble{since: now, told: map[string]events.JobSubmitted{}}
	}
	tr := w.trouble
	tr.err = err.Error()
	if !tr.reported.IsZero() && now.Sub(tr.reported) < troubleEvery {
		return
	}
	tr.reported = now
	tr.n++
	for _, t := range held {
		if t.ev.Debug {
			continue
		}
		tr.told[events.Key(t.ev.RunID, t.ev.TestID)] = t.ev
		w.publishProblem(ctx, t.ev, events.Problem{Header: events.NewHeader(t.ev.RunID), TestID: t.ev.TestID, Stage: "watcher",
			Reason: "cannot ask the scheduler about job " + t.ev.JobID + ": " + tr.err, Since: tr.since}, "watcher", tr.n)
	}
}

func (w *Watcher) publishProblem(ctx context.Context, ev events.JobSubmitted, p events.Problem, stage string, n int) {
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.cfg.Bus.Publish(pctx, events.JobSubject(ev.RunID, ev.TestID, events.KindProblem),
		events.ProblemID(ev.RunID, ev.TestID, stage, n), p); err != nil {
		w.log.Warn("publish problem", "test", ev.TestID, "err", err)
	}
}
