package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/disaggbench/disaggbench/pkg/fileio"
	"github.com/disaggbench/disaggbench/pkg/redact"
)

// Files in an embedded server's store folder (OUTPUT_PATH/.nats).
const (
	// TokenFile holds the server's credential, generated at its first start, mode 0600:
	// only users who can read it can connect.
	TokenFile = "token"
	// URLFile holds the running server's client URL and no secret.
	URLFile = "url"
	// LockFile is locked (flock) by the one process that runs the server on the store.
	LockFile = "lock"
	// lastURLFile keeps a stopped server's URL, so the next one takes the same port.
	lastURLFile = "url.last"
)

// DefaultListen is where the embedded server listens unless told otherwise.
const DefaultListen = "127.0.0.1:0"

// ErrNoStore is returned to a command that must not create a store where none exists.
var ErrNoStore = errors.New("no run store")

// HoldSuffix ends the connection name of a command that needs the embedded server until
// it is done (a run being followed); the server's owner waits for such commands before
// it stops.
const HoldSuffix = "+hold"

var errLocked = errors.New("store locked")

// lockStore takes the store's lock without waiting.
func lockStore(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock embedded store: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock embedded store %s: %w", dir, err)
	}
	return f, nil
}

// loadToken reads the store's credential, creating it at the first start. A file that
// others can read is tightened to 0600 with a warning.
func loadToken(dir string, create bool, log *slog.Logger) (string, error) {
	path := filepath.Join(dir, TokenFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		tok := hex.EncodeToString(b[:])
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_, err = f.WriteString(tok + "\n")
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("write %s: %w", path, err)
			}
			return tok, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("create %s: %w", path, err)
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("read the embedded server's credentials: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("embedded server credentials were readable by others; now 0600", "file", path, "mode", st.Mode().Perm().String())
		_ = os.Chmod(path, 0o600)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return tok, nil
}

func readURL(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, URLFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// isLoopback reports whether host only reaches this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckListen refuses an address beyond the loopback without TLS, unless insecure is set.
func CheckListen(addr, tlsCert, tlsKey string, insecure bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: want HOST:PORT (for example 127.0.0.1:4222): %v", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("--nats-listen %q: bad port", addr)
	}
	if (tlsCert == "") != (tlsKey == "") {
		return errors.New("--nats-listen-tlscert and --nats-listen-tlskey go together")
	}
	if !isLoopback(host) && tlsCert == "" && !insecure {
		return fmt.Errorf("--nats-listen %s exposes the bus beyond this machine, and its credential would cross the network in clear: "+
			"give --nats-listen-tlscert and --nats-listen-tlskey, or --nats-listen-insecure to accept that", addr)
	}
	return nil
}

// embedded starts the store's server when no other process runs it (this process then
// owns it), or attaches to the one that does: either way it returns a connection with
// the store's credential.
func (b *Bus) embedded(ctx context.Context, o Options, nopts []nats.Option) (*nats.Conn, error) {
	dir := o.StoreDir
	if dir == "" {
		return nil, errors.New("embedded NATS needs a store folder")
	}
	if o.NoCreate {
		if _, err := os.Stat(filepath.Join(dir, TokenFile)); err != nil {
			if _, derr := os.Stat(dir); derr != nil {
				return nil, fmt.Errorf("%w under %s: nothing has run with this output path (give --output-path or --nats)", ErrNoStore, filepath.Dir(dir))
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	var lastErr error
	for {
		lock, err := lockStore(dir)
		if err == nil {
			nc, err := b.own(o, lock, nopts)
			if err != nil {
				lock.Close()
			}
			return nc, err
		}
		if !errors.Is(err, errLocked) {
			return nil, err
		}
		// Another process runs the server: attach to it.
		if u := readURL(dir); u != "" {
			tok, err := loadToken(dir, false, b.log)
			if err != nil {
				return nil, err
			}
			opts := append(append([]nats.Option{}, nopts...), nats.Token(tok), nats.Timeout(2*time.Second))
			if extra, err := authOptions(Options{TLSCA: o.TLSCA}); err == nil {
				opts = append(opts, extra...)
			}
			nc, err := nats.Connect(u, opts...)
			if err == nil {
				b.attached = u
				if !o.NoCreate {
					b.stopWatch = make(chan struct{})
					b.watching.Add(1)
					go b.watchOwner(o, u, nc)
				}
				return nc, nil
			}
			if isAuthError(err) {
				return nil, fmt.Errorf("cannot connect to the embedded server of %s at %s: authentication failed (is %s current?)", filepath.Dir(dir), u, filepath.Join(dir, TokenFile))
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			if lastErr == nil {
				lastErr = errors.New("it has not written its address")
			}
			return nil, fmt.Errorf("another process holds the embedded store %s but cannot be reached: %v", dir, redact.Error(lastErr))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// own starts the server on the locked store.
func (b *Bus) own(o Options, lock *os.File, nopts []nats.Option) (*nats.Conn, error) {
	dir := o.StoreDir
	tok, err := loadToken(dir, true, b.log)
	if err != nil {
		return nil, err
	}
	redact.Add(tok)
	addr := ""
	if o.Listen {
		addr = o.ListenAddr
		if addr == "" {
			addr = DefaultListen
		}
		if err := CheckListen(addr, o.ListenTLSCert, o.ListenTLSKey, o.ListenInsecure); err != nil {
			return nil, err
		}
		// A random port: reuse the previous owner's when free, so that clients of a
		// server that went away reconnect to the next one by themselves.
		if host, port, _ := net.SplitHostPort(addr); port == "0" {
			prev := readURL(dir)
			if prev == "" {
				if data, err := os.ReadFile(filepath.Join(dir, lastURLFile)); err == nil {
					prev = strings.TrimSpace(string(data))
				}
			}
			if u, err := url.Parse(prev); err == nil && u.Port() != "" {
				if l, err := net.Listen("tcp", net.JoinHostPort(host, u.Port())); err == nil {
					l.Close()
					addr = net.JoinHostPort(host, u.Port())
				}
			}
		}
	}
	_ = os.Remove(filepath.Join(dir, URLFile))
	ns, err := startServer(dir, addr, tok, o, b.log)
	if err != nil {
		return nil, err
	}
	b.server, b.lock, b.storeDir = ns, lock, dir
	if addr != "" {
		if err := fileio.WriteAtomic(filepath.Join(dir, URLFile), []byte(ns.ClientURL()+"\n"), 0o644, false); err != nil {
			b.shutdownServer()
			return nil, fmt.Errorf("advertise the embedded server: %w", err)
		}
		if host, _, _ := net.SplitHostPort(addr); !isLoopback(host) && o.ListenTLSCert == "" {
			b.log.Warn("INSECURE: the embedded NATS server listens beyond the loopback without TLS; its credential crosses the network in clear",
				"listen", ns.ClientURL())
		}
		b.log.Info("embedded NATS server listening", "url", ns.ClientURL(), "store", dir, "credentials", filepath.Join(dir, TokenFile))
	}
	nc, err := nats.Connect("", append(nopts, nats.InProcessServer(ns), nats.Token(tok))...)
	if err != nil {
		b.shutdownServer()
		return nil, err
	}
	return nc, nil
}

// startServer starts a JetStream server on dir that requires token; with addr empty it
// takes in-process connections only.
func startServer(dir, addr, token string, o Options, log *slog.Logger) (*server.Server, error) {
	opts := &server.Options{
		ServerName:    "disaggbench-embedded",
		JetStream:     true,
		StoreDir:      dir,
		NoSigs:        true,
		DontListen:    addr == "",
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: token,
		// The embedded server belongs to the output path's commands only.
		NoSystemAccount: true,
	}
	if addr != "" {
		host, port, _ := net.SplitHostPort(addr)
		opts.Host = host
		if p, err := net.LookupPort("tcp", port); err == nil && p != 0 {
			opts.Port = p
		}
	}
	if o.ListenTLSCert != "" {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: o.ListenTLSCert, KeyFile: o.ListenTLSKey})
		if err != nil {
			return nil, fmt.Errorf("embedded NATS TLS: %w", err)
		}
		opts.TLSConfig, opts.TLS = tc, true
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	ns.SetLoggerV2(&serverLog{log.With("component", "nats-server")}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not become ready in 20s (store %s, listen %s)", dir, addr)
	}
	return ns, nil
}

// holders counts the other commands that said they need this server until they are done.
// The server may still list this command's own connection for a moment after it closed.
func (b *Bus) holders() int {
	cz, err := b.server.Connz(&server.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return 0
	}
	n := 0
	for _, c := range cz.Conns {
		if strings.HasSuffix(c.Name, HoldSuffix) && (b.ownCID == 0 || c.Cid != b.ownCID) {
			n++
		}
	}
	return n
}

// linger keeps the server up while other commands on the output path need it.
func (b *Bus) linger() {
	if b.server == nil || b.noLinger {
		return
	}
	said := false
	var stop chan os.Signal
	for {
		n := b.holders()
		if n == 0 {
			return
		}
		if !said {
			b.log.Warn("other commands on this output path use its embedded server: it stays up until they are done (interrupt again to stop it now; they then wait for the next command on this output path)", "commands", n)
			said = true
			stop = make(chan os.Signal, 1)
			signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(stop)
		}
		select {
		case <-stop:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// watchOwner restarts the store's server, at the same address, when the process that ran
// it is gone (killed, or stopped while this command still needs it): this connection
// and every other attached one then reconnect by themselves.
func (b *Bus) watchOwner(o Options, u string, nc *nats.Conn) {
	defer b.watching.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stopWatch:
			return
		case <-t.C:
		}
		if nc.IsConnected() || nc.IsClosed() {
			continue
		}
		lock, err := lockStore(o.StoreDir)
		if err != nil {
			continue // the owner is still there, or another command took over
		}
		pu, err := url.Parse(u)
		tok, terr := loadToken(o.StoreDir, false, b.log)
		if err != nil || terr != nil {
			lock.Close()
			return
		}
		ns, err := startServer(o.StoreDir, pu.Host, tok, o, b.log)
		if err != nil {
			b.log.Warn("the embedded server's owner is gone and its address is taken; retrying", "err", err)
			lock.Close()
			continue
		}
		b.server, b.lock, b.storeDir, b.attached = ns, lock, o.StoreDir, ""
		if err := fileio.WriteAtomic(filepath.Join(o.StoreDir, URLFile), []byte(ns.ClientURL()+"\n"), 0o644, false); err != nil {
			b.log.Warn("advertise the embedded server", "err", err)
		}
		b.log.Warn("the embedded server's owner went away: this command runs it now", "url", ns.ClientURL())
		return
	}
}
