package pipeline_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/bus/bustest"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sharedServer starts a nats-server from the configuration `planner nats-config` prints,
// with a password per role, and returns its URL and the passwords.
func sharedServer(t *testing.T, tls bus.ServerConfigOptions) (string, map[string]string) {
	t.Helper()
	pass := map[string]string{}
	for _, r := range bus.Roles {
		pass[r] = "pw-" + r + "-" + fmt.Sprint(time.Now().UnixNano())
		t.Setenv(bus.PasswordVar(r), pass[r])
	}
	tls.StoreDir = t.TempDir()
	tls.Listen = "127.0.0.1:-1"
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(bus.ServerConfig(tls)), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the printed configuration does not load: %v\n%s", err, bus.ServerConfig(tls))
	}
	opts.NoSigs = true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.SetLoggerV2(tlog{t}, false, false, false)
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL(), pass
}

func connectAs(t *testing.T, ctx context.Context, url, role, password string) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(ctx, bus.Options{URL: url, Name: role, User: role, Password: password, InboxPrefix: bus.InboxPrefix(role), Logger: quiet})
	if err != nil {
		t.Fatalf("%s: %v", role, err)
	}
	t.Cleanup(b.Close)
	return b
}

// Each stage runs as its own user with only its permissions, and a run goes through;
// then each user tries what is not its to do and is refused.
func TestStagesWorkWithinAndAreRefusedOutsideTheirPermissions(t *testing.T) {
	url, pass := sharedServer(t, bus.ServerConfigOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := t.TempDir()

	// A client without credentials is refused.
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}

	planner := connectAs(t, ctx, url, bus.RolePlanner, pass[bus.RolePlanner]) // provisions
	sched := fake.New(50 * time.Millisecond)
	s, err := submit.New(submit.Config{Bus: connectAs(t, ctx, url, bus.RoleSubmitter, pass[bus.RoleSubmitter]), Scheduler: sched, OutputPath: out, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watch.New(watch.Config{Bus: connectAs(t, ctx, url, bus.RoleWatcher, pass[bus.RoleWatcher]), Scheduler: sched, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collect.New(collect.Config{Bus: connectAs(t, ctx, url, bus.RoleCollector, pass[bus.RoleCollector]), OutputPath: out, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{s.Run, w.Run, c.Run} {
		go func() {
			if err := run(sctx); err != nil && sctx.Err() == nil {
				t.Errorf("stage: %v", err)
			}
			done <- struct{}{}
		}()
	}
	defer func() {
		stop()
		for range 3 {
			<-done
		}
	}()
	run := "rp"
	p := &plan.Plan{RunID: run, Policy: events.PolicySliding, Started: events.RunStarted{Header: events.NewHeader(run), Tests: 2}}
	for i, id := range []string{"disagg_perf_a", "disagg_perf_b"} {
		logDir := filepath.Join(out, "slurm_logs", id, run)
		p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: id, TestType: "disagg", Category: "perf", GPUType: "GB200",
			LogDir: logDir, Request: fake.Request(run, id, logDir, "job.sh"),
			Files: []events.File{{Name: "job.sh", Data: []byte("#!/bin/bash\n"), Mode: 0o755}}})
	}
	if err := p.Publish(ctx, planner); err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	prog, err := progress.Follow(fctx, planner, run, false, nil)
	if err != nil || prog.Finished == nil || prog.Finished.Tests != 2 {
		t.Fatalf("the run did not finish under least privilege: %+v, %v", prog, err)
	}
	// The collector recorded the tests' durations, which the planner reads to order runs.
	if keys, err := planner.History.ListKeys(ctx); err != nil {
		t.Fatalf("planner cannot read the duration history: %v", err)
	} else {
		n := 0
		for range keys.Keys() {
			n++
		}
		if n == 0 {
			t.Errorf("no duration history written by the collector")
		}
	}
	// A dashboard reads the run, and nothing else.
	dash := connectAs(t, ctx, url, bus.RoleDashboard, pass[bus.RoleDashboard])
	if got, err := progress.Follow(ctx, dash, run, true, nil); err != nil || len(got.Tests) != 2 {
		t.Fatalf("dashboard cannot follow the run: %v", err)
	}

	refused := map[string][]string{
		bus.RolePlanner: {"bench.results.rp.x", "bench.jobs.rp.x.submitted", "bench.runs.rp.finished",
			"$JS.API.CONSUMER.MSG.NEXT.BENCH.submitter", "$KV.bench_jobs.x", "$JS.API.STREAM.DELETE.BENCH"},
		bus.RoleSubmitter: {"bench.batches.rp.9", "bench.results.rp.x", "bench.runs.rp.started", "bench.runs.rp.finished",
			"$JS.API.CONSUMER.MSG.NEXT.BENCH.collector", "$JS.API.CONSUMER.CREATE.BENCH.watcher.bench.>",
			"$KV.bench_results.x", "$KV.bench_runs.x", "$JS.API.STREAM.DELETE.BENCH", "$JS.API.STREAM.UPDATE.BENCH"},
		bus.RoleWatcher: {"bench.batches.rp.9", "bench.results.rp.x", "bench.runs.rp.finished",
			"$JS.API.CONSUMER.MSG.NEXT.BENCH.submitter", "$JS.ACK.BENCH.submitter.1.1.1.1.1.1", "$KV.bench_runs.x"},
		bus.RoleCollector: {"bench.batches.rp.9", "bench.jobs.rp.x.completed", "bench.jobs.rp.x.submitted",
			"$JS.API.CONSUMER.MSG.NEXT.BENCH.watcher", "$KV.bench_jobs.x", "$JS.API.STREAM.PURGE.BENCH"},
		bus.RoleDashboard: {"bench.runs.rp.started", "bench.results.rp.x", "bench.batches.rp.9",
			"$KV.bench_jobs.x", "$JS.API.CONSUMER.MSG.NEXT.BENCH.submitter", "$JS.API.STREAM.DELETE.BENCH",
			"$JS.API.CONSUMER.CREATE.BENCH.collector.bench.>", "$JS.API.CONSUMER.DELETE.BENCH.watcher"},
	}
	for role, subjects := range refused {
		errs := make(chan error, 64)
		nc, err := nats.Connect(url, nats.UserInfo(role, pass[role]), nats.CustomInboxPrefix(bus.InboxPrefix(role)),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string) {
			t.Helper()
			select {
			case err := <-errs:
				if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
					t.Errorf("%s %s: %v", role, what, err)
				}
			case <-time.After(2 * time.Second):
				t.Errorf("%s may %s", role, what)
			}
		}
		for _, subj := range subjects {
			_ = nc.Publish(subj, []byte("{}"))
			_ = nc.Flush()
			check("publish " + subj)
		}
		// Nobody reads the events or another role's replies by plain subscription.
		for _, subj := range []string{"bench.>", "_INBOX.>", "$KV.bench_jobs.>", bus.InboxPrefix(other(role)) + ".>"} {
			if _, err := nc.SubscribeSync(subj); err == nil {
				_ = nc.Flush()
				check("subscribe " + subj)
			}
		}
		nc.Close()
	}
	// What the stages publish beyond their main events: the submitter's quota waits and
	// problems, the watcher's resubmissions (after NODE_FAIL) and problems.
	allowed := map[string][]string{
		bus.RoleSubmitter: {"bench.jobs.rq.x.state", "bench.jobs.rq.x.problem"},
		bus.RoleWatcher:   {"bench.jobs.rq.x.submitted", "bench.jobs.rq.x.problem"},
	}
	for role, subjects := range allowed {
		errs := make(chan error, 64)
		nc, err := nats.Connect(url, nats.UserInfo(role, pass[role]), nats.CustomInboxPrefix(bus.InboxPrefix(role)),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if err != nil {
			t.Fatal(err)
		}
		for _, subj := range subjects {
			_ = nc.Publish(subj, []byte("{}"))
			_ = nc.Flush()
			select {
			case err := <-errs:
				t.Errorf("%s may not publish %s: %v", role, subj, err)
			case <-time.After(300 * time.Millisecond):
			}
		}
		nc.Close()
	}
}

func other(role string) string {
	if role == bus.RoleSubmitter {
		return bus.RoleCollector
	}
	return bus.RoleSubmitter
}

// tlog shows the server's warnings and errors (permission violations) in the test log.
type tlog struct{ t *testing.T }

func (l tlog) Noticef(string, ...any)    {}
func (l tlog) Debugf(string, ...any)     {}
func (l tlog) Tracef(string, ...any)     {}
func (l tlog) Warnf(f string, v ...any)  { l.t.Logf("nats-server: "+f, v...) }
func (l tlog) Errorf(f string, v ...any) { l.t.Logf("nats-server: "+f, v...) }
func (l tlog) Fatalf(f string, v ...any) { l.t.Logf("nats-server: "+f, v...) }

// The printed configuration with TLS requires a client certificate the CA signed: a
// stage with --tlsca/--tlscert/--tlskey connects and provisions; without a client
// certificate, or without TLS, a client is refused even with the right password.
func TestTLSWithClientCertificates(t *testing.T) {
	authority := bustest.NewCA(t, "disaggbench test CA")
	ca := authority.Path
	srvCert, srvKey := authority.Issue(t, "server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "127.0.0.1")
	cliCert, cliKey := authority.Issue(t, "client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "127.0.0.1")
	url, pass := sharedServer(t, bus.ServerConfigOptions{TLSCert: srvCert, TLSKey: srvKey, TLSCA: ca})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{URL: url, User: bus.RolePlanner, Password: pass[bus.RolePlanner],
		InboxPrefix: bus.InboxPrefix(bus.RolePlanner), TLSCA: ca, TLSCert: cliCert, TLSKey: cliKey, Logger: quiet})
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if _, err := b.Stream.Info(ctx); err != nil {
		t.Fatal(err)
	}
	b.Close()
	for name, opts := range map[string][]nats.Option{
		"no client certificate": {nats.RootCAs(ca)},
		"no TLS":                nil,
	} {
		opts = append(opts, nats.UserInfo(bus.RolePlanner, pass[bus.RolePlanner]), nats.MaxReconnects(0), nats.Timeout(2*time.Second))
		if nc, err := nats.Connect(url, opts...); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
}
