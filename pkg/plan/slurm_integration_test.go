package plan_test

// The whole pipeline (planner, submitter, watcher, collector on an embedded JetStream)
// against a real SLURM: the cluster deploy/slurm-dev/start.sh runs, or any cluster the
// SLURM commands in PATH reach. The tests skip when sbatch is absent or under -short, and
// fail instead when DISAGGBENCH_REQUIRE_SLURM=1 (CI). The controller outage test stops
// slurmctld through deploy/slurm-dev, so it also needs root and
// DISAGGBENCH_SLURM_RESTART=1 (or DISAGGBENCH_REQUIRE_SLURM=1).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/benchclient"
	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/slurm"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

const (
	requireSLURMEnv = "DISAGGBENCH_REQUIRE_SLURM"
	restartSLURMEnv = "DISAGGBENCH_SLURM_RESTART"
	// Poll fast: the emulated jobs last about three seconds.
	slurmPollMin = 500 * time.Millisecond
	slurmPollMax = 2 * time.Second
)

var (
	slurmOnce   sync.Once
	slurmConf   string // the SLURM_CONF the tests use ("" = SLURM's default)
	slurmReason string // why the tests cannot run; "" when they can
)

func slurmRequired() bool { return os.Getenv(requireSLURMEnv) == "1" }

func slurmDevBase() string {
	return cmp.Or(os.Getenv("SLURM_DEV_BASE"), "/var/lib/disaggbench-slurm")
}

func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if slurmRequired() {
		t.Fatalf(format+" (and %s=1)", append(args, requireSLURMEnv)...)
	}
	t.Skipf(format, args...)
}

// slurmHarness is one test's pipeline on a real SLURM: an embedded JetStream and the
// SLURM scheduler; the stages are started by each test.
type slurmHarness struct {
	t     testing.TB
	ctx   context.Context
	b     *bus.Bus
	store string // the embedded server's store: a second connection attaches through it
	sched *slurm.Scheduler
	log   *slog.Logger
	logs  *syncBuffer
	since time.Time // before the first job: sacct's -S
}

// newSLURMHarness skips (or fails, when SLURM is required) without a reachable cluster.
func newSLURMHarness(t testing.TB, timeout time.Duration) *slurmHarness {
	t.Helper()
	if testing.Short() && !slurmRequired() {
		t.Skip("SLURM integration test skipped with -short")
	}
	slurmOnce.Do(func() {
		if _, err := exec.LookPath("sbatch"); err != nil {
			slurmReason = "sbatch is not in PATH"
			return
		}
		slurmConf = os.Getenv("SLURM_CONF")
		if dev := filepath.Join(slurmDevBase(), "etc", "slurm.conf"); slurmConf == "" && fileExists(dev) {
			slurmConf = dev
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if out, err := slurmCommand(ctx, "sinfo", "-h", "-o", "%P %a %D %T").CombinedOutput(); err != nil {
			slurmReason = fmt.Sprintf("no SLURM cluster answers (SLURM_CONF=%q): %v: %s", slurmConf, err, out)
		}
	})
	if slurmReason != "" {
		skipOrFail(t, "%s", slurmReason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	logs := &syncBuffer{}
	h := &slurmHarness{t: t, ctx: ctx, logs: logs, since: time.Now().Add(-2 * time.Second),
		log:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		sched: slurm.New(slurm.Options{Conf: slurmConf}),
	}
	h.store = filepath.Join(t.TempDir(), "nats")
	b, err := bus.Connect(ctx, bus.Options{StoreDir: h.store, Listen: true, Logger: h.log})
	if err != nil {
		t.Fatal(err)
	}
	h.b = b
	t.Cleanup(func() {
		b.Close()
		if t.Failed() {
			s := logs.String()
			if len(s) > 12000 {
				s = "...\n" + s[len(s)-12000:]
			}
			t.Logf("pipeline log:\n%s", s)
		}
	})
	return h
}

// notice keeps the submitter's notices with the pipeline's log.
func (h *slurmHarness) notice(n submit.Notice) { fmt.Fprintf(h.logs, "%T %+v\n", n, n) }

// slurmCommand runs a SLURM client with the tests' SLURM_CONF and standard times.
func slurmCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SLURM_TIME_FORMAT=standard")
	if slurmConf != "" {
		cmd.Env = append(cmd.Env, "SLURM_CONF="+slurmConf)
	}
	return cmd
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (h *slurmHarness) prepare(sel config.Selection, batch int, out string) *plan.Plan {
	h.t.Helper()
	p, err := plan.Prepare(plan.Options{Selection: sel, BatchSize: batch, Policy: events.PolicySliding,
		Scheduler: "slurm", OutputPath: out}, config.Env{})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(p.Invalid) != 0 || len(p.Specs) == 0 {
		h.t.Fatalf("planned %d jobs, %d invalid: %+v", len(p.Specs), len(p.Invalid), p.Invalid)
	}
	return p
}

func (h *slurmHarness) stageOptions(out string) pipeline.Options {
	return pipeline.Options{OutputPath: out, Scheduler: h.sched, Log: h.log, Notify: h.notice,
		PollMin: slurmPollMin, PollMax: slurmPollMax, TimeLimit: 10 * time.Minute}
}

// stage runs one stage's Run until stop is called.
type stage struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *slurmHarness) run(name string, fn func(context.Context) error) *stage {
	ctx, cancel := context.WithCancel(h.ctx)
	s := &stage{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("stage stopped", "stage", name, "err", err)
		}
	}()
	return s
}

func (s *stage) stop() {
	s.cancel()
	<-s.done
}

func (h *slurmHarness) follow(p *plan.Plan) *progress.Progress {
	h.t.Helper()
	prog, err := progress.Follow(h.ctx, h.b, p.RunID, false, nil)
	if err != nil {
		h.t.Fatalf("follow run %s: %v", p.RunID, err)
	}
	return prog
}

func (h *slurmHarness) done(run string) int {
	var rec events.RunRecord
	_, _ = ledger.GetJSON(h.ctx, h.b.Runs, events.Token(run), &rec)
	return rec.Done
}

func (h *slurmHarness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	for !cond() {
		if h.ctx.Err() != nil {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sacctJob is one row of sacct -X.
type sacctJob struct {
	ID, Name, State, NodeList string
	Submit, Start, End        time.Time
}

// sacctRun lists every job since h.since whose name carries the run id, by the run's
// own sacct call (not the scheduler under test).
func (h *slurmHarness) sacctRun(run string) []sacctJob {
	h.t.Helper()
	var jobs []sacctJob
	for _, j := range h.sacct("-o", "JobIDRaw,State,Submit,Start,End,NodeList,JobName") {
		if strings.Contains(j.Name, run) {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// sacctName is `sacct -X -P -n -S <start> --name <name>`.
func (h *slurmHarness) sacctName(name string) []sacctJob {
	h.t.Helper()
	return h.sacct("--name", name, "-o", "JobIDRaw,State,Submit,Start,End,NodeList,JobName")
}

func (h *slurmHarness) sacct(args ...string) []sacctJob {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	argv := append([]string{"-X", "-P", "-n", "-S", h.since.Add(-time.Minute).In(time.Local).Format("2006-01-02T15:04:05")}, args...)
	cmd := slurmCommand(ctx, "sacct", argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("sacct %s: %v: %s", strings.Join(argv, " "), err, stderr.String())
	}
	parse := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02T15:04:05", s, time.Local)
		if err != nil {
			return time.Time{}
		}
		return tm
	}
	var jobs []sacctJob
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, "|", 7)
		if len(f) != 7 {
			h.t.Fatalf("sacct line %q: want 7 fields", line)
		}
		jobs = append(jobs, sacctJob{ID: f[0], State: f[1], Submit: parse(f[2]), Start: parse(f[3]), End: parse(f[4]), NodeList: f[5], Name: f[6]})
	}
	return jobs
}

// runEvent is one stored event of a run.
type runEvent struct {
	kind string // submitted, state, completed, result, started, finished, batch
	test string
	at   time.Time
	data []byte
}

// events reads every stored event of the run, in stream order.
func (h *slurmHarness) events(run string) []runEvent {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	cons, err := h.b.JS.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunFilter(run)}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		h.t.Fatal(err)
	}
	var evs []runEvent
	if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
		return evs
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			h.t.Fatalf("read run %s events: %v", run, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			h.t.Fatal(err)
		}
		parts := strings.Split(msg.Subject(), ".")
		ev := runEvent{at: md.Timestamp, data: msg.Data()}
		switch {
		case parts[1] == "jobs" && len(parts) == 5:
			ev.kind, ev.test = parts[4], events.Untoken(parts[3])
		case parts[1] == "results" && len(parts) == 4:
			ev.kind, ev.test = "result", events.Untoken(parts[3])
		case parts[1] == "runs":
			ev.kind = parts[3]
		default:
			ev.kind = parts[1]
		}
		evs = append(evs, ev)
		if md.NumPending == 0 {
			return evs
		}
	}
}

// checkRun checks a finished run end to end: every test passed on a COMPLETED job;
// SLURM ran exactly one job per test, named with the run id; the event stream says
// submitted, completed and result exactly once per test; no job was reported completed
// before its script wrote its done marker; and the CSV and Parquet rows of the run match
// in count and values. It returns the run's sacct rows by test.
func (h *slurmHarness) checkRun(p *plan.Plan, prog *progress.Progress, out string) map[string]sacctJob {
	t := h.t
	t.Helper()
	n := len(p.Specs)
	if prog.Finished == nil || prog.Finished.Passed != n || prog.Finished.Failed != 0 {
		t.Errorf("run %s finished as %+v, want %d passed\n%s", p.RunID, prog.Finished, n, prog.Summary())
	}
	for id, tp := range prog.Tests {
		if tp.Result == nil || !tp.Result.Passed || tp.State != scheduler.Completed {
			t.Errorf("%s: state %s, result %+v", id, tp.State, tp.Result)
		}
	}

	// SLURM's own account: one job per test, by name, and none else named with the run id.
	byTest := map[string]sacctJob{}
	for _, s := range p.Specs {
		if !strings.Contains(s.Request.Name, p.RunID) || s.Request.Name != plan.JobName("", p.RunID, s.TestID) {
			t.Errorf("%s: job name %q does not carry run %s as plan.JobName does", s.TestID, s.Request.Name, p.RunID)
		}
		jobs := h.sacctName(s.Request.Name)
		if len(jobs) != 1 {
			t.Errorf("%s: sacct --name %s shows %d jobs, want 1: %+v", s.TestID, s.Request.Name, len(jobs), jobs)
			continue
		}
		if jobs[0].State != scheduler.Completed {
			t.Errorf("%s: job %s is %s in sacct", s.TestID, jobs[0].ID, jobs[0].State)
		}
		byTest[s.TestID] = jobs[0]
	}
	if all := h.sacctRun(p.RunID); len(all) != n {
		t.Errorf("sacct shows %d jobs named with run %s, want %d", len(all), p.RunID, n)
	}

	// The event stream: each test once, and never completed before its job's end.
	count := map[string]int{}
	for _, ev := range h.events(p.RunID) {
		switch ev.kind {
		case events.KindSubmitted, events.KindCompleted, "result":
			count[ev.kind+" "+ev.test]++
		}
		if ev.kind != events.KindCompleted {
			continue
		}
		var c events.JobCompleted
		if err := json.Unmarshal(ev.data, &c); err != nil {
			t.Fatal(err)
		}
		if j, ok := byTest[ev.test]; ok && c.JobID != j.ID {
			t.Errorf("%s: completed event for job %s, sacct has job %s", ev.test, c.JobID, j.ID)
		}
		marker := filepath.Join(plan.LogDir(out, ev.test, p.RunID), "8_done_"+c.JobID+".txt")
		st, err := os.Stat(marker)
		switch {
		case err != nil:
			t.Errorf("%s: job %s reported %s but its done marker is missing: %v", ev.test, c.JobID, c.Detail, err)
		case st.ModTime().After(ev.at.Add(50 * time.Millisecond)):
			t.Errorf("%s: job %s reported %s at %s, before its script finished at %s",
				ev.test, c.JobID, c.Detail, ev.at.Format(time.StampMilli), st.ModTime().Format(time.StampMilli))
		}
	}
	for _, s := range p.Specs {
		for _, kind := range []string{events.KindSubmitted, events.KindCompleted, "result"} {
			if c := count[kind+" "+s.TestID]; c != 1 {
				t.Errorf("%s: %d %s events, want 1", s.TestID, c, kind)
			}
		}
	}

	// CSV and Parquet: the same rows, value for value.
	data, err := os.ReadFile(filepath.Join(out, results.CSVFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 || !slices.Equal(recs[0], results.CSVHeader) {
		t.Fatalf("CSV header %v", recs[:min(1, len(recs))])
	}
	rows, err := results.ReadDataset(filepath.Join(out, "results"))
	if err != nil {
		t.Fatal(err)
	}
	var runRows []results.Row
	perTest := map[string]int{}
	partialNodes := map[string]string{}
	for _, r := range rows {
		if r.RunID != p.RunID {
			continue
		}
		runRows = append(runRows, r)
		perTest[r.TestID]++
		j := byTest[r.TestID]
		if r.Verdict != "pass" || r.SlurmState != scheduler.Completed || r.JobID != j.ID || r.NodeList == "" {
			t.Errorf("Parquet row %s %s c%d: verdict %s, state %s, job %s on %q; sacct: job %s on %q",
				r.TestID, r.Metric, r.Concurrency, r.Verdict, r.SlurmState, r.JobID, r.NodeList, j.ID, j.NodeList)
		}
		if r.NodeList != j.NodeList {
			partialNodes[r.JobID] = fmt.Sprintf("job %s: %q in the results, %q in sacct now", r.JobID, r.NodeList, j.NodeList)
		}
	}
	// sacct's first terminal row of a multi-node job may still name only the batch host
	// (node3 for node[3-4]) for about a second: the watcher keeps that row. Shown, not failed.
	for _, msg := range partialNodes {
		t.Logf("node list differs: %s", msg)
	}
	for _, s := range p.Specs {
		if perTest[s.TestID] == 0 {
			t.Errorf("%s: no Parquet rows", s.TestID)
		}
	}
	want := joinRecords(results.CSVRecords(results.CSVRows(runRows))) // the CSV holds the judged rows
	var got []string
	for _, r := range joinRecords(recs[1:]) {
		for _, s := range p.Specs {
			if strings.Contains(r, "["+s.TestID+"]") {
				got = append(got, r)
				break
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d CSV rows, %d Parquet rows for run %s", len(got), len(want), p.RunID)
	} else if !slices.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("CSV and Parquet rows differ:\n CSV     %s\n Parquet %s", got[i], want[i])
				break
			}
		}
	}
	return byTest
}

func joinRecords(recs [][]string) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, strings.Join(r, "\x1f"))
	}
	sort.Strings(out)
	return out
}

// TestSLURMQuickstart runs the quickstart, unchanged (GB200: --gres=gpu:4, two and three
// nodes a job), through the whole pipeline on SLURM: the built-in job script with the
// emulation, its workers, server, client and lm_eval started as srun steps inside the
// allocation (three perf tests and one accuracy test).
func TestSLURMQuickstart(t *testing.T) {
	h := newSLURMHarness(t, 3*time.Minute)
	out := t.TempDir()
	p := h.prepare(config.Selection{ConfigDir: filepath.Join(quickstart, "test_configs"),
		TestList: filepath.Join(quickstart, "testlist.txt")}, plan.DefaultBatchSize, out)
	if len(p.Specs) != 4 {
		t.Fatalf("quickstart: %d tests, want 4", len(p.Specs))
	}
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	t0 := time.Now()
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	prog := h.follow(p)
	elapsed := time.Since(t0)
	calls := h.sched.Calls()
	cycles, queries := stages.Watcher.Stats()
	jobs := h.checkRun(p, prog, out)
	kinds := map[string]int{}
	for _, s := range p.Specs {
		j := jobs[s.TestID]
		t.Logf("job %s %s on %s (%d nodes asked) %s", j.ID, j.State, j.NodeList, s.Request.Nodes, s.TestID)
		kinds[checkEmulatedJob(t, s)]++
	}
	// The built-in script's three flows ran as srun steps: e2e (with its warm-up),
	// gen_only (gated gen workers, per-point iteration slices) and an accuracy test.
	if kinds["e2e"] == 0 || kinds["gen_only"] == 0 || kinds["accuracy"] == 0 {
		t.Errorf("quickstart on SLURM ran %v; want e2e, gen_only and accuracy jobs", kinds)
	}
	t.Logf("quickstart on SLURM: %d tests in %v; sbatch %d, sacct %d (%.1f a minute; watcher: %d cycles, %d status queries), squeue %d, scancel %d",
		len(p.Specs), elapsed.Round(10*time.Millisecond), calls["sbatch"], calls["sacct"],
		float64(calls["sacct"])/elapsed.Minutes(), cycles, queries, calls["squeue"], calls["scancel"])
}

// TestSLURMWindowOfThree sends twelve jobs through a sliding window of three: never more
// than three of the run's jobs pending or running at SLURM, by SLURM's own times and by
// the event stream.
func TestSLURMWindowOfThree(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p := h.prepare(config.Selection{ConfigDir: copyQuickstart(t, dir, 12)}, 3, out)
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	t0 := time.Now()
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	prog := h.follow(p)
	elapsed := time.Since(t0)
	jobs := h.checkRun(p, prog, out)

	// SLURM's view: intervals [submit, end) at its one-second resolution; at an equal
	// time an end comes before a submit (a refill follows the end it replaces).
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, j := range jobs {
		if j.Submit.IsZero() || j.End.IsZero() {
			t.Errorf("job %s: submit %v, end %v", j.ID, j.Submit, j.End)
			continue
		}
		edges = append(edges, edge{j.Submit, +1}, edge{j.End, -1})
	}
	sort.Slice(edges, func(a, b int) bool {
		if !edges[a].at.Equal(edges[b].at) {
			return edges[a].at.Before(edges[b].at)
		}
		return edges[a].delta < edges[b].delta
	})
	active, peak := 0, 0
	for _, e := range edges {
		active += e.delta
		peak = max(peak, active)
	}
	if peak != 3 {
		t.Errorf("at most %d of the run's jobs were pending or running at once in sacct, want exactly 3", peak)
	}

	// The pipeline's view: submitted minus completed, in stream order.
	inFlight, streamPeak := 0, 0
	for _, ev := range h.events(p.RunID) {
		switch ev.kind {
		case events.KindSubmitted:
			inFlight++
		case events.KindCompleted:
			inFlight--
		}
		streamPeak = max(streamPeak, inFlight)
	}
	if streamPeak > 3 {
		t.Errorf("%d jobs submitted and not completed at once in the event stream, want at most 3", streamPeak)
	}
	calls := h.sched.Calls()
	t.Logf("12 jobs, window 3: %v; peak %d in sacct, %d in the stream; sbatch %d, sacct %d (%.1f a minute)",
		elapsed.Round(10*time.Millisecond), peak, streamPeak, calls["sbatch"], calls["sacct"], float64(calls["sacct"])/elapsed.Minutes())
}

// startSeparately runs a submitter and a collector; the test runs its watchers itself.
func (h *slurmHarness) startSeparately(out string, retry time.Duration) (sub, col *stage) {
	h.t.Helper()
	s, err := submit.New(submit.Config{Bus: h.b, Scheduler: h.sched, OutputPath: out, Log: h.log, Notify: h.notice,
		RetryMin: retry, RetryMax: 2 * retry})
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := collect.New(collect.Config{Bus: h.b, OutputPath: out, Log: h.log})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.run("submitter", s.Run), h.run("collector", c.Run)
}

// watcherAckWait is how long a watcher that died without handing its jobs back keeps
// them from the others.
const watcherAckWait = 12 * time.Second

// startWatcher runs a watcher on b (nil: the harness's bus).
func (h *slurmHarness) startWatcher(b *bus.Bus) *stage {
	h.t.Helper()
	w, err := watch.New(watch.Config{Bus: cmp.Or(b, h.b), Scheduler: h.sched, Log: h.log,
		PollMin: slurmPollMin, PollMax: slurmPollMax, TimeLimit: 10 * time.Minute, AckWait: watcherAckWait})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.run("watcher", w.Run)
}

// TestSLURMWatcherRestart takes the watcher away mid-run while jobs run and end, and
// starts another one seconds later: no job is lost, none reported twice. "stopped" ends
// the watcher as a shutdown does (it hands its jobs back); "killed" drops its NATS
// connection first, as a killed process does, so its jobs come back only when their
// acknowledgement time runs out.
func TestSLURMWatcherRestart(t *testing.T) {
	for _, mode := range []string{"stopped", "killed"} {
		t.Run(mode, func(t *testing.T) {
			h := newSLURMHarness(t, 3*time.Minute)
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			p := h.prepare(config.Selection{ConfigDir: copyQuickstart(t, dir, 6)}, 3, out)
			sub, col := h.startSeparately(out, time.Second)
			defer col.stop()
			defer sub.stop()
			// The first watcher has its own connection, to the same server.
			wb, err := bus.Connect(h.ctx, bus.Options{StoreDir: h.store, Listen: true, Name: "watcher-1", Logger: h.log})
			if err != nil {
				t.Fatal(err)
			}
			defer wb.Close()
			w1 := h.startWatcher(wb)
			if err := p.Publish(h.ctx, h.b); err != nil {
				t.Fatal(err)
			}
			h.waitFor("a first result", func() bool { return h.done(p.RunID) >= 1 })
			if mode == "killed" {
				wb.NC.Close() // no hand-back reaches the server
			}
			stopped := time.Now()
			w1.cancel()
			select {
			case <-w1.done:
			case <-time.After(15 * time.Second):
				t.Fatal("the first watcher did not return 15 s after it was stopped")
			}
			doneAtStop := h.done(p.RunID)
			// A stopped watcher handed its jobs back: they can be taken again at once. A
			// killed one still holds them until their acknowledgement time runs out. (A job
			// submitted meanwhile is free either way, but never delivered before.)
			cons, err := h.b.JS.Consumer(h.ctx, events.Stream, watch.Durable)
			if err != nil {
				t.Fatal(err)
			}
			batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			handedBack := 0
			for m := range batch.Messages() {
				if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
					handedBack++
				}
				_ = m.Nak()
			}
			switch {
			case mode == "stopped" && handedBack == 0:
				t.Error("no job free again one second after the watcher stopped: it did not hand them back")
			case mode == "killed" && handedBack > 0 && time.Since(stopped) < watcherAckWait/3:
				t.Errorf("%d jobs free again right after the watcher was killed: the kill handed them back", handedBack)
			}
			time.Sleep(7 * time.Second) // jobs end with no watcher
			restarted := time.Now()
			w2 := h.startWatcher(nil)
			defer w2.stop()
			prog := h.follow(p)
			jobs := h.checkRun(p, prog, out)

			endedUnwatched := 0 // by the jobs' done markers: sacct's times are whole seconds
			for test, j := range jobs {
				st, err := os.Stat(filepath.Join(plan.LogDir(out, test, p.RunID), "8_done_"+j.ID+".txt"))
				if err == nil && st.ModTime().After(stopped) && st.ModTime().Before(restarted) {
					endedUnwatched++
				}
			}
			t.Logf("watcher %s with %d of %d results in; %d jobs ended while no watcher ran (%.1f s); the run ended %.1f s after the restart",
				mode, doneAtStop, len(p.Specs), endedUnwatched, restarted.Sub(stopped).Seconds(), time.Since(restarted).Seconds())
			if endedUnwatched == 0 {
				t.Error("no job ended while no watcher ran: the test proved nothing")
			}
		})
	}
}

// TestSLURMControllerOutage stops slurmctld for about 25 s while the run's jobs run and
// end, and while a second run waits to be submitted: no job is reported finished before
// it ended or in a false state, none is lost, none submitted twice.
func TestSLURMControllerOutage(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	if !slurmRequired() && os.Getenv(restartSLURMEnv) != "1" {
		t.Skipf("stopping slurmctld disturbs everyone using the cluster: set %s=1 or %s=1", restartSLURMEnv, requireSLURMEnv)
	}
	if os.Geteuid() != 0 || !fileExists(filepath.Join(slurmDevBase(), "pids", "slurmctld.pid")) {
		skipOrFail(t, "needs root and a cluster started by deploy/slurm-dev/start.sh (no %s/pids/slurmctld.pid)", slurmDevBase())
	}
	startSh, _ := filepath.Abs("../../deploy/slurm-dev/start.sh")
	stopSh, _ := filepath.Abs("../../deploy/slurm-dev/stop.sh")
	restart := func() error {
		cmd := exec.Command(startSh)
		cmd.Env = append(os.Environ(), "SLURM_DEV_SMOKE=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	restarted := false
	defer func() {
		if !restarted { // never leave the cluster without its controller
			if err := restart(); err != nil {
				t.Errorf("start slurmctld again: %v", err)
			}
		}
	}()

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	p1 := h.prepare(config.Selection{ConfigDir: copyQuickstart(t, filepath.Join(dir, "a"), 6)}, 4, out)
	p2 := h.prepare(config.Selection{ConfigDir: renameTests(t, copyQuickstart(t, filepath.Join(dir, "b"), 2), "late_")}, 2, out)
	sub, col := h.startSeparately(out, time.Second)
	defer col.stop()
	defer sub.stop()
	w := h.startWatcher(nil)
	defer w.stop()
	if err := p1.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	h.waitFor("two of the run's jobs running", func() bool {
		n := 0
		for _, j := range h.sacctRun(p1.RunID) {
			if j.State == scheduler.Running {
				n++
			}
		}
		return n >= 2
	})

	t0 := time.Now()
	if out, err := exec.Command(stopSh, "slurmctld").CombinedOutput(); err != nil {
		t.Fatalf("stop slurmctld: %v: %s", err, out)
	}
	stopped := time.Now()
	// A second run arrives while the controller is away: its sbatch calls fail and retry.
	if err := p2.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(25*time.Second - time.Since(t0))
	callsDuring := h.sched.Calls()
	t1 := time.Now()
	if err := restart(); err != nil {
		t.Fatalf("start slurmctld again: %v", err)
	}
	restarted = true
	back := time.Now()
	t.Logf("slurmctld stopped in %v, away %v, start.sh took %v",
		stopped.Sub(t0).Round(time.Millisecond), back.Sub(t0).Round(time.Millisecond), back.Sub(t1).Round(time.Millisecond))

	prog1, prog2 := h.follow(p1), h.follow(p2)
	h.checkRun(p1, prog1, out)
	h.checkRun(p2, prog2, out)

	// The jobs that ended during the outage prove the point; completions published during
	// it may only be of jobs that ended before it.
	endedDuring := 0
	for _, p := range []*plan.Plan{p1, p2} {
		for _, ev := range h.events(p.RunID) {
			if ev.kind != events.KindCompleted {
				continue
			}
			var c events.JobCompleted
			if err := json.Unmarshal(ev.data, &c); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(filepath.Join(plan.LogDir(out, ev.test, p.RunID), "8_done_"+c.JobID+".txt"))
			if err != nil {
				continue // reported by checkRun
			}
			end := st.ModTime()
			if end.After(t0) && end.Before(back) {
				endedDuring++
			}
			// The controller is back as soon as start.sh starts it (t1); start.sh then
			// waits for the nodes, so a report between t1 and back is rightful. A job that
			// ended while stop.sh was still stopping the controller (t0 to stopped) may
			// have been recorded by it before it went.
			if ev.at.After(t0) && ev.at.Before(t1) && end.After(stopped) {
				t.Errorf("%s: job %s ended at %s during the outage but was reported %s during it, at %s",
					ev.test, c.JobID, end.Format(time.StampMilli), c.Detail, ev.at.Format(time.StampMilli))
			}
		}
	}
	if endedDuring == 0 {
		t.Error("no job ended during the outage: the test proved nothing")
	}
	calls := h.sched.Calls()
	t.Logf("%d jobs ended during the outage; calls until the restart: sbatch %d, sacct %d; in all: sbatch %d, sacct %d, squeue %d",
		endedDuring, callsDuring["sbatch"], callsDuring["sacct"], calls["sbatch"], calls["sacct"], calls["squeue"])
}

// renameTests prefixes every perf config's file name (and so its test id) under cfgDir.
func renameTests(t *testing.T, cfgDir, prefix string) string {
	t.Helper()
	perf := filepath.Join(cfgDir, "disagg", "perf")
	ents, err := os.ReadDir(perf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Rename(filepath.Join(perf, e.Name()), filepath.Join(perf, prefix+e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return cfgDir
}

var (
	medianTTFT = regexp.MustCompile(`(?m)^Median TTFT \(ms\): +([0-9.]+)`)
	medianTPOT = regexp.MustCompile(`(?m)^Median TPOT \(ms\): +([0-9.]+)`)
)

// checkEmulatedJob checks what the emulated job left: for a perf test, one
// concurrency_<c>/result.json a concurrency that agrees with itself and with the
// printed block, TTFTs that vary, and a median TPOT that grows with concurrency; for
// an accuracy test, lm_eval's table from the emulated evaluation.
// checkEmulatedJob checks what an emulated job left and returns its kind: accuracy,
// e2e or gen_only.
func checkEmulatedJob(t *testing.T, s events.JobSpec) string {
	t.Helper()
	if s.Category == "accuracy" {
		b, err := os.ReadFile(filepath.Join(s.LogDir, "7_accuracy_eval_gsm8k.log"))
		if err != nil || !strings.Contains(string(b), "|gsm8k|      3|flexible-extract|") {
			t.Errorf("%s: accuracy log (%v):\n%s", s.TestID, err, b)
		}
		return "accuracy"
	}
	log, err := os.ReadFile(filepath.Join(s.LogDir, "6_bench.log"))
	if err != nil {
		t.Fatal(err)
	}
	kind := "e2e"
	if gen, _ := os.ReadFile(filepath.Join(s.LogDir, "3_output_GEN_0.log")); strings.Contains(string(gen), "TLLM_BENCHMARK_REQ_QUEUES_SIZE") {
		kind = "gen_only"
		for _, c := range s.Concurrencies {
			if b, err := os.ReadFile(filepath.Join(s.LogDir, fmt.Sprintf("concurrency_%d", c), "gen_only_0.txt")); err != nil || len(b) == 0 {
				t.Errorf("%s: concurrency %d: no gen_only iteration slice (%v)", s.TestID, c, err)
			}
		}
	}
	// e2e warms up before the sweep; the warm-up's block is not one of the points.
	i := bytes.Index(log, []byte("Starting benchmark..."))
	if warm := bytes.Index(log, []byte("Warm-up done")); (kind == "e2e") != (warm >= 0 && warm < i) {
		t.Errorf("%s (%s): warm-up before the sweep: %v", s.TestID, kind, warm >= 0)
	}
	if i < 0 {
		t.Fatalf("%s: the sweep never started:\n%s", s.TestID, log)
	}
	log = log[i:]
	ttfts, tpots := medianTTFT.FindAllSubmatch(log, -1), medianTPOT.FindAllSubmatch(log, -1)
	if len(ttfts) != len(s.Concurrencies) || len(tpots) != len(s.Concurrencies) {
		t.Fatalf("%s: %d TTFT and %d TPOT medians for %d concurrencies", s.TestID, len(ttfts), len(tpots), len(s.Concurrencies))
	}
	prev := 0.0
	for i, c := range s.Concurrencies {
		res, err := benchclient.ReadResult(filepath.Join(s.LogDir, fmt.Sprintf("concurrency_%d", c), "result.json"))
		if err != nil {
			t.Errorf("%s: %v", s.TestID, err)
			continue
		}
		printed, _ := strconv.ParseFloat(string(ttfts[i][1]), 64)
		if math.Abs(res.MedianTTFT-printed) > 0.005001 {
			t.Errorf("%s: concurrency %d: median TTFT %v in result.json, %v printed", s.TestID, c, res.MedianTTFT, printed)
		}
		if slices.Min(res.TTFTs) == slices.Max(res.TTFTs) {
			t.Errorf("%s: concurrency %d: every TTFT is the same", s.TestID, c)
		}
		tpot, _ := strconv.ParseFloat(string(tpots[i][1]), 64)
		if tpot <= prev {
			t.Errorf("%s: median TPOT %v at concurrency %d, %v before: it must grow", s.TestID, tpot, c, prev)
		}
		prev = tpot
	}
	return kind
}
