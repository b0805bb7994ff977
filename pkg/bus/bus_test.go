package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

func TestEmbeddedStoreSurvivesRestartAndProvisionIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Connect(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	subj := events.RunStartedSubject("r1")
	for range 2 { // the second publish has the same id and is dropped
		if err := b.Publish(ctx, subj, events.StartedID("r1"), events.RunStarted{Header: events.NewHeader("r1"), Tests: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Jobs.Put(ctx, events.Key("r1", "t.1"), []byte(`{"phase":"claimed"}`)); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b, err = Connect(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after a duplicate publish and a restart, want 1", info.State.Msgs)
	}
	var rec events.JobRecord
	e, err := b.Jobs.Get(ctx, events.Key("r1", "t.1"))
	if err == nil {
		err = json.Unmarshal(e.Value(), &rec)
	}
	if err != nil || rec.Phase != "claimed" {
		t.Fatalf("ledger entry lost across restart: %+v %v", rec, err)
	}
}

// LastPerSubject counts distinct subjects (not messages), ignores other subjects, and
// hands over the newest message of each.
func TestLastPerSubject(t *testing.T) {
	ctx, b := embedded(t)
	filter := events.RunResultsFilter("r1")
	if n, err := b.LastPerSubject(ctx, filter, nil); err != nil || n != 0 {
		t.Fatalf("empty: n=%d err=%v", n, err)
	}
	const tests = 2500
	for i := range tests {
		test := fmt.Sprintf("t%04d", i)
		for v := range 1 + i%3 { // repeats with new ids: only the newest counts
			res := events.Result{Header: events.NewHeader("r1"), TestID: test, Passed: v%2 == 0}
			if err := b.Publish(ctx, events.ResultSubject("r1", test), fmt.Sprint(test, v), res); err != nil {
				t.Fatal(err)
			}
		}
		other := events.Result{Header: events.NewHeader("r2"), TestID: test}
		if err := b.Publish(ctx, events.ResultSubject("r2", test), "r2"+test, other); err != nil {
			t.Fatal(err)
		}
	}
	n, err := b.LastPerSubject(ctx, filter, nil)
	if err != nil || n != tests {
		t.Fatalf("count: n=%d err=%v, want %d", n, err, tests)
	}
	seen := map[string]bool{}
	passed := 0
	n, err = b.LastPerSubject(ctx, filter, func(m Message) error {
		var r events.Result
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return err
		}
		if seen[r.TestID] || r.RunID != "r1" {
			return fmt.Errorf("%s of run %s delivered again or from another run", r.TestID, r.RunID)
		}
		seen[r.TestID] = true
		if r.Passed {
			passed++
		}
		return nil
	})
	if err != nil || n != tests || len(seen) != tests {
		t.Fatalf("read: n=%d seen=%d err=%v", n, len(seen), err)
	}
	// The newest of 1+i%3 versions passes when it is the 1st or 3rd: i%3 != 1.
	want := tests - (tests+1)/3
	if passed != want {
		t.Fatalf("passed = %d, want %d", passed, want)
	}
	// The consumers are gone.
	names := b.Stream.ListConsumers(ctx)
	for ci := range names.Info() {
		t.Errorf("consumer %s left behind", ci.Name)
	}
}

// Consume hands every message to fn once, one at a time; after ctx ends it still hands
// over what the client had pulled (fn hands those back), and returns.
func TestConsumeDeliversAllAndDrainsOnStop(t *testing.T) {
	ctx, b := embedded(t)
	const n = 500
	for i := range n {
		if err := b.Publish(ctx, events.BatchSubject("r", i), events.BatchID("r", i), events.Batch{Index: i}); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := b.Consumer(ctx, "c", "test", events.BatchFilter, 30*time.Second, 1000)
	if err != nil {
		t.Fatal(err)
	}
	opts := ConsumeOptions{Stage: "test", What: "batch", Batch: 1, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	seen := map[string]int{}
	var mu sync.Mutex
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error)
	handedBack := 0
	go func() {
		done <- Consume(cctx, cons, opts, func(m *Delivery) {
			mu.Lock()
			defer mu.Unlock()
			if cctx.Err() != nil {
				handedBack++
				_ = m.Nak()
				return
			}
			seen[m.Subject]++
			_ = m.Ack()
			if len(seen) == n/2 {
				stop()
			}
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	first := len(seen)
	// A second consumer picks up the rest, including what the first handed back.
	cctx, stop = context.WithCancel(ctx)
	opts.Batch = 64
	go func() {
		done <- Consume(cctx, cons, opts, func(m *Delivery) {
			mu.Lock()
			defer mu.Unlock()
			seen[m.Subject]++
			_ = m.Ack()
			if len(seen) == n {
				stop()
			}
		})
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("%d of %d messages seen (first consumer %d, handed back %d)", len(seen), n, first, handedBack)
	}
	for s, k := range seen {
		if k != 1 {
			t.Errorf("%s handled %d times", s, k)
		}
	}
}

// embedded is a bus on a fresh embedded server, closed when the test ends.
func embedded(t *testing.T) (context.Context, *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := Connect(ctx, Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return ctx, b
}
