package submit

import (
	"context"
	"slices"
	"sync"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
)

// tracker follows one run's ledger entries through a KV watch, so the window can be
// judged from what every stage has written, including after a restart. A run without a
// window needs no watch: its tracker knows only what this submitter wrote or read.
type tracker struct {
	watching bool
	mu       sync.Mutex
	recs     map[string]entry
	active   int          // claimed or submitted, not completed
	doneBy   map[int]int  // completed jobs by run index (barrier)
	claimed  map[int]bool // run indexes with a ledger entry
	prefix   int          // every index below it has a ledger entry
	refs     int          // batches using the tracker
	notify   chan struct{}
	cancel   func()
	stopped  <-chan struct{}
}

type entry struct {
	rec events.JobRecord
	rev uint64
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (s *Submitter) tracker(ctx context.Context, run string, window bool) (*tracker, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.runs[run]; ok {
		t.refs++
		return t, nil
	}
	t := &tracker{recs: map[string]entry{}, doneBy: map[int]int{}, claimed: map[int]bool{}, refs: 1,
		notify: make(chan struct{}), cancel: func() {}, stopped: closed, watching: window}
	if !window {
		s.runs[run] = t
		return t, nil
	}
	jw, err := s.ledger.WatchRunJobs(ctx, run, func(e ledger.JobEntry) { t.set(e.Key, e.Record, e.Rev) })
	if err != nil {
		return nil, err
	}
	t.cancel, t.stopped = jw.Stop, jw.Done()
	s.runs[run] = t
	return t, nil
}

// release ends one batch's use of its run's tracker; the last one stops its watch.
func (s *Submitter) release(run string) {
	s.mu.Lock()
	t := s.runs[run]
	if t != nil {
		if t.refs--; t.refs > 0 {
			t = nil
		} else {
			delete(s.runs, run)
		}
	}
	s.mu.Unlock()
	if t != nil {
		t.cancel()
	}
}

func (s *Submitter) closeTrackers() {
	s.mu.Lock()
	runs := s.runs
	s.runs = map[string]*tracker{}
	s.mu.Unlock()
	for _, t := range runs {
		t.cancel()
		<-t.stopped
	}
}

// set records a ledger entry unless a newer revision is already known.
func (t *tracker) set(key string, rec events.JobRecord, rev uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.recs[key]
	if had && old.rev >= rev {
		return
	}
	if had {
		t.count(old.rec, -1)
	}
	t.recs[key] = entry{rec, rev}
	t.count(rec, +1)
	if rec.Index >= 0 && !t.claimed[rec.Index] {
		t.claimed[rec.Index] = true
		for t.claimed[t.prefix] {
			t.prefix++
		}
	}
	close(t.notify)
	t.notify = make(chan struct{})
}

func (t *tracker) count(rec events.JobRecord, d int) {
	if rec.Phase == events.PhaseCompleted {
		t.doneBy[rec.Index] += d
		return
	}
	t.active += d
}

func (t *tracker) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.notify
}

// admits says whether job index may be submitted now under the policy.
func (t *tracker) admits(policy string, size, tests, index int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if policy == events.PolicyBarrier {
		k := index / size
		if k == 0 {
			return true
		}
		// Every job of the previous batch (and so of all before it) has completed.
		lo, hi := (k-1)*size, min(k*size, tests)
		done := 0
		for i := lo; i < hi; i++ {
			if t.doneBy[i] > 0 {
				done++
			}
		}
		return done == hi-lo
	}
	return t.active < size
}

// ahead says whether a job may be queued ahead of a full sliding window of size, and
// on which jobs it is then held: every active job, when all of them have a job id and
// none is itself held on jobs that are all still active (one job waits at a time).
func (t *tracker) ahead(size int) ([]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.active != size {
		return nil, false
	}
	active := make(map[string]bool, size)
	ids := make([]string, 0, size)
	for _, e := range t.recs {
		if e.rec.Phase == events.PhaseCompleted {
			continue
		}
		if e.rec.JobID == "" {
			return nil, false // being submitted
		}
		active[e.rec.JobID] = true
		ids = append(ids, e.rec.JobID)
	}
	for _, e := range t.recs {
		if e.rec.Phase == events.PhaseCompleted || len(e.rec.After) == 0 {
			continue
		}
		held := true
		for _, id := range e.rec.After {
			held = held && active[id]
		}
		if held {
			return nil, false
		}
	}
	slices.Sort(ids)
	return ids, true
}

// get returns the ledger entry the tracker knows for key (revision 0: none).
func (t *tracker) get(key string) (events.JobRecord, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.recs[key]
	return e.rec, e.rev
}

// claimedBelow says whether every job of the run before index has a ledger entry, so
// that admitting index now cannot overtake an earlier job.
func (t *tracker) claimedBelow(index int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.prefix >= index
}
