package dashboard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
)

// Follow applies every event of the stream to store, from the oldest kept, then follows
// new ones until ctx ends. caughtUp (may be nil) is called once, when the events that
// were in the stream as Follow started have all been applied. It reads through an ordered
// reader: ephemeral, never acknowledging, invisible to the stages, and reading on when
// its consumer is lost.
func Follow(ctx context.Context, b *bus.Bus, store *Store, log *slog.Logger, caughtUp func()) error {
	if log == nil {
		log = slog.Default()
	}
	var once sync.Once
	ready := func() {
		if caughtUp != nil {
			once.Do(caughtUp)
		}
	}
	r, err := b.Read(ctx, bus.ReadOptions{Ordered: true})
	if err != nil {
		return fmt.Errorf("dashboard: consumer on %s: %w", events.Stream, err)
	}
	if r.Pending() == 0 {
		ready()
	}
	stop := context.AfterFunc(ctx, r.Stop)
	defer stop()
	defer r.Stop()
	for {
		msg, err := r.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, bus.ErrReadStopped) {
				return nil
			}
			return fmt.Errorf("dashboard: reading %s: %w", events.Stream, err)
		}
		if msg.Seq == 0 {
			log.Warn("event without metadata", "subject", msg.Subject)
			continue
		}
		if err := store.Apply(msg.Seq, msg.Subject, msg.Data); err != nil {
			log.Warn("event not understood", "err", err)
		}
		if msg.Pending == 0 {
			ready()
		}
	}
}

// Load fills store with every event the stream holds now, then returns.
func Load(ctx context.Context, b *bus.Bus, store *Store, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- Follow(ctx, b, store, log, func() { close(done) }) }()
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
