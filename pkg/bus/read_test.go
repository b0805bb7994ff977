package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// next reads one event within a few seconds.
func next(t *testing.T, r *Reader) (Message, error) {
	t.Helper()
	type res struct {
		m   Message
		err error
	}
	c := make(chan res, 1)
	go func() {
		m, err := r.Next()
		c <- res{m, err}
	}()
	select {
	case x := <-c:
		return x.m, x.err
	case <-time.After(5 * time.Second):
		r.Stop()
		t.Fatal("no event within 5s")
		return Message{}, nil
	}
}

func publishStarted(t *testing.T, ctx context.Context, b *Bus, run string, i int) {
	t.Helper()
	if err := b.Publish(ctx, events.RunStartedSubject(run), fmt.Sprint(run, i), events.RunStarted{Header: events.NewHeader(run), Tests: i}); err != nil {
		t.Fatal(err)
	}
}

// A reader delivers the filter's events in stream order from where it is asked to start,
// says how many it had to deliver, and ends on Stop; its consumer goes with it.
func TestReaderStartsWhereAskedAndStops(t *testing.T) {
	ctx, b := embedded(t)
	for i := range 3 {
		publishStarted(t, ctx, b, "r1", i)
		publishStarted(t, ctx, b, "r2", i)
	}
	r, err := b.Read(ctx, ReadOptions{Filter: events.RunFilter("r1")})
	if err != nil {
		t.Fatal(err)
	}
	if r.Pending() != 3 {
		t.Fatalf("Pending = %d, want 3", r.Pending())
	}
	var seqs []uint64
	for want := 2; want >= 0; want-- {
		m, err := next(t, r)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != events.RunStartedSubject("r1") || m.Pending != uint64(want) || m.Seq == 0 || m.Time.IsZero() {
			t.Fatalf("event %+v, want r1's with %d after it", m, want)
		}
		seqs = append(seqs, m.Seq)
	}
	r.Stop()
	if _, err := next(t, r); !errors.Is(err, ErrReadStopped) {
		t.Fatalf("Next after Stop: %v, want ErrReadStopped", err)
	}
	for ci := range b.Stream.ListConsumers(ctx).Info() {
		t.Errorf("consumer %s left behind", ci.Name)
	}

	after, err := b.Read(ctx, ReadOptions{Filter: events.RunFilter("r1"), AfterSeq: seqs[0]})
	if err != nil {
		t.Fatal(err)
	}
	defer after.Stop()
	if m, err := next(t, after); err != nil || m.Seq != seqs[1] || after.Pending() != 2 {
		t.Fatalf("after %d: first %+v (%v), pending %d; want seq %d of 2", seqs[0], m, err, after.Pending(), seqs[1])
	}
	since, err := b.Read(ctx, ReadOptions{Since: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	defer since.Stop()
	if since.Pending() != 0 {
		t.Fatalf("an hour ahead: %d pending, want 0", since.Pending())
	}
}

// A reader whose consumer is deleted fails with ErrReadLost (its owner reads on from the
// last event); an ordered reader reads on by itself.
func TestReaderWhoseConsumerIsLost(t *testing.T) {
	ctx, b := embedded(t)
	publishStarted(t, ctx, b, "r1", 0)
	for _, ordered := range []bool{false, true} {
		t.Run(fmt.Sprint("ordered=", ordered), func(t *testing.T) {
			r, err := b.Read(ctx, ReadOptions{Filter: events.RunFilter("r1"), Ordered: ordered})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop()
			first, err := next(t, r)
			if err != nil {
				t.Fatal(err)
			}
			for name := range b.Stream.ConsumerNames(ctx).Name() {
				if err := b.Stream.DeleteConsumer(ctx, name); err != nil {
					t.Fatal(err)
				}
			}
			publishStarted(t, ctx, b, "r1", int(first.Seq)+1)
			m, err := next(t, r)
			if !ordered {
				if !errors.Is(err, ErrReadLost) {
					t.Fatalf("Next after the consumer was deleted: %+v, %v; want ErrReadLost", m, err)
				}
				return
			}
			if err != nil || m.Seq <= first.Seq {
				t.Fatalf("ordered reader after the consumer was deleted: %+v, %v; want the next event", m, err)
			}
		})
	}
}
