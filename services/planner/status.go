package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

// runStatus is `planner status RUN`.
func runStatus(args []string, stdout, stderr io.Writer) int {
	return follow("status", args, stdout, stderr)
}

// runWatch is `planner watch RUN`.
func runWatch(args []string, stdout, stderr io.Writer) int {
	return follow("watch", args, stdout, stderr)
}

// oneRunArg parses flags and exactly one RUN_ID.
func oneRunArg(cmd string, fs *flag.FlagSet, c *settings.Common, args []string, stdout, stderr io.Writer) (string, int) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: planner %s [flags] RUN_ID\n", cmd)
		fs.PrintDefaults()
	}
	pos, code, ok := settings.Parse(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return "", code
	}
	if err := c.Resolve(config.EnvFromOS()); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return "", 2
	}
	return pos[0], 0
}

// connectRun connects for a command on an existing run and checks that the run exists:
// an unknown id fails at once, and a folder with no store is left untouched.
func connectRun(ctx context.Context, c *settings.Common, name, run string, stderr io.Writer) (*bus.Bus, int) {
	b, err := c.ConnectMode(ctx, name, c.Logger(stderr), settings.Mode{ReadOnly: true})
	if err != nil {
		if errors.Is(err, bus.ErrNoStore) {
			fmt.Fprintf(stderr, "planner: unknown run %q: %v\n", run, err)
		} else {
			fmt.Fprintln(stderr, "planner:", err)
		}
		return nil, 1
	}
	if _, err := progress.Lookup(ctx, b, run); err != nil {
		b.Close()
		fmt.Fprintln(stderr, "planner:", err)
		return nil, 1
	}
	return b, 0
}

func follow(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, false)
	var junit string
	var wide bool
	if cmd == "status" {
		fs.StringVar(&junit, "junit-xml", "", "write the run's results as JUnit XML to `FILE`")
		fs.BoolVar(&wide, "wide", false, "full test ids in the summary, however wide")
	}
	run, code := oneRunArg(cmd, fs, &c, args, stdout, stderr)
	if run == "" {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, code := connectRun(ctx, &c, "planner-"+cmd, run, stderr)
	if b == nil {
		return code
	}
	defer b.Close()
	var onEvent func(string, *progress.Progress)
	if cmd == "watch" {
		onEvent = func(line string, _ *progress.Progress) { fmt.Fprintln(stdout, line) }
	}
	p, err := progress.Follow(ctx, b, run, cmd == "status", onEvent)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	if p.Started == nil {
		fmt.Fprintf(stderr, "planner: run %q has no start event in the stream\n", run)
		return 1
	}
	rec, _ := progress.Lookup(context.WithoutCancel(ctx), b, run)
	fmt.Fprintf(stdout, "run %s: %s: %s", run, progress.Count(len(p.Tests), "test"), p.Counts())
	switch {
	case rec != nil && rec.Cancelled:
		fmt.Fprintf(stdout, "; cancelled")
	case p.Finished != nil:
		fmt.Fprintf(stdout, "; finished")
	}
	fmt.Fprintln(stdout)
	if cmd == "status" {
		fmt.Fprint(stdout, p.SummaryFit(summaryWidth(isTerminal(stdout), wide)))
		if !writeJUnit(p, junit, stderr) {
			return 1
		}
	}
	return 0
}

// runResume is `planner resume RUN_ID`: follow a run to its end, with the stages in
// this process when no --nats is given. The ledger keeps passed tests from running again
// and jobs still in the scheduler from being submitted again.
func runResume(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner resume", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, true)
	var ff followFlags
	ff.register(fs)
	run, code := oneRunArg("resume", fs, &c, args, stdout, stderr)
	if run == "" {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Check the id before anything starts or is written.
	b, code := connectRun(ctx, &c, "planner-resume", run, stderr)
	if b == nil {
		return code
	}
	b.Close()
	s, err := open(ctx, &c, &ff, config.EnvFromOS(), stdout, stderr, false)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer s.close()
	fmt.Fprintf(stderr, "resuming run %s\nlog: %s\n", run, s.logPath)
	return s.follow(ctx, run, &ff, stdout, stderr)
}

// runCancel is `planner cancel RUN_ID`: cancel the run's queued and running jobs and
// mark the run and its unfinished tests CANCELLED.
func runCancel(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner cancel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, true)
	wait := fs.Duration("wait", time.Minute, "with the embedded server, how long to wait for the cancelled tests' results")
	run, code := oneRunArg("cancel", fs, &c, args, stdout, stderr)
	if run == "" {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, code := connectRun(ctx, &c, "planner-cancel", run, stderr)
	if b == nil {
		return code
	}
	if c.NATS != "" {
		// The stages run elsewhere; they record the cancelled tests.
		defer b.Close()
		sched, err := c.NewScheduler()
		if err != nil {
			fmt.Fprintln(stderr, "planner:", err)
			return 1
		}
		if err := cancelAndReport(b, sched, run, stdout); err != nil {
			return 1
		}
		fmt.Fprintf(stdout, "run %s cancelled\n", run)
		return 0
	}
	// With the embedded server, the tests are marked cancelled first, before this
	// process starts the stages (a submitter started first could submit a test the
	// cancel is about to mark); then the stages record the cancelled tests' results and
	// the run's end.
	sched, err := c.NewScheduler()
	if err != nil {
		b.Close()
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	cerr := cancelAndReport(b, sched, run, stdout)
	if cl, ok := sched.(io.Closer); ok {
		cl.Close()
	}
	b.Close()
	if cerr != nil {
		return 1
	}
	ff := followFlags{timeout: time.Hour}
	s, err := open(ctx, &c, &ff, config.EnvFromOS(), io.Discard, stderr, true)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer s.close()
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	p, err := progress.Follow(wctx, s.b, run, false, nil)
	if err != nil {
		fmt.Fprintf(stderr, "planner: run %s cancelled, but not every result is recorded yet (%v); planner status %s shows it\n", run, err, run)
		return 1
	}
	fmt.Fprintf(stdout, "run %s cancelled: %s\n", run, p.Counts())
	return 0
}

// runRerun is `planner rerun --failed RUN_ID`: a new run of the tests of RUN_ID that
// failed, were invalid or were cancelled (pytest's --lf).
func runRerun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner rerun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	f.register(fs, true)
	failed := fs.Bool("failed", false, "rerun the failed, invalid and cancelled tests (required)")
	run, code := oneRunArg("rerun", fs, &f.common, args, stdout, stderr)
	if run == "" {
		return code
	}
	if !*failed {
		fmt.Fprintln(stderr, "usage: planner rerun --failed [flags] RUN_ID")
		return 2
	}
	explicit := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { explicit[fl.Name] = true })
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	b, code := connectRun(ctx, &f.common, "planner-rerun", run, stderr)
	if b == nil {
		stop()
		return code
	}
	prev, err := progress.Follow(ctx, b, run, true, nil)
	b.Close()
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	ids := prev.FailedTests()
	if len(ids) == 0 {
		fmt.Fprintf(stderr, "planner: run %s has no failed, invalid or cancelled test to rerun\n", run)
		return 1
	}
	if !explicit["config-dir"] && prev.Started != nil {
		if dir := selectionPart(prev.Started.Selection, "config-dir"); dir != "" {
			f.configDir = dir
		}
	}
	f.testList = ""
	env := config.EnvFromOS()
	fmt.Fprintf(stderr, "rerun of %s: %s: %s\n", run, progress.Count(len(ids), "test"), strings.Join(ids, " "))
	f.ids = ids
	return publishAndFollow(f, env, stdout, stderr)
}

// selectionPart reads key=value out of a run's selection description.
func selectionPart(desc, key string) string {
	for _, part := range strings.Fields(desc) {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v
		}
	}
	return ""
}
