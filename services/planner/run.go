package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/settings"
	"github.com/disaggbench/disaggbench/pkg/watch"
	"github.com/disaggbench/disaggbench/services/internal/seedview"
)

// followFlags are what the commands that follow a run to its end share (run, resume,
// rerun): the stages' settings when they run in this process, and the outputs.
type followFlags struct {
	pollMin, pollMax time.Duration
	timeout          time.Duration
	queuePoll        time.Duration
	maxRetries       int
	junitXML         string
	wide             bool
	giveUpAfter      time.Duration
}

func (f *followFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.pollMin, "poll-min", 0, "shortest status poll interval (default 200ms local, 2s slurm)")
	fs.DurationVar(&f.pollMax, "poll-max", 0, "longest status poll interval (default 5s local, 60s slurm)")
	fs.DurationVar(&f.queuePoll, "queue-poll", time.Second, "slurm: interval of the squeue check while jobs run; 0 turns it off")
	fs.IntVar(&f.maxRetries, "max-retries", watch.DefaultMaxRetries, "submit a test again at most this many times after NODE_FAIL, BOOT_FAIL or PREEMPTED, excluding the failed nodes; 0 never")
	fs.DurationVar(&f.timeout, "timeout", watch.DefaultTimeLimit, "cancel a job that has not finished this long after submission")
	fs.StringVar(&f.junitXML, "junit-xml", "", "write the run's results as JUnit XML to `FILE` (as pytest --junit-xml)")
	fs.BoolVar(&f.wide, "wide", false, "full test ids in the summary, however wide")
	fs.DurationVar(&f.giveUpAfter, "give-up-after", collect.DefaultGiveUpAfter, "fail a test whose results cannot be written after retrying this long")
}

// session is a command attached to an output path's bus, with the stages running in
// this process when no --nats was given.
type session struct {
	common  *settings.Common
	b       *bus.Bus
	stages  *pipeline.Stages
	sched   scheduler.Scheduler
	log     *slog.Logger
	logFile *os.File
	logPath string
	logOut  io.Writer
	tty     bool
	// prefaced: the command already said the run started (with more than the event has).
	prefaced bool
	health   *obs.Server
}

// shown says whether an event's line is already in the output by other means: each
// event is logged once. The embedded submitter's batch view lists every submission.
func (s *session) shown(kind string) bool {
	switch kind {
	case "job." + events.KindSubmitted:
		return s.stages != nil
	case "run.started":
		return s.prefaced
	}
	return false
}

// open starts the run log, connects (holding the embedded server until done) and, with
// no --nats, starts the stages.
func open(ctx context.Context, c *settings.Common, ff *followFlags, env config.Env, stdout, stderr io.Writer, needSched bool) (*session, error) {
	if err := os.MkdirAll(c.OutputPath, 0o755); err != nil {
		return nil, err
	}
	s := &session{common: c, tty: isTerminal(stdout)}
	s.logPath = filepath.Join(c.OutputPath, "disagg_benchmark_"+time.Now().Format("20060102_150405")+".log")
	lf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	s.logFile = lf
	s.logOut = lf
	if !s.tty {
		s.logOut = io.MultiWriter(lf, stderr)
	}
	s.log = c.Logger(s.logOut)
	if s.health, err = c.ServeHTTP(s.log); err != nil {
		s.close()
		return nil, err
	}
	s.b, err = c.ConnectMode(ctx, "planner", s.log, settings.Mode{Hold: true})
	if err != nil {
		s.close()
		return nil, err
	}
	var durables []string
	if c.NATS == "" {
		durables = []string{bus.RoleSubmitter, bus.RoleWatcher, bus.RoleCollector} // the embedded stages'
	}
	settings.Ready(s.health, s.b, durables...)
	if c.NATS == "" || needSched {
		if s.sched, err = c.NewScheduler(); err != nil {
			s.close()
			return nil, err
		}
	}
	if c.NATS == "" {
		slurmSched := c.Scheduler == "slurm"
		pmin, pmax := ff.pollMin, ff.pollMax
		if pmin == 0 {
			pmin = map[bool]time.Duration{true: 2 * time.Second, false: 200 * time.Millisecond}[slurmSched]
		}
		if pmax == 0 {
			pmax = map[bool]time.Duration{true: 60 * time.Second, false: 5 * time.Second}[slurmSched]
		}
		s.stages, err = pipeline.Start(context.WithoutCancel(ctx), s.b, pipeline.Options{
			OutputPath: c.OutputPath, Scheduler: s.sched, Log: s.log, Notify: seedview.New(s.logOut),
			PollMin: pmin, PollMax: pmax, QueuePoll: watch.QueuePollFlag(ff.queuePoll), MaxRetries: watch.MaxRetriesFlag(ff.maxRetries), TimeLimit: ff.timeout, Env: env, GiveUpAfter: ff.giveUpAfter,
		})
		if err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *session) close() {
	if s.health != nil {
		s.health.Close()
	}
	if s.stages != nil {
		s.stages.Stop()
	}
	if c, ok := s.sched.(io.Closer); ok {
		c.Close()
	}
	if s.b != nil {
		s.b.Close()
	}
	if s.logFile != nil {
		s.logFile.Close()
	}
}

// follow shows the run's progress until it finishes, then the summary; it returns the
// exit code. Interrupted, it says how to resume or cancel the run.
func (s *session) follow(ctx context.Context, run string, ff *followFlags, stdout, stderr io.Writer) int {
	if url := s.b.ServerURL(); url != "" {
		fmt.Fprintf(stderr, "events: nats sub --server %s --token \"$(cat %s)\" 'bench.*.%s.>'\n",
			url, filepath.Join(s.common.StoreDir(), bus.TokenFile), events.Token(run))
	}
	pl := &progressLine{run: run, start: time.Now(), width: terminalWidth(), out: stdout}
	if s.tty {
		defer pl.every(time.Second)()
	}
	prog, err := progress.Follow(ctx, s.b, run, false, func(line string, pr *progress.Progress) {
		if !s.shown(pr.Kind) {
			s.log.Info(line)
		}
		pl.set(pr, s.tty)
	})
	if s.tty {
		pl.stop()
		fmt.Fprintln(stdout)
	}
	if err != nil {
		if ctx.Err() != nil {
			s.interrupted(run, stderr)
			writeJUnit(prog, ff.junitXML, stderr)
			return 130
		}
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	summary := prog.SummaryFit(summaryWidth(s.tty, ff.wide))
	fmt.Fprint(stdout, summary)
	fmt.Fprint(s.logFile, prog.Summary())
	if !writeJUnit(prog, ff.junitXML, stderr) {
		return 1
	}
	if prog.Counts().Failed > 0 || prog.Finished == nil || prog.Finished.Failed > 0 {
		return 1
	}
	return 0
}

// interrupted says how to finish or cancel a run that was interrupted.
func (s *session) interrupted(run string, stderr io.Writer) {
	out := ""
	if s.common.OutputPath != "" {
		out = " --output-path " + s.common.OutputPath
	}
	nats := ""
	if s.common.NATS != "" {
		nats = " --nats URL"
	}
	fmt.Fprintf(stderr, "\ninterrupted: run %s is not finished; jobs already in the scheduler keep running.\n"+
		"  follow it to its end:  planner resume %s%s%s\n"+
		"  or cancel it:          planner cancel %s%s%s\n", run, run, out, nats, run, out, nats)
}

// progressLine draws a run's one-line progress on a terminal: counts, elapsed time, the
// first problem and the running tests with their time, cut at the terminal's width.
type progressLine struct {
	run   string
	start time.Time
	width int
	out   io.Writer

	mu     sync.Mutex
	last   *progress.Progress
	halt   chan struct{}
	halted chan struct{}
}

// set records the latest progress and, on a terminal, draws it.
func (pl *progressLine) set(pr *progress.Progress, draw bool) {
	pl.mu.Lock()
	pl.last = pr
	pl.mu.Unlock()
	if draw {
		pl.draw()
	}
}

func (pl *progressLine) draw() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.last == nil {
		return
	}
	line := fmt.Sprintf("[%s] %s  elapsed %s", pl.run, pl.last.Counts(), time.Since(pl.start).Round(time.Second))
	if probs := pl.last.Problems(); len(probs) > 0 {
		line += fmt.Sprintf("  PROBLEM %s: %s: %s", probs[0].TestID, probs[0].Problem.Stage, probs[0].Problem.Reason)
	}
	for _, t := range pl.last.RunningTests() {
		line += fmt.Sprintf("  %s %s", t.TestID, time.Since(t.Running).Round(time.Second))
	}
	if len(line) > pl.width-1 {
		line = line[:pl.width-4] + "..."
	}
	fmt.Fprintf(pl.out, "\r\033[K%s", line)
}

// every redraws the line at each tick until stop; it returns stop.
func (pl *progressLine) every(d time.Duration) func() {
	pl.halt, pl.halted = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(pl.halted)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-pl.halt:
				return
			case <-t.C:
				pl.draw()
			}
		}
	}()
	return pl.stop
}

// stop ends the redrawing (once; later calls do nothing).
func (pl *progressLine) stop() {
	if pl.halt == nil {
		return
	}
	select {
	case <-pl.halt:
	default:
		close(pl.halt)
	}
	<-pl.halted
}

func summaryWidth(tty, wide bool) int {
	if !tty || wide {
		return 0
	}
	return terminalWidth()
}

// terminalWidth is $COLUMNS, or 100.
func terminalWidth() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("COLUMNS"), &n); err == nil && n >= 40 {
		return n
	}
	return 100
}

func writeJUnit(p *progress.Progress, path string, stderr io.Writer) bool {
	if path == "" || p == nil {
		return true
	}
	var sb strings.Builder
	if err := p.WriteJUnit(&sb); err != nil {
		fmt.Fprintln(stderr, "planner: junit:", err)
		return false
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		fmt.Fprintln(stderr, "planner: junit:", err)
		return false
	}
	return true
}

// runRun is `planner run`: publish, then follow the run to its end.
func runRun(args []string, stdout, stderr io.Writer) int {
	f, env, code := parseRunFlags("run", true, args, stdout, stderr)
	if f == nil {
		return code
	}
	return publishAndFollow(f, env, stdout, stderr)
}

func publishAndFollow(f *runFlags, env config.Env, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := plan.Prepare(f.options(env), env)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	s, err := open(ctx, &f.common, &f.follow, env, stdout, stderr, f.cancelOnInterrupt)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer s.close()
	report(p, io.MultiWriter(stderr, s.logFile))
	if err := p.Publish(ctx, s.b); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	fmt.Fprintf(io.MultiWriter(stderr, s.logFile), "run %s: %s (%d invalid), batch size %d, policy %s, order %s (history for %d), scheduler %s\nlog: %s\n",
		p.RunID, progress.Count(p.Started.Tests, "test"), p.Started.Invalid, p.BatchSize, p.Policy, p.Order, p.Known, f.common.Scheduler, s.logPath)
	s.prefaced = true
	code := s.follow(ctx, p.RunID, &f.follow, stdout, stderr)
	if code == 130 && f.cancelOnInterrupt && s.sched != nil {
		cancelAndReport(s.b, s.sched, p.RunID, stderr)
	}
	return code
}

// cancelAndReport cancels a run's unfinished tests and says what it did.
func cancelAndReport(b *bus.Bus, sched scheduler.Scheduler, run string, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done, err := progress.Cancel(ctx, b, sched, run)
	for _, c := range done {
		switch {
		case c.Err != nil:
			fmt.Fprintf(w, "cancel job %s (%s): %v\n", c.JobID, c.TestID, c.Err)
		case c.JobID != "":
			fmt.Fprintf(w, "cancelled job %s (%s)\n", c.JobID, c.TestID)
		default:
			fmt.Fprintf(w, "cancelled %s (not submitted)\n", c.TestID)
		}
	}
	if err != nil && !errors.Is(err, progress.ErrUnknownRun) {
		fmt.Fprintln(w, "cancel:", err)
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
