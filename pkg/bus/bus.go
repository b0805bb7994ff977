// Package bus connects a stage to NATS JetStream, either a server given by URL or one
// embedded in the process with its store on disk, and provisions the stream, the durable
// consumers and the KV buckets the pipeline uses. Provisioning is idempotent.
package bus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// KV bucket names.
const (
	BucketJobs    = "bench_jobs"    // the run ledger: one JobRecord per run and test
	BucketRuns    = "bench_runs"    // one RunRecord per run
	BucketResults = "bench_results" // the collector's claims on written results
	BucketHistory = "bench_history" // each test's latest durations per GPU type
)

// Options says how to reach NATS. With URL empty, an embedded server is started with its
// store under StoreDir.
type Options struct {
	URL       string
	Name      string // connection name, shown by the server
	User      string
	Password  string
	Token     string
	NKeyFile  string // seed file
	CredsFile string
	TLSCA     string
	TLSCert   string
	TLSKey    string

	StoreDir string // embedded server's JetStream store; survives restarts
	Listen   bool   // embedded server also listens on 127.0.0.1 (random port)
	Logger   *slog.Logger

	// Duplicates is the stream's dedupe window (default 10 minutes).
	Duplicates time.Duration
	// MaxAge is how long events are kept (default 90 days).
	MaxAge time.Duration
}

// Bus is a connection with JetStream handles and the pipeline's buckets.
type Bus struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Jobs    jetstream.KeyValue
	Runs    jetstream.KeyValue
	Results jetstream.KeyValue
	History jetstream.KeyValue
	Stream  jetstream.Stream

	server *server.Server
	log    *slog.Logger
}

// Connect reaches NATS (or starts the embedded server) and provisions everything.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	b := &Bus{log: log}
	nopts := []nats.Option{
		nats.Name(cmp.Or(o.Name, "disaggbench")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// Asynchronous trouble (a slow consumer dropping messages, a lost pull) is
		// otherwise silent.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error", "subscription", subject, "err", err)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	url := o.URL
	if url == "" {
		ns, err := StartServer(o.StoreDir, o.Listen, log)
		if err != nil {
			return nil, err
		}
		b.server = ns
		nopts = append(nopts, nats.InProcessServer(ns))
	} else {
		nopts = append(nopts, nats.RetryOnFailedConnect(true))
		auth, err := authOptions(o)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, auth...)
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("connect to NATS %s: %w", cmp.Or(url, "(embedded)"), err)
	}
	b.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.JS = js
	if err := b.provision(ctx, o); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func authOptions(o Options) ([]nats.Option, error) {
	var opts []nats.Option
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" || o.TLSKey != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// StartServer starts an embedded JetStream server with its store in dir.
func StartServer(dir string, listen bool, log *slog.Logger) (*server.Server, error) {
	if dir == "" {
		return nil, errors.New("embedded NATS needs a store folder")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: "disaggbench-embedded",
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		DontListen: !listen,
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		// The embedded server belongs to one process; keep it to the loopback.
		NoSystemAccount: true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.SetLoggerV2(&serverLog{log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded NATS did not become ready in 20s (is another process using the store " + dir + "?)")
	}
	if listen {
		_ = os.WriteFile(filepath.Join(dir, "url"), []byte(ns.ClientURL()+"\n"), 0o644)
	}
	return ns, nil
}

// ServerURL is the embedded server's client URL ("" when connected by URL or not listening).
func (b *Bus) ServerURL() string {
	if b.server == nil {
		return ""
	}
	return b.server.ClientURL()
}

func (b *Bus) provision(ctx context.Context, o Options) error {
	dup := o.Duplicates
	if dup <= 0 {
		dup = 10 * time.Minute
	}
	age := o.MaxAge
	if age <= 0 {
		age = 90 * 24 * time.Hour
	}
	st, err := b.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.Stream,
		Description: "disaggbench events: runs, batches, jobs, results",
		Subjects:    []string{events.Subjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      age,
		Duplicates:  dup,
		MaxMsgSize:  8 << 20,
	})
	if err != nil {
		return fmt.Errorf("provision stream %s: %w", events.Stream, err)
	}
	b.Stream = st
	for _, kv := range []struct {
		dst  *jetstream.KeyValue
		name string
		desc string
	}{
		{&b.Jobs, BucketJobs, "run ledger: one record per run and test"},
		{&b.Runs, BucketRuns, "runs: expected tests and progress"},
		{&b.Results, BucketResults, "collector claims on written results"},
		{&b.History, BucketHistory, "each test's latest durations per GPU type, for ordering runs"},
	} {
		h, err := b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: kv.name, Description: kv.desc, History: 1, Storage: jetstream.FileStorage,
		})
		if err != nil {
			return fmt.Errorf("provision KV %s: %w", kv.name, err)
		}
		*kv.dst = h
	}
	return nil
}

// Publish sends an event with a message id; JetStream drops a repeat of the id within
// the dedupe window.
func (b *Bus) Publish(ctx context.Context, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = b.JS.Publish(ctx, subject, data, jetstream.WithMsgID(msgID))
	if err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}

// Consumer creates or updates a stage's durable pull consumer on the event stream:
// explicit acks, redelivered without limit (a stage Naks what it cannot do yet), and
// at most maxPending messages out at once across every instance of the stage.
func (b *Bus) Consumer(ctx context.Context, durable, desc, filter string, ackWait time.Duration, maxPending int) (jetstream.Consumer, error) {
	c, err := b.JS.CreateOrUpdateConsumer(ctx, events.Stream, jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   desc,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxPending,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", durable, err)
	}
	return c, nil
}

// LastPerSubject counts the subjects matching filter that hold a message and, with fn,
// calls it with each one's newest message, oldest first. Counting is one request to the
// server, whatever the number of subjects.
func (b *Bus) LastPerSubject(ctx context.Context, filter string, fn func(jetstream.Msg) error) (int, error) {
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
				if err := fn(m); err != nil {
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

// Consume calls fn with each message of cons, one at a time, until ctx ends; then the
// messages already pulled into the client are still given to fn (which should hand them
// back) before it returns. batch is how many messages are asked for at once.
//
// It waits for each message at most half a second at a time. The client asks the server
// for more only while it waits, and skips asking while its previous request is still
// being sent; under load the messages of that request can come back first, and an
// unbounded wait would then sit until the missed-heartbeat check, 30 s later. Each
// bounded wait that ends asks again.
func Consume(ctx context.Context, cons jetstream.Consumer, batch int, log *slog.Logger, fn func(jetstream.Msg)) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		return err
	}
	defer context.AfterFunc(ctx, it.Drain)()
	for {
		msg, err := it.Next(jetstream.NextMaxWait(500 * time.Millisecond))
		switch {
		case err == nil:
			fn(msg)
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrNoHeartbeat):
			// ask again
		case ctx.Err() == nil:
			log.Warn("next message", "consumer", cons.CachedInfo().Name, "err", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// Close drains the connection and stops the embedded server, if any.
func (b *Bus) Close() {
	if b.NC != nil {
		done := make(chan struct{})
		b.NC.SetClosedHandler(func(*nats.Conn) { close(done) })
		if err := b.NC.Drain(); err == nil {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				b.NC.Close()
			}
		} else {
			b.NC.Close()
		}
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
		b.server = nil
	}
}

// GetJSON reads a KV entry into v and returns its revision.
func GetJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	return e.Revision(), json.Unmarshal(e.Value(), v)
}

// UpdateJSON applies fn to the JSON value at key with compare-and-set, retrying on a
// concurrent change. A missing key starts from v's zero value and is created.
func UpdateJSON[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(*T) error) (T, error) {
	for {
		var v T
		rev, err := GetJSON(ctx, kv, key, &v)
		missing := errors.Is(err, jetstream.ErrKeyNotFound)
		if err != nil && !missing {
			return v, err
		}
		if err := fn(&v); err != nil {
			return v, err
		}
		data, err := json.Marshal(v)
		if err != nil {
			return v, err
		}
		if missing {
			_, err = kv.Create(ctx, key, data)
		} else {
			_, err = kv.Update(ctx, key, data, rev)
		}
		if err == nil {
			return v, nil
		}
		if !IsRevMismatch(err) {
			return v, err
		}
		if ctx.Err() != nil {
			return v, ctx.Err()
		}
	}
}

// IsRevMismatch reports a KV update refused because the entry is at another revision.
func IsRevMismatch(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)
}

type serverLog struct{ l *slog.Logger }

func (s *serverLog) Noticef(f string, v ...any) { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s *serverLog) Warnf(f string, v ...any)   { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s *serverLog) Fatalf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Errorf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Debugf(f string, v ...any)  {}
func (s *serverLog) Tracef(f string, v ...any)  {}
