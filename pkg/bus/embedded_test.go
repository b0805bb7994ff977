package bus

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/disaggbench/disaggbench/pkg/events"
)

func listening(t *testing.T, dir string) (context.Context, *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	b, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return ctx, b
}

func TestEmbeddedServerRefusesStrangers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".nats")
	_, b := listening(t, dir)
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", st.Mode().Perm())
	}
	tok, _ := os.ReadFile(filepath.Join(dir, TokenFile))
	urlFile, err := os.ReadFile(filepath.Join(dir, URLFile))
	if err != nil {
		t.Fatal(err)
	}
	u := strings.TrimSpace(string(urlFile))
	if u != b.ServerURL() || !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("url file %q, server %q: want the loopback client URL", u, b.ServerURL())
	}
	if strings.Contains(string(urlFile), strings.TrimSpace(string(tok))) {
		t.Fatal("the URL file carries the credential")
	}
	// A client with only the address is refused.
	if nc, err := nats.Connect(u, nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials got in")
	} else if !isAuthError(err) {
		t.Fatalf("want an authorization error, got %v", err)
	}
	if nc, err := nats.Connect(u, nats.Token("guess"), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client with a wrong token got in")
	}
	nc, err := nats.Connect(u, nats.Token(strings.TrimSpace(string(tok))))
	if err != nil {
		t.Fatalf("the token from the store's file is refused: %v", err)
	}
	nc.Close()
}

func TestSecondCommandAttachesToTheOwnersServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".nats")
	ctx, owner := listening(t, dir)
	if !owner.Owner() {
		t.Fatal("the first command does not own the server")
	}
	other, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "second"})
	if err != nil {
		t.Fatalf("second command on the same store: %v", err)
	}
	defer other.Close()
	if other.Owner() {
		t.Fatal("the second command started a server of its own on the same store")
	}
	if other.ServerURL() != owner.ServerURL() {
		t.Fatalf("attached to %q, owner serves %q", other.ServerURL(), owner.ServerURL())
	}
	if err := other.Publish(ctx, events.RunStartedSubject("r"), "id-r", events.RunStarted{Header: events.NewHeader("r")}); err != nil {
		t.Fatal(err)
	}
	info, err := owner.Stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("owner's stream holds %d messages, want the attached command's 1", info.State.Msgs)
	}
}

func TestOwnerWaitsForHoldersThenTheNextCommandOwns(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".nats")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	url := owner.ServerURL()
	holder, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "planner-run", Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { owner.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("the owner stopped its server while a run still used it")
	case <-time.After(700 * time.Millisecond):
	}
	// The holder still works through the owner's server.
	if err := holder.Publish(ctx, events.RunStartedSubject("r2"), "id-r2", events.RunStarted{Header: events.NewHeader("r2")}); err != nil {
		t.Fatal(err)
	}
	holder.Close()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner did not stop once the run was done")
	}
	if _, err := os.Stat(filepath.Join(dir, URLFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a stopped server is still advertised: %v", err)
	}
	next, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "next"})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if !next.Owner() || next.ServerURL() != url {
		t.Fatalf("next command: owner %v at %q, want the store's server restarted at %q", next.Owner(), next.ServerURL(), url)
	}
	info, err := next.Stream.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after the handover: %v %v", info, err)
	}
}

func TestReadOnlyCommandCreatesNoStore(t *testing.T) {
	out := t.TempDir()
	dir := filepath.Join(out, ".nats")
	_, err := Connect(context.Background(), Options{StoreDir: dir, Listen: true, NoCreate: true})
	if !errors.Is(err, ErrNoStore) {
		t.Fatalf("want ErrNoStore, got %v", err)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("a read-only command created %v", entries)
	}
}

func TestListenBeyondLoopbackNeedsTLS(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:4222", "10.1.2.3:0", "[::]:4222"} {
		err := CheckListen(addr, "", "", false)
		if err == nil || !strings.Contains(err.Error(), "TLS") && !strings.Contains(err.Error(), "tls") {
			t.Errorf("--listen %s without TLS: %v", addr, err)
		}
		if err := CheckListen(addr, "", "", true); err != nil {
			t.Errorf("--listen %s --nats-listen-insecure: %v", addr, err)
		}
		if err := CheckListen(addr, "c.pem", "k.pem", false); err != nil {
			t.Errorf("--listen %s with TLS: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:4222", "[::1]:0"} {
		if err := CheckListen(addr, "", "", false); err != nil {
			t.Errorf("--listen %s: %v", addr, err)
		}
	}
	if err := CheckListen("nohost", "", "", false); err == nil {
		t.Error("--listen without a port accepted")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.NoSigs, opts.JetStream, opts.StoreDir = "127.0.0.1", true, true, t.TempDir()
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

func TestConnectErrorsNameTheCauseQuickly(t *testing.T) {
	ctx := context.Background()
	url := "nats://127.0.0.1:" + itoa(freePort(t))
	start := time.Now()
	_, err := Connect(ctx, Options{URL: url})
	if err == nil || err.Error() != "cannot connect to "+url+": connection refused" {
		t.Fatalf("unreachable server: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to report an unreachable server", d)
	}

	ns := runServer(t, &server.Options{Port: freePort(t), Username: "bench", Password: "pa55w0rd-xyz"})
	bad := "nats://bench:wrong-guess@" + ns.Addr().String()
	start = time.Now()
	_, err = Connect(ctx, Options{URL: bad})
	if err == nil || !strings.HasSuffix(err.Error(), ": authentication failed") {
		t.Fatalf("refused login: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-guess") {
		t.Fatalf("the password is in the error: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v to report a refused login", d)
	}
	_, err = Connect(ctx, Options{URL: "nats://" + ns.Addr().String(), User: "bench", Password: "nope"})
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("refused login with --user: %v", err)
	}
	b, err := Connect(ctx, Options{URL: "nats://" + ns.Addr().String(), User: "bench", Password: "pa55w0rd-xyz"})
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	b.Close()
}

func TestServiceWaitsForNATSWithBackoff(t *testing.T) {
	port := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan error, 1)
	go func() {
		b, err := Connect(ctx, Options{URL: "nats://127.0.0.1:" + itoa(port), Wait: true})
		if err == nil {
			b.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a service gave up while NATS was down: %v", err)
	case <-time.After(6 * time.Second): // longer than the old 5 s give-up
	}
	runServer(t, &server.Options{Port: port})
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("service did not connect once NATS came up: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("service still waiting 20 s after NATS came up")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestAttachedCommandTakesOverWhenTheOwnerDies: the owner vanishes without a word (as
// when killed); the attached command starts the server again at the same address and
// its connection carries on.
func TestAttachedCommandTakesOverWhenTheOwnerDies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".nats")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	url := owner.ServerURL()
	other, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "planner-run", Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// A kill: no drain, no hand-over, the lock released by the kernel.
	owner.NC.Close()
	owner.server.Shutdown()
	owner.server.WaitForShutdown()
	owner.lock.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tctx, tcancel := context.WithTimeout(ctx, 2*time.Second)
		err := other.Publish(tctx, events.RunStartedSubject("r3"), "id-r3", events.RunStarted{Header: events.NewHeader("r3")})
		tcancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attached command never got a server back: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := strings.TrimSpace(readURL(dir)); got != url {
		t.Fatalf("server restarted at %q, want the same address %q", got, url)
	}
}

// A run alone on its output path stops at once and does not claim that other commands
// still use its server: the server may list the run's own closed connection for a moment.
func TestLoneHolderDoesNotWaitForItself(t *testing.T) {
	for i := 0; i < 5; i++ {
		dir := filepath.Join(t.TempDir(), ".nats")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var logs strings.Builder
		log := slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
		b, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Name: "planner-run", Hold: true, Logger: log})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if err := b.Publish(ctx, events.RunStartedSubject("r1"), "id-r1", events.RunStarted{Header: events.NewHeader("r1")}); err != nil {
			t.Fatal(err)
		}
		b.Close()
		cancel()
		if strings.Contains(logs.String(), "other commands") {
			t.Fatalf("a lone run waited for itself:\n%s", logs.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// The embedded server listens on the loopback unless told otherwise, and says where:
// in the log, and in the store folder for the other commands.
func TestEmbeddedListensOnLoopbackAndSaysWhere(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs bytes.Buffer
	dir := t.TempDir()
	b, err := Connect(ctx, Options{StoreDir: dir, Listen: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	u, err := url.Parse(b.ServerURL())
	if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "" {
		t.Fatalf("embedded server at %q (%v), want the loopback", b.ServerURL(), err)
	}
	if !strings.Contains(logs.String(), "embedded NATS server listening") || !strings.Contains(logs.String(), b.ServerURL()) {
		t.Errorf("the log does not say where the server listens:\n%s", logs.String())
	}
	if got := readURL(dir); got != b.ServerURL() {
		t.Errorf("the store folder advertises %q, the server is at %q", got, b.ServerURL())
	}
}

// Replicas: a deployment is created with the asked number, kept by a command that asks
// none, and one that asks for another number the server cannot give is told what to run.
func TestReplicasAtProvisioning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	b, err := Connect(ctx, Options{StoreDir: dir, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r := b.Stream.CachedInfo().Config.Replicas; r != 1 {
		t.Errorf("stream replicas %d, want 1", r)
	}
	if r := bucketReplicas(ctx, b.Jobs); r != 1 {
		t.Errorf("bucket replicas %d, want 1", r)
	}
	b.Close()
	b, err = Connect(ctx, Options{StoreDir: dir})
	if err != nil {
		t.Fatalf("a command asking no replicas: %v", err)
	}
	b.Close()
	_, err = Connect(ctx, Options{StoreDir: dir, Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "has 1 replicas and --replicas asks for 3") ||
		!strings.Contains(err.Error(), "planner provision --replicas 3") {
		t.Fatalf("--replicas 3 on a single server: %v", err)
	}
	if _, err := Connect(ctx, Options{StoreDir: dir, Replicas: -1}); err == nil {
		t.Error("negative replicas accepted")
	}
}

// A stage that binds its consumer while the server is away (a cluster electing a leader
// answers no better) waits for it rather than giving up: the first request times out,
// and the consumer is bound once the server is back with its store.
func TestConsumerWaitsForTheServer(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	start := func() *server.Server {
		ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true, JetStream: true, StoreDir: store})
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("server not ready")
		}
		return ns
	}
	ns := start()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Connect(ctx, Options{URL: "nats://127.0.0.1:" + itoa(port), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
	// A stage's context has no deadline (JetStream then bounds each request by its own
	// timeout), and ends only when the stage is stopped.
	stage, stop := context.WithCancel(context.Background())
	defer stop()
	got := make(chan error, 1)
	go func() {
		_, err := b.Consumer(stage, "waiter", "a stage binding while the server is away", events.SubmittedFilter, time.Second, 10)
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("Consumer gave up while the server was away: %v", err)
	case <-time.After(7 * time.Second): // longer than a JetStream request's 5 s
	}
	ns = start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Consumer once the server was back: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("consumer still not bound 30 s after the server came back")
	}
	if err := b.Ready(ctx, "waiter"); err != nil {
		t.Errorf("ready: %v", err)
	}
}
