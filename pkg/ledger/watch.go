package ledger

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// JobEntry is one job record as a watch delivers it.
type JobEntry struct {
	Key    string // events.Key(run, test)
	Record events.JobRecord
	Rev    Rev
}

// JobWatch follows a run's job records until Stop.
type JobWatch struct {
	stop    context.CancelFunc
	stopped chan struct{}
}

// resync is how long a run's job watch may stay silent before it is replaced.
var resync = 5 * time.Second

// WatchRunJobs delivers every job record of a run to fn: the current ones before it
// returns (ctx bounds that start), then each change, one at a time from one goroutine,
// until Stop. Deleted records and records that do not decode are not delivered. A KV
// watch can end (the connection is lost) or go silent (the bucket's leader moves to
// another server of a cluster): one ended or quiet for resync is replaced by a new one,
// tried again every resync until it starts, which delivers the current records once
// more (their revisions tell a repeat from a change).
func (l *Ledger) WatchRunJobs(ctx context.Context, run string, fn func(JobEntry)) (*JobWatch, error) {
	filter := events.Token(run) + ".*"
	w, err := l.b.Jobs.Watch(ctx, filter)
	if err != nil {
		return nil, err
	}
	// Wait for the initial values so that the caller starts from the whole ledger.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		deliver(e, fn)
	}
	wctx, cancel := context.WithCancel(context.Background())
	jw := &JobWatch{stop: cancel, stopped: make(chan struct{})}
	go func() {
		defer close(jw.stopped)
		defer func() {
			if w != nil {
				_ = w.Stop()
			}
		}()
		tick := time.NewTicker(resync)
		defer tick.Stop()
		updates := w.Updates()
		last := time.Now()
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-updates:
				if !ok {
					updates = nil // replaced at the next tick
					continue
				}
				last = time.Now()
				if e != nil {
					deliver(e, fn)
				}
				continue
			case <-tick.C:
			}
			if updates != nil && time.Since(last) < resync {
				continue
			}
			if w != nil {
				_ = w.Stop()
				w = nil
			}
			nw, err := l.b.Jobs.Watch(wctx, filter)
			if err != nil {
				continue // tried again at the next tick
			}
			w, updates, last = nw, nw.Updates(), time.Now()
		}
	}()
	return jw, nil
}

// Stop ends the watch; fn is not called once Done is closed.
func (w *JobWatch) Stop() { w.stop() }

// Done is closed when the watch has stopped after Stop.
func (w *JobWatch) Done() <-chan struct{} { return w.stopped }

func deliver(e jetstream.KeyValueEntry, fn func(JobEntry)) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var rec events.JobRecord
	if json.Unmarshal(e.Value(), &rec) != nil {
		return
	}
	fn(JobEntry{Key: e.Key(), Record: rec, Rev: e.Revision()})
}
