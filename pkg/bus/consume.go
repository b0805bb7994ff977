package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/obs"
)

// Message is one stored event as a reader sees it.
type Message struct {
	Subject string
	Data    []byte
	Seq     uint64    // the stream sequence (0 when the server gave none)
	Time    time.Time // when the stream stored it
	Pending uint64    // how many of the reader's events come after it, as it was delivered
}

// Delivery is a message of a stage's durable consumer, delivered and not yet settled. A
// stage may hold it as long as it works on it: the consume loop sends in-progress
// acknowledgements for every delivery until one of Ack, AckSync, Nak, NakAfter or Term
// settles it.
type Delivery struct {
	Message
	// NumDelivered counts this delivery and those before it (0 when the server gave
	// no count).
	NumDelivered uint64

	msg  jetstream.Msg
	held *heldSet
}

// Ack acknowledges the delivery without waiting for the server's answer.
func (d *Delivery) Ack() error {
	d.release()
	return d.msg.Ack()
}

// AckSync acknowledges the delivery and waits until the server has recorded it.
func (d *Delivery) AckSync(ctx context.Context) error {
	d.release()
	return d.msg.DoubleAck(ctx)
}

// Nak hands the delivery back for redelivery at once.
func (d *Delivery) Nak() error {
	d.release()
	return d.msg.Nak()
}

// NakAfter hands the delivery back, redelivered no sooner than after delay.
func (d *Delivery) NakAfter(delay time.Duration) error {
	d.release()
	return d.msg.NakWithDelay(delay)
}

// Term ends the delivery for good: it is never redelivered. The server records reason.
func (d *Delivery) Term(reason string) error {
	d.release()
	return d.msg.TermWithReason(reason)
}

// InProgress tells the server the delivery is still being worked on: its ack-wait
// starts again.
func (d *Delivery) InProgress() error { return d.msg.InProgress() }

func (d *Delivery) release() {
	if d.held != nil {
		d.held.remove(d)
	}
}

func newDelivery(m jetstream.Msg, held *heldSet) *Delivery {
	d := &Delivery{Message: Message{Subject: m.Subject(), Data: m.Data()}, msg: m, held: held}
	if md, err := m.Metadata(); err == nil {
		d.Seq, d.Time, d.Pending, d.NumDelivered = md.Sequence.Stream, md.Timestamp, md.NumPending, md.NumDelivered
	}
	return d
}

// Consumer is a stage's durable pull consumer on the event stream.
type Consumer struct {
	c    jetstream.Consumer
	name string
	nc   *nats.Conn
}

// Name is the consumer's durable name.
func (c *Consumer) Name() string { return c.name }

// Counts asks the server for the consumer's pending, ack-pending and redelivered counts.
func (c *Consumer) Counts(ctx context.Context) (obs.ConsumerCounts, error) {
	info, err := c.c.Info(ctx)
	if err != nil {
		return obs.ConsumerCounts{}, err
	}
	return obs.ConsumerCounts{Pending: info.NumPending, AckPending: uint64(info.NumAckPending), Redelivered: uint64(info.NumRedelivered)}, nil
}

// DefaultMaxDeliveries is how many times a message is delivered to a stage before the
// next delivery terminates it as poison. A stage hands back what it cannot do yet
// (the collector every 2 s for --give-up-after, 2 min by default; the submitter every
// 5 s), and a delivery lost with a stopped or dead instance counts too: a thousand
// deliveries is far beyond any of these, so a message that reaches it is one no
// instance gets through (it crashes the stage, or fails the same way every time).
const DefaultMaxDeliveries = 1000

// ConsumeOptions say how a stage reads its consumer and settles its messages.
type ConsumeOptions struct {
	// Stage names the stage in logs and metrics (obs's stage label).
	Stage string
	// What a message is, in log lines ("batch", "completed event").
	What string
	// Batch is how many messages one pull asks for (default 1).
	Batch int
	// Heartbeat is the interval of the in-progress acknowledgements every unsettled
	// delivery gets (at least 100 ms; 0: none), so that the consumer's ack-wait can be
	// short: a stage that dies loses its messages to another instance after one
	// ack-wait, however long a held message takes.
	Heartbeat time.Duration
	// MaxDeliveries: a message delivered more often is terminated as poison, with its
	// reason logged, instead of handed to the stage (0: DefaultMaxDeliveries;
	// negative: no limit).
	MaxDeliveries int
	Log           *slog.Logger
}

// ConsumeEvents is Consume with each message decoded by decode (the contract's decoder
// and checks for the consumer's kind of event) before fn sees it. A message that does
// not decode is terminated at once, never retried (no later delivery makes it valid),
// with the reason logged once and counted as malformed.
func ConsumeEvents[T any](ctx context.Context, c *Consumer, o ConsumeOptions, decode func(subject string, data []byte) (T, error), fn func(d *Delivery, ev T)) error {
	log := logger(o.Log)
	return Consume(ctx, c, o, func(d *Delivery) {
		ev, err := decode(d.Subject, d.Data)
		if err != nil {
			log.Error("malformed "+o.What+"; terminating it", "subject", d.Subject, "bytes", len(d.Data), "reason", err)
			_ = d.Term(err.Error())
			obs.ParseFailure(o.Stage, "event")
			obs.Event(o.Stage, obs.Malformed)
			return
		}
		fn(d, ev)
	})
}

// Consume calls fn with each message of c, one at a time, until ctx ends, and returns.
// fn settles each delivery, then or later; until then the delivery gets in-progress
// acknowledgements every o.Heartbeat, also after Consume returned. Messages a pull
// brought after ctx ended are handed back (Nak) without fn seeing them, and a message
// delivered more than o.MaxDeliveries times is terminated as poison.
//
// Each pull asks for up to o.Batch messages and lasts at most a second; the next one is
// asked for as soon as it ends. No pull outlives a second, so one lost with its
// consumer's leader (a server of a cluster that died) or with a connection costs at
// most that second: nothing waits for a heartbeat to notice it.
func Consume(ctx context.Context, c *Consumer, o ConsumeOptions, fn func(d *Delivery)) error {
	log := logger(o.Log)
	maxDeliveries := o.MaxDeliveries
	if maxDeliveries == 0 {
		maxDeliveries = DefaultMaxDeliveries
	}
	var held *heldSet
	if o.Heartbeat > 0 {
		held = &heldSet{bySeq: map[uint64]*Delivery{}, closed: c.nc.IsClosed}
		done := make(chan struct{})
		defer close(done)
		go held.beat(max(o.Heartbeat, 100*time.Millisecond), done)
	}
	handle := func(m jetstream.Msg) {
		d := newDelivery(m, held)
		if held != nil {
			held.add(d)
		}
		switch {
		case ctx.Err() != nil:
			_ = d.Nak() // stopping: hand it back at once
		case maxDeliveries > 0 && d.NumDelivered > uint64(maxDeliveries):
			reason := fmt.Sprintf("poison: delivered %d times without being settled", d.NumDelivered-1)
			log.Error(o.What+" delivered too many times; terminating it", "subject", d.Subject, "seq", d.Seq, "reason", reason)
			_ = d.Term(reason)
			obs.Event(o.Stage, obs.Poison)
		default:
			fn(d)
		}
	}
	pull(ctx, c, max(o.Batch, 1), log, handle)
	return nil
}

// pull hands every message of c to fn until ctx ends, including those a pull already
// brought when it ended.
func pull(ctx context.Context, c *Consumer, batch int, log *slog.Logger, fn func(jetstream.Msg)) {
	failing := time.Time{}
	for ctx.Err() == nil {
		// Stopping ends the pull at once; what it already brought is still given to fn.
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		msgs, err := c.c.Fetch(batch, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range msgs.Messages() {
				fn(m)
			}
			err = msgs.Error()
		}
		cancel()
		switch {
		case err == nil, errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoHeartbeat),
			errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			failing = time.Time{}
		case ctx.Err() != nil:
		default:
			// The consumer's leader or the connection is being replaced: ask again,
			// and say so once it lasts.
			if failing.IsZero() {
				failing = time.Now()
			} else if time.Since(failing) > 5*time.Second {
				log.Warn("pull messages", "consumer", c.name, "err", err)
				failing = time.Now()
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// heldSet is a consumer's unsettled deliveries, one per message (by stream sequence,
// which every JetStream delivery carries): a redelivery to the same process replaces the
// handle it had, which the stage may then drop without settling it.
type heldSet struct {
	mu     sync.Mutex
	bySeq  map[uint64]*Delivery
	closed func() bool // the connection is closed: nothing can be settled any more
}

func (h *heldSet) add(d *Delivery) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bySeq[d.Seq] = d
}

func (h *heldSet) remove(d *Delivery) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bySeq[d.Seq] == d {
		delete(h.bySeq, d.Seq)
	}
}

// beat sends every held delivery an in-progress acknowledgement at each tick; once the
// consume loop is done (done closed) it stops as soon as nothing is held, and in any
// case with the connection.
func (h *heldSet) beat(every time.Duration, done <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	finished := false
	for {
		select {
		case <-done:
			finished, done = true, nil
			continue
		case <-t.C:
		}
		h.mu.Lock()
		held := make([]*Delivery, 0, len(h.bySeq))
		for _, d := range h.bySeq {
			held = append(held, d)
		}
		h.mu.Unlock()
		if finished && len(held) == 0 || h.closed() {
			return
		}
		for _, d := range held {
			_ = d.InProgress()
		}
	}
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
