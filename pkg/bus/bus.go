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
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/redact"
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

	// InboxPrefix replaces "_INBOX" as the prefix of reply subjects: on a shared server
	// each role may subscribe only to its own (InboxPrefix(role)).
	InboxPrefix string

	StoreDir string // embedded server's JetStream store; survives restarts
	// Listen makes the embedded server listen on ListenAddr (default DefaultListen, the
	// loopback), so that other commands on the output path attach to it. Beyond the
	// loopback it needs ListenTLSCert and ListenTLSKey, or ListenInsecure.
	Listen         bool
	ListenAddr     string
	ListenTLSCert  string
	ListenTLSKey   string
	ListenInsecure bool
	// NoCreate refuses to create a store where none exists (read-only commands).
	NoCreate bool
	// Hold asks the embedded server's owner to keep it up until this connection ends.
	Hold bool
	// Wait keeps trying to reach the server given by URL, with back-off, until ctx
	// ends (long-running services); otherwise an unreachable server is an error at once.
	Wait   bool
	Logger *slog.Logger

	// Duplicates is the stream's dedupe window (default 10 minutes).
	Duplicates time.Duration
	// MaxAge is how long events are kept (default 90 days).
	MaxAge time.Duration
	// Replicas of the stream, the stages' consumers and the KV buckets on a cluster. 0
	// creates them with one and keeps what exists; another value creates them with it
	// and updates an existing deployment whose replicas differ.
	Replicas int
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

	server   *server.Server
	lock     *os.File // the store's lock, held while this process runs its server
	attached string   // the URL of another process's embedded server we use
	storeDir string
	noLinger bool
	ownCID   uint64 // this command's own connection, never counted as another's hold
	// An attached command runs the server itself if its owner goes away.
	stopWatch chan struct{}
	watching  sync.WaitGroup
	log       *slog.Logger

	replicas  int
	mu        sync.Mutex
	consumers map[string]*Consumer // the durables bound by this process
	untrack   []func()
}

// Connect reaches NATS (or starts the embedded server) and provisions everything.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	if o.Replicas < 0 {
		return nil, fmt.Errorf("replicas %d: want 1 or more (0: keep what exists)", o.Replicas)
	}
	b := &Bus{log: log, replicas: o.Replicas, consumers: map[string]*Consumer{}}
	nopts := []nats.Option{
		nats.Name(cmp.Or(o.Name, "disaggbench")),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		// A server cut off by the network sends no reset: unanswered pings find it
		// within 10 s, and the client moves to another server of the list.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		// Asynchronous trouble (a slow consumer dropping messages, a lost pull) is
		// otherwise silent.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("NATS error", "subscription", subject, "err", redact.Error(err))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", redact.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if o.InboxPrefix != "" {
		nopts = append(nopts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	name := cmp.Or(o.Name, "disaggbench")
	if o.Hold {
		nopts = append(nopts, nats.Name(name+HoldSuffix))
	}
	var nc *nats.Conn
	var err error
	if o.URL == "" {
		nc, err = b.embedded(ctx, o, nopts)
	} else {
		nc, err = dial(ctx, o, nopts, log)
	}
	if err != nil {
		return nil, err
	}
	b.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.JS = js
	began := time.Now()
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		err := b.provision(ctx, o)
		if err == nil {
			break
		}
		// A cluster replacing a server or a leader answers again within seconds: a
		// command waits that long for it; a service waits however long it takes.
		transient := o.URL != "" && IsTransient(err) && time.Since(began) < 30*time.Second
		if !o.Wait && !transient || ctx.Err() != nil {
			b.noLinger = true
			b.Close()
			return nil, err
		}
		log.Warn("NATS not ready; retrying", "err", redact.Error(err), "in", delay)
		select {
		case <-ctx.Done():
			b.noLinger = true
			b.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	return b, nil
}

// IsTransient reports an error a cluster gives while it replaces a server or a leader.
func IsTransient(err error) bool {
	var api *jetstream.APIError
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || // a stream without a leader for now
		errors.As(err, &api) && api.Code == 503
}

// dial connects to the server at o.URL. It fails within two seconds with the cause
// ("connection refused", "authentication failed"), or with Wait retries with back-off
// until ctx ends, logging each failure.
func dial(ctx context.Context, o Options, nopts []nats.Option, log *slog.Logger) (*nats.Conn, error) {
	auth, err := authOptions(o)
	if err != nil {
		return nil, err
	}
	opts := append(append(nopts, auth...), nats.Timeout(2*time.Second))
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		nc, err := nats.Connect(o.URL, opts...)
		if err == nil {
			return nc, nil
		}
		err = ConnectError(o.URL, probe(o.URL, err))
		if !o.Wait {
			return nil, err
		}
		log.Warn("NATS unreachable; retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
}

// ConnectError names the URL (without its credentials) and the cause of a failed connect.
func ConnectError(rawURL string, err error) error {
	cause := err.Error()
	switch {
	case isAuthError(err):
		cause = "authentication failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		cause = "no answer within 2s"
	}
	return fmt.Errorf("cannot connect to %s: %s", redact.String(rawURL), redact.String(cause))
}

// probe finds the cause the client hides behind "no servers available": it dials the
// first address of rawURL itself.
func probe(rawURL string, err error) error {
	if !errors.Is(err, nats.ErrNoServers) {
		return err
	}
	first, _, _ := strings.Cut(rawURL, ",")
	if !strings.Contains(first, "://") {
		first = "nats://" + first
	}
	u, perr := url.Parse(first)
	if perr != nil || u.Host == "" {
		return err
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "4222")
	}
	c, derr := net.DialTimeout("tcp", host, 2*time.Second)
	if derr != nil {
		var op *net.OpError
		if errors.As(derr, &op) && op.Err != nil {
			return op.Err
		}
		return derr
	}
	c.Close()
	return err
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || strings.Contains(strings.ToLower(err.Error()), "authorization violation")
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

// ServerURL is the embedded server's client URL, run here or by another process on the
// same store ("" when connected by URL or not listening).
func (b *Bus) ServerURL() string {
	if b.server == nil {
		return b.attached
	}
	if b.server.Addr() == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Owner reports whether this process runs the embedded server.
func (b *Bus) Owner() bool { return b.server != nil }

func (b *Bus) provision(ctx context.Context, o Options) error {
	dup := o.Duplicates
	if dup <= 0 {
		dup = 10 * time.Minute
	}
	age := o.MaxAge
	if age <= 0 {
		age = 90 * 24 * time.Hour
	}
	want := jetstream.StreamConfig{
		Name:        events.Stream,
		Description: "disaggbench events: runs, batches, jobs, results",
		Subjects:    []string{events.Subjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      age,
		Duplicates:  dup,
		MaxMsgSize:  8 << 20,
		Replicas:    max(o.Replicas, 1),
	}
	// A stage on a shared server may only look: the stream as provisioned is used when
	// it has what the pipeline needs, and only otherwise created or updated.
	st, err := b.JS.Stream(ctx, events.Stream)
	exists := err == nil
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		// Not known now (a server or leader being replaced): never a reason to recreate.
		return fmt.Errorf("stream %s: %w", events.Stream, err)
	}
	if err == nil {
		c := st.CachedInfo().Config
		if o.Replicas == 0 {
			want.Replicas = c.Replicas // keep what exists
		}
		if !slices.Equal(c.Subjects, want.Subjects) || c.MaxAge != want.MaxAge || c.Duplicates != want.Duplicates || c.MaxMsgSize != want.MaxMsgSize || c.Replicas != want.Replicas {
			err = errors.New("differs")
		}
	}
	if err != nil {
		var was int
		if exists {
			was = st.CachedInfo().Config.Replicas
		}
		if st, err = b.JS.CreateOrUpdateStream(ctx, want); err != nil {
			if exists && was != want.Replicas {
				return replicasError("stream "+events.Stream, was, want.Replicas, err)
			}
			return fmt.Errorf("provision stream %s: %w", events.Stream, err)
		}
		if exists && was != want.Replicas {
			b.log.Info("replicas changed", "stream", events.Stream, "from", was, "to", want.Replicas)
		}
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
		cfg := jetstream.KeyValueConfig{
			Bucket: kv.name, Description: kv.desc, History: 1, Storage: jetstream.FileStorage, Replicas: max(o.Replicas, 1),
		}
		h, err := b.JS.KeyValue(ctx, kv.name)
		if err == nil && o.Replicas > 0 {
			if was := bucketReplicas(ctx, h); was != o.Replicas {
				if h, err = b.JS.UpdateKeyValue(ctx, cfg); err != nil {
					return replicasError("KV bucket "+kv.name, was, o.Replicas, err)
				}
				b.log.Info("replicas changed", "bucket", kv.name, "from", was, "to", o.Replicas)
			}
		} else if errors.Is(err, jetstream.ErrBucketNotFound) {
			if h, err = b.JS.CreateKeyValue(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
				h, err = b.JS.KeyValue(ctx, kv.name) // created meanwhile by another command
			}
		}
		if err != nil {
			return fmt.Errorf("provision KV %s: %w", kv.name, err)
		}
		*kv.dst = h
	}
	return nil
}

// bucketReplicas is a bucket's replicas as its stream says (0 when unknown).
func bucketReplicas(ctx context.Context, kv jetstream.KeyValue) int {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0
	}
	if s, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		return s.StreamInfo().Config.Replicas
	}
	return 0
}

// replicasError says that a deployment could not be moved to other replicas, and what
// to run instead: a planner command (the role allowed to update the stream and
// buckets) with --replicas, or the nats CLI with an account that may.
func replicasError(what string, was, want int, err error) error {
	return fmt.Errorf("%s has %d replicas and --replicas asks for %d, but updating it failed (%w): "+
		"run `planner provision --replicas %d` as the planner user (or `nats stream edit %s --replicas %d`), "+
		"or start this command with --replicas %d; a server that is not clustered takes only 1",
		what, was, want, err, want, streamOf(what), want, was)
}

func streamOf(what string) string {
	if b, ok := strings.CutPrefix(what, "KV bucket "); ok {
		return "KV_" + b
	}
	return strings.TrimPrefix(what, "stream ")
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
// explicit acks, redelivered without limit by the server (a stage Naks what it cannot do
// yet; Consume terminates poison), and at most maxPending messages out at once across
// every instance of the stage.
func (b *Bus) Consumer(ctx context.Context, durable, desc, filter string, ackWait time.Duration, maxPending int) (*Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   desc,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxAckPending: maxPending,
		MaxDeliver:    -1,
		// 0 follows the stream's replicas.
		Replicas: b.replicas,
	}
	// A cluster electing a leader answers late or not at all for some seconds: a stage
	// started then waits for it, as it waits for an unreachable server, until ctx ends.
	var c jetstream.Consumer
	var err error
	for delay := 250 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		if c, err = b.JS.CreateOrUpdateConsumer(ctx, events.Stream, cfg); err == nil || !IsTransient(err) || ctx.Err() != nil {
			break
		}
		b.log.Warn("consumer not bound yet; retrying", "consumer", durable, "err", err, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", durable, err)
	}
	h := &Consumer{c: c, name: durable, nc: b.NC}
	b.mu.Lock()
	b.consumers[durable] = h
	b.untrack = append(b.untrack, obs.TrackConsumer(durable, h))
	b.mu.Unlock()
	return h, nil
}

// Ready says why the bus is not ready to work (nil: it is): the connection is down, the
// stream cannot be read, or one of the named durable consumers is not bound by this
// process or not known to the server.
func (b *Bus) Ready(ctx context.Context, durables ...string) error {
	if st := b.NC.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS %s", strings.ToLower(st.String()))
	}
	if _, err := b.Stream.Info(ctx); err != nil {
		return fmt.Errorf("stream %s: %w", events.Stream, err)
	}
	for _, d := range durables {
		b.mu.Lock()
		c, ok := b.consumers[d]
		b.mu.Unlock()
		if !ok {
			return fmt.Errorf("consumer %s not bound yet", d)
		}
		if _, err := c.c.Info(ctx); err != nil {
			return fmt.Errorf("consumer %s: %w", d, err)
		}
	}
	return nil
}

// Close drains the connection and stops the embedded server, if any.
func (b *Bus) Close() {
	b.mu.Lock()
	for _, f := range b.untrack {
		f()
	}
	b.untrack = nil
	b.mu.Unlock()
	if b.stopWatch != nil {
		close(b.stopWatch)
		b.watching.Wait()
		b.stopWatch = nil
	}
	if b.NC != nil {
		if id, err := b.NC.GetClientID(); err == nil {
			b.ownCID = id
		}
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
	b.linger()
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		if b.lock != nil {
			// No new command attaches to a server about to stop.
			// The address stays known to the next owner, which takes the same port.
			_ = os.Rename(filepath.Join(b.storeDir, URLFile), filepath.Join(b.storeDir, lastURLFile))
		}
		b.server.Shutdown()
		b.server.WaitForShutdown()
		b.server = nil
	}
	if b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
}

type serverLog struct{ l *slog.Logger }

func (s *serverLog) Noticef(f string, v ...any) { s.l.Debug(fmt.Sprintf(f, v...)) }
func (s *serverLog) Warnf(f string, v ...any)   { s.l.Warn(fmt.Sprintf(f, v...)) }
func (s *serverLog) Fatalf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Errorf(f string, v ...any)  { s.l.Error(fmt.Sprintf(f, v...)) }
func (s *serverLog) Debugf(f string, v ...any)  {}
func (s *serverLog) Tracef(f string, v ...any)  {}
