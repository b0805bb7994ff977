package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
)

var (
	// ErrReadLost is a reader whose consumer was lost (deleted, or gone with a server
	// or a leader of a cluster): a new reader may read on after the last event seen.
	ErrReadLost = errors.New("reader's consumer lost")
	// ErrReadStopped is Next on a stopped reader.
	ErrReadStopped = errors.New("reader stopped")
)

// ReadOptions choose the stored events a Reader delivers.
type ReadOptions struct {
	// Filter is a subject filter (default: every event).
	Filter string
	// AfterSeq starts after this stream sequence; Since at the first event stored at
	// or after this time. Neither: from the oldest event kept.
	AfterSeq uint64
	Since    time.Time
	// Ordered readers survive the loss of their consumer (the client makes a new one
	// and reads on): for readers that run as long as their process. Otherwise a lost
	// consumer ends reading with ErrReadLost.
	Ordered bool
	// Description names a reader that is not Ordered on the server.
	Description string
}

// Reader reads stored events in stream order, through an ephemeral consumer of its own
// that never acknowledges and that the stages never see.
type Reader struct {
	it      jetstream.MessagesContext
	pending uint64
	done    func() // deletes the consumer (not Ordered)
	stop    sync.Once
}

// Read starts a reader; Stop ends it.
func (b *Bus) Read(ctx context.Context, o ReadOptions) (*Reader, error) {
	filter := cmp.Or(o.Filter, events.Subjects)
	policy, startSeq, startTime := jetstream.DeliverAllPolicy, uint64(0), (*time.Time)(nil)
	switch {
	case o.AfterSeq > 0:
		policy, startSeq = jetstream.DeliverByStartSequencePolicy, o.AfterSeq+1
	case !o.Since.IsZero():
		policy, startTime = jetstream.DeliverByStartTimePolicy, &o.Since
	}
	var cons jetstream.Consumer
	var err error
	done := func() {}
	if o.Ordered {
		cons, err = b.JS.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{filter}, DeliverPolicy: policy, OptStartSeq: startSeq, OptStartTime: startTime,
		})
	} else {
		cons, err = b.Stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
			FilterSubject:     filter,
			DeliverPolicy:     policy,
			OptStartSeq:       startSeq,
			OptStartTime:      startTime,
			AckPolicy:         jetstream.AckNonePolicy,
			InactiveThreshold: time.Minute,
			MemoryStorage:     true,
			Description:       o.Description,
		})
		if err == nil {
			name := cons.CachedInfo().Name
			done = func() {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				_ = b.Stream.DeleteConsumer(dctx, name)
			}
		}
	}
	if err != nil {
		return nil, lost(err)
	}
	r := &Reader{done: done}
	if info := cons.CachedInfo(); info != nil {
		r.pending = info.NumPending
	}
	if r.it, err = cons.Messages(jetstream.PullMaxMessages(500)); err != nil {
		done()
		return nil, lost(err)
	}
	return r, nil
}

// Pending is how many events the reader had to deliver when it started.
func (r *Reader) Pending() uint64 { return r.pending }

// Next waits for the next event. It fails with ErrReadStopped once Stop was called, and
// with ErrReadLost (or a transient error, IsTransient) when the consumer went away.
func (r *Reader) Next() (Message, error) {
	m, err := r.it.Next()
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return Message{}, ErrReadStopped
		}
		return Message{}, lost(err)
	}
	msg := Message{Subject: m.Subject(), Data: m.Data()}
	if md, err := m.Metadata(); err == nil {
		msg.Seq, msg.Time, msg.Pending = md.Sequence.Stream, md.Timestamp, md.NumPending
	}
	return msg, nil
}

// Stop ends the reader: a Next waiting returns ErrReadStopped. Stop may be called more
// than once, from any goroutine.
func (r *Reader) Stop() {
	r.stop.Do(func() {
		r.it.Stop()
		r.done()
	})
}

// lost names the errors of a consumer that went away ErrReadLost.
func lost(err error) error {
	if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) {
		return fmt.Errorf("%w: %w", ErrReadLost, err)
	}
	return err
}

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

// StreamStatus is what a stream (the event stream or a KV bucket's) holds and where.
type StreamStatus struct {
	Replicas int
	Msgs     uint64
	Leader   string       // the cluster's leader for the stream ("" when not clustered)
	Peers    []StreamPeer // the other replicas
}

// StreamPeer is a replica of a stream other than its leader.
type StreamPeer struct {
	Name    string
	Current bool // caught up with the leader
	Offline bool
}

// StreamStatus reads the status of the stream named name (events.Stream, or "KV_" and
// a bucket's name).
func (b *Bus) StreamStatus(ctx context.Context, name string) (StreamStatus, error) {
	st, err := b.JS.Stream(ctx, name)
	if err != nil {
		return StreamStatus{}, err
	}
	info := st.CachedInfo()
	s := StreamStatus{Replicas: info.Config.Replicas, Msgs: info.State.Msgs}
	if cl := info.Cluster; cl != nil {
		s.Leader = cl.Leader
		for _, r := range cl.Replicas {
			s.Peers = append(s.Peers, StreamPeer{Name: r.Name, Current: r.Current, Offline: r.Offline})
		}
	}
	return s, nil
}
