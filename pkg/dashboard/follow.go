package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// Follow applies every event of the stream to store, from the oldest kept, then follows
// new ones until ctx ends. caughtUp (may be nil) is called once, when the events that
// were in the stream as Follow started have all been applied. It reads through an ordered
// consumer: ephemeral, never acknowledging, invisible to the stages.
func Follow(ctx context.Context, js jetstream.JetStream, store *Store, log *slog.Logger, caughtUp func()) error {
	if log == nil {
		log = slog.Default()
	}
	var once sync.Once
	ready := func() {
		if caughtUp != nil {
			once.Do(caughtUp)
		}
	}
	stream, err := js.Stream(ctx, events.Stream)
	if err != nil {
		return fmt.Errorf("dashboard: stream %s: %w", events.Stream, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("dashboard: stream %s: %w", events.Stream, err)
	}
	if info.State.Msgs == 0 {
		ready()
	}
	cons, err := js.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.Subjects},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return fmt.Errorf("dashboard: consumer on %s: %w", events.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("dashboard: consumer on %s: %w", events.Stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("dashboard: reading %s: %w", events.Stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			log.Warn("event without metadata", "subject", msg.Subject(), "err", err)
			continue
		}
		if err := store.Apply(meta.Sequence.Stream, msg.Subject(), msg.Data()); err != nil {
			log.Warn("event not understood", "err", err)
		}
		if meta.NumPending == 0 {
			ready()
		}
	}
}

// Load fills store with every event the stream holds now, then returns.
func Load(ctx context.Context, js jetstream.JetStream, store *Store, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, js, store, log, func() { close(done) }) }()
	select {
	case <-done:
		cancel()
		<-errc
		return nil
	case err := <-errc:
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = errors.New("dashboard: stopped before the history was read")
		}
		return err
	}
}
