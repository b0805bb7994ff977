package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
	if _, err := GetJSON(ctx, b.Jobs, events.Key("r1", "t.1"), &rec); err != nil || rec.Phase != "claimed" {
		t.Fatalf("ledger entry lost across restart: %+v %v", rec, err)
	}
}

func TestUpdateJSONIsAtomicUnderContention(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Connect(ctx, Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				if _, err := UpdateJSON(ctx, b.Runs, "r", func(r *events.RunRecord) error { r.Done++; return nil }); err != nil {
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
	if _, err := b.Runs.Get(ctx, "missing"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}
