package ledger

import (
	"context"
	"encoding/json"

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

// WatchRunJobs delivers every job record of a run to fn: the current ones before it
// returns (ctx bounds that start), then each change, one at a time from one goroutine,
// until Stop. Deleted records and records that do not decode are not delivered. When the
// connection drops the KV watch ends; it is started again, delivering the current
// records once more (their revisions tell a repeat from a change). If it cannot be
// started again the watch stops: Done is closed.
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
		defer func() { w.Stop() }()
		for {
			select {
			case <-wctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					// The watch ends when the connection is lost; start it again.
					nw, err := l.b.Jobs.Watch(wctx, filter)
					if err != nil {
						return
					}
					w = nw
					continue
				}
				if e != nil {
					deliver(e, fn)
				}
			}
		}
	}()
	return jw, nil
}

// Stop ends the watch; fn is not called once Done is closed.
func (w *JobWatch) Stop() { w.stop() }

// Done is closed when the watch has stopped.
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
