package plan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
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
			Request: scheduler.JobRequest{Name: run + "." + id},
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

// publishedOrder publishes p and reads its jobs back from the batch events, in order.
func publishedOrder(t *testing.T, ctx context.Context, b *bus.Bus, p *plan.Plan) []string {
	t.Helper()
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	cons, err := b.JS.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.BatchSubject(p.RunID, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.Batch
	if err := json.Unmarshal(m.Data(), &ev); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, j := range ev.Jobs {
		if j.Index != i {
			t.Errorf("job %s at position %d has index %d", j.TestID, i, j.Index)
		}
		ids = append(ids, j.TestID)
	}
	return ids
}

// With durations on record, a run's jobs go longest expected first; a test without
// history is placed at the median of the others; without any history the file order
// stays, and --order file keeps it whatever the history.
func TestPublishOrdersLongestFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	newPlan := func(run, order string) *plan.Plan {
		p := &plan.Plan{RunID: run, Policy: events.PolicySliding, Order: order,
			Started: events.RunStarted{Header: events.NewHeader(run), Tests: 5, Policy: events.PolicySliding}}
		for i, id := range []string{"a", "b", "c", "d", "e"} {
			p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: id, GPUType: "GB200", TimeLimit: time.Hour})
		}
		return p
	}
	if got := publishedOrder(t, ctx, b, newPlan("r0", "")); !reflect.DeepEqual(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("no history: order %v", got)
	}
	for id, secs := range map[string][]float64{"a": {10, 12, 11}, "b": {100}, "d": {30, 50}, "e": {5}} {
		data, _ := json.Marshal(events.DurationHistory{Seconds: secs})
		if _, err := b.History.Put(ctx, events.HistoryKey(id, "GB200"), data); err != nil {
			t.Fatal(err)
		}
	}
	// c (no history) takes the median of 11, 100, 40 and 5: 25.5, between d and a.
	p := newPlan("r1", "")
	if got := publishedOrder(t, ctx, b, p); !reflect.DeepEqual(got, []string{"b", "d", "c", "a", "e"}) || p.Order != plan.OrderLPT || p.Known != 4 {
		t.Errorf("lpt: order %v (%s, %d known)", got, p.Order, p.Known)
	}
	if got := publishedOrder(t, ctx, b, newPlan("r2", plan.OrderFile)); !reflect.DeepEqual(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("--order file: order %v", got)
	}
}

func TestDurationHistoryKeepsTheLatest(t *testing.T) {
	var h events.DurationHistory
	for i := 1; i <= 7; i++ {
		h.Add(float64(i))
	}
	if !reflect.DeepEqual(h.Seconds, []float64{3, 4, 5, 6, 7}) || h.Median() != 5 {
		t.Errorf("history %v, median %v", h.Seconds, h.Median())
	}
}

// Event lines and the summary read well: "1 test", no "job  (...)" for a test without a
// job, and an invalid test's first error rather than its file's path.
func TestProgressWording(t *testing.T) {
	if progress.Count(1, "test") != "1 test" || progress.Count(2, "test") != "2 tests" || progress.Count(0, "test") != "0 tests" {
		t.Error("Count")
	}
	p := &progress.Progress{Tests: map[string]*progress.TestProgress{"disagg_perf_x": {State: events.StateInvalid,
		Result: &events.Result{TestID: "disagg_perf_x", State: events.StateInvalid,
			Reasons: []string{"test_configs/disagg/perf/x.yaml:12:5: benchmark.streaming: must be true"}}}}}
	s := p.Summary()
	if !strings.Contains(s, "benchmark.streaming: must be true") || strings.Contains(s, "x.yaml:12") || !strings.Contains(s, "1 test:") {
		t.Errorf("summary:\n%s", s)
	}
}
