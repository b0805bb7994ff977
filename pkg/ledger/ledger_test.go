package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

func connect(t *testing.T) (context.Context, *bus.Bus, *Ledger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return ctx, b, New(b)
}

func TestJobCreateReadUpdateAndConflicts(t *testing.T) {
	ctx, b, l := connect(t)
	if _, _, err := l.Job(ctx, "r1", "t1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing record: %v, want ErrNotFound", err)
	}
	rec := events.JobRecord{RunID: "r1", TestID: "t1", Index: 3, Phase: events.PhaseClaimed, Owner: "a"}
	rev, err := l.CreateJob(ctx, rec)
	if err != nil || rev == 0 {
		t.Fatalf("create: rev %d, %v", rev, err)
	}
	if _, err := l.CreateJob(ctx, events.JobRecord{RunID: "r1", TestID: "t1", Owner: "b"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	got, grev, err := l.Job(ctx, "r1", "t1")
	if err != nil || grev != rev || got.Owner != "a" || got.Index != 3 {
		t.Fatalf("read: %+v rev %d (want %d), %v", got, grev, rev, err)
	}
	// The record sits where the stages and the tests expect it.
	if e, err := b.Jobs.Get(ctx, events.Key("r1", "t1")); err != nil || e.Revision() != rev {
		t.Fatalf("KV key %s: %v", events.Key("r1", "t1"), err)
	}
	got.Phase, got.JobID = events.PhaseSubmitted, "42"
	nrev, err := l.UpdateJob(ctx, "r1", "t1", got, rev)
	if err != nil || nrev <= rev {
		t.Fatalf("update: rev %d, %v", nrev, err)
	}
	got.JobID = "43"
	if _, err := l.UpdateJob(ctx, "r1", "t1", got, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("update over a stale revision: %v, want ErrConflict", err)
	}
	if got, _, _ := l.Job(ctx, "r1", "t1"); got.JobID != "42" {
		t.Fatalf("a refused update was written: %+v", got)
	}
	if _, err := l.UpdateJob(ctx, "r1", "nope", got, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("update of a missing record: %v, want ErrConflict", err)
	}
}

func TestMutateJobFromManyGoroutinesLosesNoUpdate(t *testing.T) {
	ctx, _, l := connect(t)
	const workers, each = 6, 15
	var created, calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				_, _, err := l.MutateJob(ctx, "r", "shared", func(rec *events.JobRecord, found bool) error {
					calls.Add(1)
					if !found {
						created.Add(1)
						rec.RunID, rec.TestID = "r", "shared"
					}
					rec.Index++
					rec.Owner = fmt.Sprint("w", w)
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rec, _, err := l.Job(ctx, "r", "shared")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Index != workers*each {
		t.Fatalf("counter %d after %d increments: updates were lost", rec.Index, workers*each)
	}
	if created.Load() < 1 || calls.Load() < workers*each {
		t.Fatalf("created %d, calls %d", created.Load(), calls.Load())
	}
	t.Logf("%d increments took %d calls (%d retries after a conflict)", workers*each, calls.Load(), calls.Load()-workers*each)
}

func TestMutateJobSkipAndErrorsWriteNothing(t *testing.T) {
	ctx, _, l := connect(t)
	rev, err := l.CreateJob(ctx, events.JobRecord{RunID: "r", TestID: "t", Phase: events.PhaseCompleted})
	if err != nil {
		t.Fatal(err)
	}
	rec, srev, err := l.MutateJob(ctx, "r", "t", func(r *events.JobRecord, found bool) error {
		if !found || r.Phase != events.PhaseCompleted {
			t.Errorf("fn saw %+v, found %v", r, found)
		}
		return ErrSkip
	})
	if err != nil || srev != rev || rec.Phase != events.PhaseCompleted {
		t.Fatalf("skip: %+v rev %d (want %d), %v", rec, srev, rev, err)
	}
	boom := errors.New("boom")
	if _, _, err := l.MutateJob(ctx, "r", "t", func(r *events.JobRecord, _ bool) error {
		r.State = "changed"
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("fn's error: %v", err)
	}
	if _, _, err := l.MutateJob(ctx, "r", "other", func(*events.JobRecord, bool) error { return ErrSkip }); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Job(ctx, "r", "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a skipped mutation created a record: %v", err)
	}
	if got, grev, _ := l.Job(ctx, "r", "t"); grev != rev || got.State != "" {
		t.Fatalf("record changed: %+v rev %d", got, grev)
	}
}

func TestUndecodableJobKeepsItsRevision(t *testing.T) {
	ctx, b, l := connect(t)
	rev, err := b.Jobs.Put(ctx, events.Key("r", "t"), []byte("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	_, grev, err := l.Job(ctx, "r", "t")
	if err == nil || errors.Is(err, ErrNotFound) || grev != rev {
		t.Fatalf("garbage: rev %d (want %d), %v", grev, rev, err)
	}
	// It can be written over with the revision read.
	if _, err := l.UpdateJob(ctx, "r", "t", events.JobRecord{RunID: "r", TestID: "t", Phase: events.PhaseCompleted}, grev); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.MutateJob(ctx, "r", "t", func(*events.JobRecord, bool) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestRunRecords(t *testing.T) {
	ctx, _, l := connect(t)
	if _, err := l.Run(ctx, "r.1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.MutateRun(ctx, "r.1", func(r *events.RunRecord) error {
				r.RunID, r.Tests = "r.1", 7
				r.Done++
				return nil
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	rec, err := l.Run(ctx, "r.1")
	if err != nil || rec.Done != 5 || rec.Tests != 7 || rec.RunID != "r.1" {
		t.Fatalf("run: %+v, %v", rec, err)
	}
}

func TestResultClaims(t *testing.T) {
	ctx, _, l := connect(t)
	first := ResultClaim{CSV: results.CSVClaim{Offset: 10}, Rows: 2}
	cl, rev, err := l.ClaimResult(ctx, "r", "t", first)
	if err != nil || rev == 0 || cl != first {
		t.Fatalf("claim: %+v rev %d, %v", cl, rev, err)
	}
	// A redelivery finds the earlier claim, not its own.
	again, arev, err := l.ClaimResult(ctx, "r", "t", ResultClaim{CSV: results.CSVClaim{Offset: 99}, Rows: 5})
	if err != nil || arev != rev || again != first {
		t.Fatalf("second claim: %+v rev %d, %v", again, arev, err)
	}
	again.Done, again.Passed, again.Parquet = true, true, "part-1.parquet"
	nrev, err := l.UpdateResultClaim(ctx, "r", "t", again, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.UpdateResultClaim(ctx, "r", "t", first, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale claim update: %v, want ErrConflict", err)
	}
	got, grev, err := l.ClaimResult(ctx, "r", "t", first)
	if err != nil || grev != nrev || got != again {
		t.Fatalf("claim after update: %+v rev %d, %v", got, grev, err)
	}
}

func TestHistory(t *testing.T) {
	ctx, b, l := connect(t)
	for _, s := range []float64{10, 20} {
		if err := l.MutateHistory(ctx, "t1", "GB200", func(h *events.DurationHistory) error {
			h.Add(s)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.MutateHistory(ctx, "t2", "H100", func(h *events.DurationHistory) error {
		h.Add(5)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.History.Put(ctx, "t3.GB200", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	all, err := l.AllHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := all[events.HistoryKey("t1", "GB200")]
	if len(all) != 2 || len(h.Seconds) != 2 || h.Seconds[1] != 20 || len(all[events.HistoryKey("t2", "H100")].Seconds) != 1 {
		t.Fatalf("history: %+v", all)
	}
	// A connection without the bucket has no history and records none.
	none := New(&bus.Bus{})
	if all, err := none.AllHistory(ctx); err != nil || len(all) != 0 {
		t.Fatalf("no bucket: %v, %v", all, err)
	}
	if err := none.MutateHistory(ctx, "t", "g", func(*events.DurationHistory) error { return errors.New("called") }); err != nil {
		t.Fatal(err)
	}
}

// collector gathers what a watch delivers.
type collector struct {
	mu   sync.Mutex
	got  map[string]JobEntry
	seen chan struct{}
}

func newCollector() *collector {
	return &collector{got: map[string]JobEntry{}, seen: make(chan struct{}, 100)}
}

func (c *collector) add(e JobEntry) {
	c.mu.Lock()
	c.got[e.Key] = e
	c.mu.Unlock()
	select {
	case c.seen <- struct{}{}:
	default:
	}
}

func (c *collector) get(key string) (JobEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.got[key]
	return e, ok
}

// waitFor waits until the watch delivered key at revision rev.
func (c *collector) waitFor(t *testing.T, key string, rev Rev) JobEntry {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if e, ok := c.get(key); ok && e.Rev == rev {
			return e
		}
		select {
		case <-c.seen:
		case <-deadline:
			e, _ := c.get(key)
			t.Fatalf("watch never delivered %s at rev %d (has %+v)", key, rev, e)
		}
	}
}

func TestWatchRunJobs(t *testing.T) {
	ctx, b, l := connect(t)
	r1, err := l.CreateJob(ctx, events.JobRecord{RunID: "run", TestID: "a", Phase: events.PhaseClaimed})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateJob(ctx, events.JobRecord{RunID: "other", TestID: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Jobs.Put(ctx, events.Key("run", "junk"), []byte("junk")); err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	w, err := l.WatchRunJobs(ctx, "run", c.add)
	if err != nil {
		t.Fatal(err)
	}
	// The current records are there when it returns.
	if e, ok := c.get(events.Key("run", "a")); !ok || e.Rev != r1 || e.Record.Phase != events.PhaseClaimed {
		t.Fatalf("initial: %+v", c.got)
	}
	rec := events.JobRecord{RunID: "run", TestID: "b", Phase: events.PhaseClaimed}
	rb, err := l.CreateJob(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, events.Key("run", "b"), rb)
	rec.Phase = events.PhaseSubmitted
	rb, err = l.UpdateJob(ctx, "run", "b", rec, rb)
	if err != nil {
		t.Fatal(err)
	}
	if e := c.waitFor(t, events.Key("run", "b"), rb); e.Record.Phase != events.PhaseSubmitted {
		t.Fatalf("update: %+v", e)
	}
	if err := b.Jobs.Delete(ctx, events.Key("run", "a")); err != nil {
		t.Fatal(err)
	}
	w.Stop()
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not end the watch")
	}
	if _, ok := c.get(events.Key("other", "a")); ok {
		t.Fatal("another run's record was delivered")
	}
	if _, ok := c.get(events.Key("run", "junk")); ok {
		t.Fatal("an undecodable record was delivered")
	}
	if e, _ := c.get(events.Key("run", "a")); e.Rev != r1 {
		t.Fatalf("a deletion was delivered: %+v", e)
	}
}

// droppingKV hands out watches that the test can end, as a lost connection does.
type droppingKV struct {
	jetstream.KeyValue
	mu      sync.Mutex
	watches int
	last    *droppingWatcher
}

func (d *droppingKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w, err := d.KeyValue.Watch(ctx, keys, opts...)
	if err != nil {
		return nil, err
	}
	dw := &droppingWatcher{KeyWatcher: w, out: make(chan jetstream.KeyValueEntry), drop: make(chan struct{}), mute: make(chan struct{})}
	d.mu.Lock()
	d.watches++
	d.last = dw
	d.mu.Unlock()
	go dw.forward()
	return dw, nil
}

func (d *droppingKV) dropLast() {
	d.mu.Lock()
	defer d.mu.Unlock()
	_ = d.last.Stop()
}

// muteLast makes the latest watch silent without ending it, as a watch whose bucket
// leader moved away is.
func (d *droppingKV) muteLast() {
	d.mu.Lock()
	defer d.mu.Unlock()
	close(d.last.mute)
}

func (d *droppingKV) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.watches
}

type droppingWatcher struct {
	jetstream.KeyWatcher
	out  chan jetstream.KeyValueEntry
	drop chan struct{}
	mute chan struct{}
	once sync.Once
}

func (w *droppingWatcher) forward() {
	defer close(w.out)
	for {
		select {
		case <-w.drop:
			_ = w.KeyWatcher.Stop()
			return
		case <-w.mute:
			<-w.drop // silent until dropped
			_ = w.KeyWatcher.Stop()
			return
		case e, ok := <-w.KeyWatcher.Updates():
			if !ok {
				return
			}
			select {
			case w.out <- e:
			case <-w.drop:
				_ = w.KeyWatcher.Stop()
				return
			}
		}
	}
}

func (w *droppingWatcher) Updates() <-chan jetstream.KeyValueEntry { return w.out }

func (w *droppingWatcher) Stop() error {
	w.once.Do(func() { close(w.drop) })
	return nil
}

func TestWatchRunJobsStartsAgainWhenTheWatchEnds(t *testing.T) {
	defer func(d time.Duration) { resync = d }(resync)
	resync = 200 * time.Millisecond
	ctx, b, l := connect(t)
	kv := &droppingKV{KeyValue: b.Jobs}
	b.Jobs = kv
	c := newCollector()
	w, err := l.WatchRunJobs(ctx, "run", c.add)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	kv.dropLast()
	// A change made while no watch runs arrives through the next one.
	rev, err := l.CreateJob(ctx, events.JobRecord{RunID: "run", TestID: "late", Phase: events.PhaseClaimed})
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, events.Key("run", "late"), rev)
	if n := kv.count(); n < 2 {
		t.Fatalf("%d watches started, want a second", n)
	}
	select {
	case <-w.Done():
		t.Fatal("the watch stopped after a drop")
	default:
	}
}

func TestWatchRunJobsReplacesASilentWatch(t *testing.T) {
	defer func(d time.Duration) { resync = d }(resync)
	resync = 200 * time.Millisecond
	ctx, b, l := connect(t)
	kv := &droppingKV{KeyValue: b.Jobs}
	b.Jobs = kv
	c := newCollector()
	w, err := l.WatchRunJobs(ctx, "run", c.add)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	kv.muteLast()
	rev, err := l.CreateJob(ctx, events.JobRecord{RunID: "run", TestID: "unheard", Phase: events.PhaseClaimed})
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor(t, events.Key("run", "unheard"), rev)
	if n := kv.count(); n < 2 {
		t.Fatalf("%d watches started, want a second", n)
	}
}

// Concurrent read-modify-writes of one run record through compare-and-set lose no update,
// and GetJSON reads the record as stored.
func TestMutateRunIsAtomicUnderContention(t *testing.T) {
	ctx, b, l := connect(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := l.MutateRun(ctx, "r", func(r *events.RunRecord) error { r.Done++; return nil }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var rec events.RunRecord
	if _, err := GetJSON(ctx, b.Runs, "r", &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Done != 200 {
		t.Fatalf("Done = %d after 200 concurrent increments", rec.Done)
	}
	if _, err := GetJSON(ctx, b.Runs, "missing", &rec); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}
