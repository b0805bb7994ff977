package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LastPerSubject counts the subjects matching filter that hold a message and, with fn,
// calls it with each one's newest message, oldest first. Counting is one request to the
// server, whatever the number of subjects.
func (b *Bus) LastPerSubject(ctx context.Context, filter string, fn func(Message) error) (int, error) {
	cons, err := b.Stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     filter,
		DeliverPolicy:     jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, fmt.Errorf("last per subject %s: %w", filter, err)
	}
	info := cons.CachedInfo()
	defer func() { _ = b.Stream.DeleteConsumer(context.WithoutCancel(ctx), info.Name) }()
	// A new consumer that delivers the last message per subject has one pending per
	// subject; messages published since come after them.
	n := int(info.NumPending)
	if fn == nil {
		return n, nil
	}
	for left := n; left > 0; {
		batch, err := cons.Fetch(min(left, 1000), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			return n, fmt.Errorf("last per subject %s: %w", filter, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if left--; left >= 0 {
				msg := Message{Subject: m.Subject(), Data: m.Data()}
				if md, err := m.Metadata(); err == nil {
					msg.Seq, msg.Time, msg.Pending = md.Sequence.Stream, md.Timestamp, md.NumPending
				}
				if err := fn(msg); err != nil {
					return n, err
				}
			}
		}
		if err := batch.Error(); err != nil {
			return n, fmt.Errorf("last per subject %s: %w", filter, err)
		}
		if got == 0 {
			return n, fmt.Errorf("last per subject %s: %d of %d messages not delivered", filter, left, n)
		}
	}
	return n, nil
}
