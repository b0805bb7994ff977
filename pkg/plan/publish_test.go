package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/slurm"
)

// A run too big for one message is published in batches that each stay under the limit
// and, read back as events.Batch, hold every job exactly as planned, in order.
func TestPublishSplitsBigRunsAndKeepsJobsIntact(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 1500
	run := "big"
	p := &plan.Plan{RunID: run, Policy: events.PolicySliding,
		Started: events.RunStarted{Header: events.NewHeader(run), Tests: n, Policy: events.PolicySliding}}
	for i := range n {
		id := fmt.Sprintf("disagg_perf_t%04d", i)
		p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: id, Concurrencies: []int{1, 8},
			Request: slurm.JobRequest{Name: run + "." + id},
			Files:   []events.File{{Name: "job.sh", Data: bytes.Repeat([]byte{byte(i)}, 1024), Mode: 0o755}}})
	}
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	cons, err := b.JS.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"bench.batches.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []events.JobSpec
	batches := 0
	for len(got) < n {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("after %d jobs: %v", len(got), err)
		}
		if len(m.Data()) > 600<<10 {
			t.Errorf("batch %s is %d bytes", m.Subject(), len(m.Data()))
		}
		var ev events.Batch
		if err := json.Unmarshal(m.Data(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Index != batches || ev.Tests != n {
			t.Fatalf("batch %d says index %d of a run of %d", batches, ev.Index, ev.Tests)
		}
		batches++
		got = append(got, ev.Jobs...)
	}
	if batches < 3 {
		t.Fatalf("%d batches for %d jobs of over 1 KiB: not split", batches, n)
	}
	if !reflect.DeepEqual(got, p.Specs) {
		t.Fatal("the jobs read back differ from the ones published")
	}
}
