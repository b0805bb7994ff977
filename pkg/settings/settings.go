// Package settings holds what every service's command line shares: NATS connection flags,
// the output path, the scheduler choice and logging, with one precedence everywhere:
// flag > environment > default.
package settings

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/redact"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/local"
	"github.com/disaggbench/disaggbench/pkg/scheduler/slurm"
)

// Common flags.
type Common struct {
	NATS       string
	Creds      string
	NKey       string
	User       string
	Password   string
	Token      string
	TLSCA      string
	TLSCert    string
	TLSKey     string
	OutputPath string
	Scheduler  string
	LogLevel   string
	// Replicas of the stream, consumers and buckets (0: keep what exists, 1 for new).
	Replicas int
	// HTTP is where /healthz, /readyz and /metrics are served ("": nowhere).
	HTTP string

	// Where the output path's embedded server listens, when this command starts it.
	Listen         string
	ListenTLSCert  string
	ListenTLSKey   string
	ListenInsecure bool
}

// Register adds the flags to fs; withScheduler adds --scheduler too.
func (c *Common) Register(fs *flag.FlagSet, withScheduler bool) {
	fs.StringVar(&c.NATS, "nats", "", "NATS server URL, or a comma-separated list of a cluster's (env NATS_URL); empty: an embedded server with its store under the output path")
	fs.IntVar(&c.Replicas, "replicas", 0, "replicas of the stream, consumers and KV buckets on a NATS cluster (env NATS_REPLICAS; default: 1 for a new deployment, an existing one kept); another value updates an existing deployment")
	fs.StringVar(&c.Creds, "creds", "", "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&c.NKey, "nkey", "", "NATS nkey seed file (env NATS_NKEY)")
	fs.StringVar(&c.User, "user", "", "NATS user (env NATS_USER; password in NATS_PASSWORD)")
	fs.StringVar(&c.Token, "token", "", "NATS token (env NATS_TOKEN)")
	fs.StringVar(&c.TLSCA, "tlsca", "", "CA file for NATS TLS (env NATS_CA)")
	fs.StringVar(&c.TLSCert, "tlscert", "", "client certificate for NATS TLS (env NATS_CERT)")
	fs.StringVar(&c.TLSKey, "tlskey", "", "client key for NATS TLS (env NATS_KEY)")
	fs.StringVar(&c.OutputPath, "output-path", "", "results and logs folder (env OUTPUT_PATH; default ./output)")
	fs.StringVar(&c.Listen, "nats-listen", "", "where the embedded server listens, HOST:PORT (env DISAGGBENCH_LISTEN; default "+bus.DefaultListen+", the loopback); beyond the loopback it needs --nats-listen-tlscert/--nats-listen-tlskey or --nats-listen-insecure")
	fs.StringVar(&c.ListenTLSCert, "nats-listen-tlscert", "", "the embedded server's TLS certificate (env DISAGGBENCH_LISTEN_TLSCERT)")
	fs.StringVar(&c.ListenTLSKey, "nats-listen-tlskey", "", "the embedded server's TLS key (env DISAGGBENCH_LISTEN_TLSKEY)")
	fs.BoolVar(&c.ListenInsecure, "nats-listen-insecure", false, "let the embedded server listen beyond the loopback without TLS (its credential then crosses the network in clear)")
	fs.StringVar(&c.LogLevel, "log-level", "", "debug, info, warn or error (env DISAGGBENCH_LOG_LEVEL; default info)")
	if withScheduler {
		fs.StringVar(&c.Scheduler, "scheduler", "", "local or slurm (env DISAGGBENCH_SCHEDULER; default local)")
	}
}

// RegisterHTTP adds --http, for the commands that run stages.
func (c *Common) RegisterHTTP(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTP, "http", "", "serve /healthz, /readyz and /metrics on HOST:PORT (env DISAGGBENCH_HTTP; default: not served)")
}

// Resolve fills unset flags from the environment and defaults.
func (c *Common) Resolve(env map[string]string) error {
	c.NATS = cmp.Or(c.NATS, env["NATS_URL"])
	c.Creds = cmp.Or(c.Creds, env["NATS_CREDS"])
	c.NKey = cmp.Or(c.NKey, env["NATS_NKEY"])
	c.User = cmp.Or(c.User, env["NATS_USER"])
	c.Password = env["NATS_PASSWORD"]
	c.Token = cmp.Or(c.Token, env["NATS_TOKEN"])
	c.TLSCA = cmp.Or(c.TLSCA, env["NATS_CA"])
	c.TLSCert = cmp.Or(c.TLSCert, env["NATS_CERT"])
	c.TLSKey = cmp.Or(c.TLSKey, env["NATS_KEY"])
	out, err := filepath.Abs(cmp.Or(c.OutputPath, env["OUTPUT_PATH"], "output"))
	if err != nil {
		return err
	}
	c.OutputPath = out
	c.Scheduler = cmp.Or(c.Scheduler, env["DISAGGBENCH_SCHEDULER"], "local")
	if c.Scheduler != "local" && c.Scheduler != "slurm" {
		return fmt.Errorf("--scheduler %q: want local or slurm", c.Scheduler)
	}
	c.LogLevel = cmp.Or(c.LogLevel, env["DISAGGBENCH_LOG_LEVEL"], "info")
	c.HTTP = cmp.Or(c.HTTP, env["DISAGGBENCH_HTTP"])
	if c.Replicas == 0 && env["NATS_REPLICAS"] != "" {
		n, err := strconv.Atoi(env["NATS_REPLICAS"])
		if err != nil {
			return fmt.Errorf("NATS_REPLICAS %q: want a whole number from 1 to 5", env["NATS_REPLICAS"])
		}
		c.Replicas = n
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("--replicas %d: want 1 to 5 (a NATS cluster keeps at most 5 copies)", c.Replicas)
	}
	if c.NATS == "" && c.Replicas > 1 {
		return fmt.Errorf("--replicas %d needs a NATS cluster (--nats): the embedded server keeps one copy", c.Replicas)
	}
	c.Listen = cmp.Or(c.Listen, env["DISAGGBENCH_LISTEN"], bus.DefaultListen)
	c.ListenTLSCert = cmp.Or(c.ListenTLSCert, env["DISAGGBENCH_LISTEN_TLSCERT"])
	c.ListenTLSKey = cmp.Or(c.ListenTLSKey, env["DISAGGBENCH_LISTEN_TLSKEY"])
	redact.Add(c.Password, c.Token)
	if c.NATS == "" {
		if err := bus.CheckListen(c.Listen, c.ListenTLSCert, c.ListenTLSKey, c.ListenInsecure); err != nil {
			return err
		}
	}
	return nil
}

// Env is the process environment as a map.
func Env() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Logger writes text logs to w at the chosen level, credentials masked.
func (c *Common) Logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cmp.Or(c.LogLevel, "info")))
	return slog.New(slog.NewTextHandler(redact.Writer(w), &slog.HandlerOptions{Level: lvl}))
}

// StoreDir is where an embedded NATS server keeps its store.
func (c *Common) StoreDir() string { return filepath.Join(c.OutputPath, ".nats") }

// Mode says how a command uses the bus.
type Mode struct {
	// ReadOnly: the command only reads (status, watch): it creates no store where none is.
	ReadOnly bool
	// Hold: the command needs the output path's embedded server until it is done (a run
	// being followed), so the server's owner waits for it before stopping.
	Hold bool
	// Wait: a long-running service keeps trying, with back-off, while NATS is down.
	Wait bool
}

// Connect reaches NATS at --nats, or, with no URL, the output path's embedded server:
// started here when no other command runs it (and then advertised in the store folder
// for the others), attached to otherwise, with the credential from the store's 0600
// file. Every command that attaches to an output path goes through here.
func (c *Common) Connect(ctx context.Context, name string, log *slog.Logger) (*bus.Bus, error) {
	return c.ConnectMode(ctx, name, log, Mode{})
}

// ConnectMode is Connect for a command that reads only, holds the server, or waits.
func (c *Common) ConnectMode(ctx context.Context, name string, log *slog.Logger, m Mode) (*bus.Bus, error) {
	// Replies come on the role's own inbox prefix (the part of name before any "-"),
	// which a shared server's permissions (planner nats-config) let only that role read.
	role, _, _ := strings.Cut(name, "-")
	return bus.Connect(ctx, bus.Options{
		InboxPrefix: bus.InboxPrefix(role),
		URL:         c.NATS, Name: name, User: c.User, Password: c.Password, Token: c.Token,
		NKeyFile: c.NKey, CredsFile: c.Creds, TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey,
		StoreDir: c.StoreDir(), Listen: true, ListenAddr: c.Listen, ListenTLSCert: c.ListenTLSCert,
		ListenTLSKey: c.ListenTLSKey, ListenInsecure: c.ListenInsecure,
		NoCreate: m.ReadOnly, Hold: m.Hold, Wait: m.Wait, Logger: log, Replicas: c.Replicas,
	})
}

// NewScheduler builds the chosen scheduler. The local one keeps its job records under
// the output path, so a watcher in another process sees the jobs a submitter started.
func (c *Common) NewScheduler() (scheduler.Scheduler, error) {
	switch c.Scheduler {
	case "slurm":
		return slurm.New(slurm.Options{}), nil
	default:
		return local.New(filepath.Join(c.OutputPath, ".local-scheduler"), local.Options{})
	}
}

// ServeHTTP starts the health and metrics server at --http (nil when not asked for).
func (c *Common) ServeHTTP(log *slog.Logger) (*obs.Server, error) {
	if c.HTTP == "" {
		return nil, nil
	}
	return obs.Listen(c.HTTP, log)
}

// Ready makes hs (when not nil) report b's readiness, with the named durable consumers
// bound, and the metrics follow b's connection.
func Ready(hs *obs.Server, b *bus.Bus, durables ...string) {
	obs.TrackConnection(b.NC)
	if hs != nil {
		hs.SetReady(func(ctx context.Context) error { return b.Ready(ctx, durables...) })
	}
}

// StageDurables are the durable consumers the service of this name binds.
func StageDurables(name string) []string {
	switch name {
	case bus.RoleSubmitter, bus.RoleWatcher, bus.RoleCollector:
		return []string{name}
	}
	return nil
}

// Serve is the body of a stage's main: parse flags, connect, run until SIGINT or
// SIGTERM, then drain. register adds the stage's own flags; start builds the stage.
func Serve(name string, args []string, stderr io.Writer, withScheduler bool,
	register func(fs *flag.FlagSet),
	start func(ctx context.Context, c *Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error)) int {
	stderr = redact.Writer(stderr)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Common
	c.Register(fs, withScheduler)
	c.RegisterHTTP(fs)
	if register != nil {
		register(fs)
	}
	if _, code, ok := Parse(fs, args, 0, 0, os.Stdout, stderr); !ok {
		return code
	}
	if err := c.Resolve(Env()); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	log := c.Logger(stderr).With("service", name)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Alive (and not ready) while it waits for NATS.
	hs, err := c.ServeHTTP(log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if hs != nil {
		defer hs.Close()
	}
	b, err := c.ConnectMode(ctx, name, log, Mode{Wait: true})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	defer b.Close()
	Ready(hs, b, StageDurables(name)...)
	run, err := start(ctx, &c, b, log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	log.Info("started", "nats", redact.String(cmp.Or(c.NATS, "embedded "+b.ServerURL())), "output", c.OutputPath)
	if err := run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	log.Info("stopped")
	return 0
}
