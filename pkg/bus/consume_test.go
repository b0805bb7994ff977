package bus

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// logBuffer collects a logger's lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// consuming runs fn's consume loop until the test ends (or stop is called) and waits
// for it to return.
func consuming(t *testing.T, ctx context.Context, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(cctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func publishBatch(t *testing.T, ctx context.Context, b *Bus, run string, i int) {
	t.Helper()
	ev := events.Batch{Header: events.NewHeader(run), Index: i, Total: i + 1, Tests: 1, Jobs: []events.JobSpec{{TestID: "t1"}}}
	if err := b.Publish(ctx, events.BatchSubject(run, i), events.BatchID(run, i), ev); err != nil {
		t.Fatal(err)
	}
}

// A message that does not decode is terminated at its first delivery, never handed to
// the stage, never redelivered, and its reason is logged once.
func TestConsumeEventsTermsMalformedOnceWithItsReason(t *testing.T) {
	ctx, b := embedded(t)
	if _, err := b.JS.Publish(ctx, events.BatchSubject("r", 0), []byte(`{"schema_version":`)); err != nil {
		t.Fatal(err)
	}
	publishBatch(t, ctx, b, "r", 1)
	cons, err := b.Consumer(ctx, "c", "test", events.BatchFilter, 500*time.Millisecond, 10)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	var mu sync.Mutex
	var got []int
	opts := ConsumeOptions{Stage: "test", What: "batch", Batch: 10, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	consuming(t, ctx, func(ctx context.Context) error {
		return ConsumeEvents(ctx, cons, opts, events.DecodeBatch, func(d *Delivery, ev *events.Batch) {
			mu.Lock()
			got = append(got, ev.Index)
			mu.Unlock()
			_ = d.Ack()
		})
	})
	waitFor(t, 10*time.Second, "the valid batch handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	// Three ack-waits: a message left unsettled would have come back by now.
	time.Sleep(1500 * time.Millisecond)
	if n := logs.count("malformed batch; terminating it"); n != 1 {
		t.Fatalf("malformed batch logged %d times, want once:\n%s", n, logs.b.String())
	}
	if n := logs.count("undecodable batch"); n != 1 {
		t.Fatalf("the reason is logged %d times, want once:\n%s", n, logs.b.String())
	}
	mu.Lock()
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("handled %v, want only the valid batch 1", got)
	}
	mu.Unlock()
	n, err := cons.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Pending != 0 || n.AckPending != 0 || n.Redelivered != 0 {
		t.Fatalf("consumer counts %+v: the malformed message is not settled for good", n)
	}
}

// A message delivered MaxDeliveries times without being settled is terminated at the
// next delivery, with one log line, and the stage does not see it again.
func TestConsumeTermsPoisonAfterMaxDeliveries(t *testing.T) {
	ctx, b := embedded(t)
	publishBatch(t, ctx, b, "r", 0)
	cons, err := b.Consumer(ctx, "c", "test", events.BatchFilter, 30*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	var mu sync.Mutex
	var deliveries []uint64
	opts := ConsumeOptions{Stage: "test", What: "batch", Batch: 1, MaxDeliveries: 3, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	consuming(t, ctx, func(ctx context.Context) error {
		return ConsumeEvents(ctx, cons, opts, events.DecodeBatch, func(d *Delivery, _ *events.Batch) {
			mu.Lock()
			deliveries = append(deliveries, d.NumDelivered)
			mu.Unlock()
			_ = d.Nak() // fails every time
		})
	})
	waitFor(t, 10*time.Second, "poison terminated", func() bool { return logs.count("delivered too many times") > 0 })
	time.Sleep(500 * time.Millisecond) // a redelivery would come at once (Nak)
	mu.Lock()
	if len(deliveries) != 3 || deliveries[0] != 1 || deliveries[2] != 3 {
		t.Fatalf("the stage saw deliveries %v, want 1, 2, 3", deliveries)
	}
	mu.Unlock()
	if n := logs.count("delivered too many times"); n != 1 {
		t.Fatalf("poison logged %d times, want once:\n%s", n, logs.b.String())
	}
	if !strings.Contains(logs.b.String(), "poison: delivered 3 times") {
		t.Fatalf("the reason is not logged:\n%s", logs.b.String())
	}
	if n, err := cons.Counts(ctx); err != nil || n.Pending != 0 || n.AckPending != 0 {
		t.Fatalf("consumer counts %+v (%v): the poison message is not settled for good", n, err)
	}
}

// NakAfter hands a message back to be redelivered no sooner than after the delay.
func TestNakAfterRedeliversAfterTheDelay(t *testing.T) {
	ctx, b := embedded(t)
	publishBatch(t, ctx, b, "r", 0)
	cons, err := b.Consumer(ctx, "c", "test", events.BatchFilter, 30*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	const delay = 800 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	var nums []uint64
	consuming(t, ctx, func(ctx context.Context) error {
		return Consume(ctx, cons, ConsumeOptions{Stage: "test", What: "batch", Batch: 1}, func(d *Delivery) {
			mu.Lock()
			at, nums = append(at, time.Now()), append(nums, d.NumDelivered)
			first := len(at) == 1
			mu.Unlock()
			if first {
				_ = d.NakAfter(delay)
				return
			}
			_ = d.Ack()
		})
	})
	waitFor(t, 10*time.Second, "the redelivery", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(at) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if gap := at[1].Sub(at[0]); gap < delay {
		t.Fatalf("redelivered after %v, want at least %v", gap, delay)
	}
	if nums[0] != 1 || nums[1] != 2 {
		t.Fatalf("delivery counts %v, want 1 then 2", nums)
	}
}

// A delivery held unsettled gets in-progress acknowledgements: it is not redelivered
// after its ack-wait, also once the consume loop has returned, and it is settled later
// through its handle. Without heartbeats the same hold loses it after one ack-wait.
func TestHeldDeliveryIsKeptBeyondAckWaitAndSettledLater(t *testing.T) {
	const ackWait = 500 * time.Millisecond
	for _, tc := range []struct {
		name      string
		heartbeat time.Duration
	}{{"heartbeats", ackWait / 4}, {"none", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, b := embedded(t)
			publishBatch(t, ctx, b, "r", 0)
			cons, err := b.Consumer(ctx, "c", "test", events.BatchFilter, ackWait, 10)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var held []*Delivery
			opts := ConsumeOptions{Stage: "test", What: "batch", Batch: 1, Heartbeat: tc.heartbeat}
			stop := consuming(t, ctx, func(ctx context.Context) error {
				return Consume(ctx, cons, opts, func(d *Delivery) {
					mu.Lock()
					defer mu.Unlock()
					held = append(held, d) // kept, not settled
				})
			})
			waitFor(t, 10*time.Second, "the delivery", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == 1
			})
			time.Sleep(4 * ackWait)
			mu.Lock()
			n := len(held)
			mu.Unlock()
			if tc.heartbeat == 0 {
				if n < 2 {
					t.Fatalf("without heartbeats a held delivery was not redelivered after %v (ack-wait %v)", 4*ackWait, ackWait)
				}
				return
			}
			if n != 1 {
				t.Fatalf("a held delivery was redelivered %d times within %v despite heartbeats", n-1, 4*ackWait)
			}
			stop() // the loop returns; the delivery is still held
			time.Sleep(4 * ackWait)
			if c, err := cons.Counts(ctx); err != nil || c.AckPending != 1 || c.Redelivered != 0 || c.Pending != 0 {
				t.Fatalf("after the loop returned: counts %+v (%v), want the one delivery still held", c, err)
			}
			if err := held[0].AckSync(ctx); err != nil {
				t.Fatal(err)
			}
			if c, err := cons.Counts(ctx); err != nil || c.AckPending != 0 || c.Pending != 0 {
				t.Fatalf("after Ack: counts %+v (%v)", c, err)
			}
		})
	}
}
