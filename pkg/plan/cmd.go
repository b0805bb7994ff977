package plan

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
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/cli"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/slurm"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

type runFlags struct {
	common            cli.Common
	configDir         string
	testList          string
	k, m              string
	gpuType           string
	batchSize         int
	policy            string
	cancelOnInterrupt bool
	pollMin, pollMax  time.Duration
	timeout           time.Duration
}

func (f *runFlags) register(fs *flag.FlagSet, run bool) {
	f.common.Register(fs, true)
	fs.StringVar(&f.configDir, "config-dir", "test_configs", "folder of test configs ({type}/{category}/*.yaml)")
	fs.StringVar(&f.testList, "test-list", "", "test list file (one id a line); a bare name is looked up under testlist/")
	fs.StringVar(&f.k, "k", "", "select tests by expression, as pytest -k")
	fs.StringVar(&f.m, "m", "", "select tests by marker: perf, accuracy or stress")
	fs.StringVar(&f.gpuType, "gpu-type", "", "GPU type (env GPU_TYPE; default GB200)")
	f.batchSize = -1
	fs.Var((*optInt)(&f.batchSize), "batch-size", "at most `N` jobs of the run queued or running at once (env DISAGG_BATCH_SIZE; default 5; 0 = no limit)")
	fs.StringVar(&f.policy, "policy", events.PolicySliding, "sliding: refill a slot as soon as a job ends; barrier: next batch after the whole batch ended")
	if run {
		fs.BoolVar(&f.cancelOnInterrupt, "cancel-on-interrupt", false, "cancel the run's jobs when interrupted")
		fs.DurationVar(&f.pollMin, "poll-min", 0, "shortest status poll interval (default 200ms local, 2s slurm)")
		fs.DurationVar(&f.pollMax, "poll-max", 0, "longest status poll interval (default 5s local, 60s slurm)")
		fs.DurationVar(&f.timeout, "timeout", watch.DefaultTimeLimit, "cancel a job that has not finished this long after submission")
	}
}

func (f *runFlags) options(env config.Env) Options {
	sel := config.Selection{ConfigDir: f.configDir, TestList: f.testList, K: f.k, Marker: f.m, GPUType: f.gpuType, Flags: config.Env{}}
	if f.common.OutputPath != "" {
		sel.Flags["OUTPUT_PATH"] = f.common.OutputPath
	}
	if f.gpuType != "" {
		sel.Flags["GPU_TYPE"] = f.gpuType
	}
	return Options{Selection: sel, BatchSize: f.batchSize, Policy: f.policy, Scheduler: f.common.Scheduler, OutputPath: f.common.OutputPath}
}

// parseRunFlags parses the flags `planner publish` and `planner run` share; a nil
// result comes with the exit code.
func parseRunFlags(cmd string, run bool, args []string, stderr io.Writer) (*runFlags, config.Env, int) {
	fs := flag.NewFlagSet("planner "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	f.register(fs, run)
	if err := fs.Parse(args); err != nil {
		return nil, nil, 2
	}
	env := config.EnvFromOS()
	if err := f.common.Resolve(env); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return nil, nil, 2
	}
	return f, env, 0
}

// RunPublish is `planner publish`: publish the run and print its id.
func RunPublish(args []string, stdout, stderr io.Writer) int {
	f, env, code := parseRunFlags("publish", false, args, stderr)
	if f == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := f.common.Logger(stderr)
	p, err := Prepare(f.options(env), env)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	report(p, stderr)
	b, err := f.common.Connect(ctx, "planner", log)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer b.Close()
	if err := p.Publish(ctx, b); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	fmt.Fprintln(stdout, p.RunID)
	return 0
}

func report(p *Plan, w io.Writer) {
	for _, s := range p.Selected.Skipped {
		fmt.Fprintf(w, "SKIPPED %s: %s\n", s.ID, s.Reason)
	}
	for _, pr := range p.Selected.Warnings {
		fmt.Fprintln(w, pr.String())
	}
	for _, inv := range p.Invalid {
		fmt.Fprintf(w, "INVALID %s:\n", inv.TestID)
		for _, r := range inv.Reasons {
			fmt.Fprintf(w, "  %s\n", r)
		}
	}
}

// Stages runs the submitter, watcher and collector in this process.
type Stages struct {
	Submitter *submit.Submitter
	Watcher   *watch.Watcher
	Collector *collect.Collector
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// StageOptions configure in-process stages.
type StageOptions struct {
	OutputPath       string
	Scheduler        slurm.Scheduler
	Log              *slog.Logger
	View             io.Writer
	PollMin, PollMax time.Duration
	TimeLimit        time.Duration
	Env              config.Env
}

// StartStages starts the three stages on b; Stop ends them.
func StartStages(ctx context.Context, b *bus.Bus, o StageOptions) (*Stages, error) {
	sub, err := submit.New(submit.Config{Bus: b, Scheduler: o.Scheduler, Log: o.Log, View: o.View,
		DebugMode: o.Env["DEBUG_MODE"] == "1", DebugJobID: o.Env["DEBUG_JOB_ID"]})
	if err != nil {
		return nil, err
	}
	w, err := watch.New(watch.Config{Bus: b, Scheduler: o.Scheduler, Log: o.Log, PollMin: o.PollMin, PollMax: o.PollMax, TimeLimit: o.TimeLimit})
	if err != nil {
		return nil, err
	}
	col, err := collect.New(collect.Config{Bus: b, OutputPath: o.OutputPath, Log: o.Log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stages{Submitter: sub, Watcher: w, Collector: col, cancel: cancel}
	for name, run := range map[string]func(context.Context) error{"submitter": sub.Run, "watcher": w.Run, "collector": col.Run} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				o.Log.Error("stage stopped", "stage", name, "err", err)
			}
		}()
	}
	return s, nil
}

// Stop ends the stages and waits for them.
func (s *Stages) Stop() {
	s.cancel()
	s.wg.Wait()
}

// RunRun is `planner run`: publish, then follow the run to its end.
func RunRun(args []string, stdout, stderr io.Writer) int {
	f, env, code := parseRunFlags("run", true, args, stderr)
	if f == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(f.common.OutputPath, 0o755); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	logPath := filepath.Join(f.common.OutputPath, "disagg_benchmark_"+time.Now().Format("20060102_150405")+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer logFile.Close()
	tty := isTerminal(stdout)
	var logOut io.Writer = logFile
	if !tty {
		logOut = io.MultiWriter(logFile, stderr)
	}
	log := f.common.Logger(logOut)

	p, err := Prepare(f.options(env), env)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	report(p, io.MultiWriter(stderr, logFile))
	b, err := f.common.Connect(ctx, "planner", log)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer b.Close()

	var sched slurm.Scheduler
	var stages *Stages
	if f.common.NATS == "" || f.cancelOnInterrupt {
		if sched, err = f.common.NewScheduler(); err != nil {
			fmt.Fprintln(stderr, "planner:", err)
			return 1
		}
		if c, ok := sched.(io.Closer); ok {
			defer c.Close()
		}
	}
	if f.common.NATS == "" {
		pmin, pmax := f.pollMin, f.pollMax
		if pmin == 0 {
			pmin = map[bool]time.Duration{true: 2 * time.Second, false: 200 * time.Millisecond}[f.common.Scheduler == "slurm"]
		}
		if pmax == 0 {
			pmax = map[bool]time.Duration{true: 60 * time.Second, false: 5 * time.Second}[f.common.Scheduler == "slurm"]
		}
		stages, err = StartStages(context.WithoutCancel(ctx), b, StageOptions{
			OutputPath: f.common.OutputPath, Scheduler: sched, Log: log, View: logOut,
			PollMin: pmin, PollMax: pmax, TimeLimit: f.timeout, Env: env,
		})
		if err != nil {
			fmt.Fprintln(stderr, "planner:", err)
			return 1
		}
		defer stages.Stop()
	}
	if err := p.Publish(ctx, b); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	fmt.Fprintf(stderr, "run %s: %d tests (%d invalid), batch size %d, policy %s, scheduler %s\nlog: %s\n",
		p.RunID, p.Started.Tests, p.Started.Invalid, p.BatchSize, p.Policy, f.common.Scheduler, logPath)
	if b.ServerURL() != "" {
		fmt.Fprintf(stderr, "events: nats sub --server %s 'bench.*.%s.>'\n", b.ServerURL(), events.Token(p.RunID))
	}
	start := time.Now()
	var mu sync.Mutex
	var counts [4]int
	draw := func() {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "\r\033[K[%s] queued %d  running %d  done %d  failed %d  elapsed %s",
			p.RunID, counts[0], counts[1], counts[2], counts[3], time.Since(start).Round(time.Second))
	}
	stopDraw := make(chan struct{})
	drawn := make(chan struct{})
	go func() {
		defer close(drawn)
		if !tty {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopDraw:
				return
			case <-t.C:
				draw()
			}
		}
	}()
	prog, err := Follow(ctx, b, p.RunID, false, func(line string, pr *Progress) {
		log.Info(line)
		q, r, d, fl := pr.Counts()
		mu.Lock()
		counts = [4]int{q, r, d, fl}
		mu.Unlock()
		if tty {
			draw()
		}
	})
	close(stopDraw)
	<-drawn
	if tty {
		fmt.Fprintln(stdout)
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "interrupted: run %s stays recorded (planner status %s)\n", p.RunID, p.RunID)
			if f.cancelOnInterrupt && sched != nil {
				cancelRun(b, sched, p.RunID, stderr)
			}
			return 130
		}
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	summary := prog.Summary()
	fmt.Fprint(stdout, summary)
	fmt.Fprint(logFile, summary)
	_, _, _, failed := prog.Counts()
	if failed > 0 || prog.Finished == nil || prog.Finished.Failed > 0 {
		return 1
	}
	return 0
}

// cancelRun cancels every job of the run that the ledger says is submitted.
func cancelRun(b *bus.Bus, sched slurm.Scheduler, run string, w io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := b.Jobs.ListKeysFiltered(ctx, events.Token(run)+".*")
	if err != nil {
		fmt.Fprintln(w, "cancel:", err)
		return
	}
	for k := range keys.Keys() {
		var rec events.JobRecord
		if _, err := bus.GetJSON(ctx, b.Jobs, k, &rec); err != nil || rec.Phase != events.PhaseSubmitted || rec.JobID == "" {
			continue
		}
		if err := sched.Cancel(ctx, rec.JobID); err != nil {
			fmt.Fprintf(w, "cancel job %s: %v\n", rec.JobID, err)
		} else {
			fmt.Fprintf(w, "cancelled job %s (%s)\n", rec.JobID, rec.TestID)
		}
	}
}

// RunStatus is `planner status RUN`.
func RunStatus(args []string, stdout, stderr io.Writer) int {
	return follow("status", args, stdout, stderr)
}

// RunWatch is `planner watch RUN`.
func RunWatch(args []string, stdout, stderr io.Writer) int {
	return follow("watch", args, stdout, stderr)
}

func follow(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c cli.Common
	c.Register(fs, false)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "usage: planner %s [flags] RUN_ID\n", cmd)
		return 2
	}
	run := pos[0]
	if err := c.Resolve(config.EnvFromOS()); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := c.Connect(ctx, "planner-"+cmd, c.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer b.Close()
	var onEvent func(string, *Progress)
	if cmd == "watch" {
		onEvent = func(line string, _ *Progress) { fmt.Fprintln(stdout, line) }
	}
	p, err := Follow(ctx, b, run, cmd == "status", onEvent)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	if p.Started == nil {
		fmt.Fprintf(stderr, "planner: no run %q in the event stream\n", run)
		return 1
	}
	q, r, d, fl := p.Counts()
	fmt.Fprintf(stdout, "run %s: %d tests: queued %d, running %d, done %d (failed %d)", run, len(p.Tests), q, r, d, fl)
	if p.Finished != nil {
		fmt.Fprintf(stdout, "; finished")
	}
	fmt.Fprintln(stdout)
	if cmd == "status" {
		fmt.Fprint(stdout, p.Summary())
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// parseInterspersed parses flags that may stand before or after the positional
// arguments, as in `planner status RUN --nats URL`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// optInt is an int flag whose unset value (-1) prints as nothing.
type optInt int

func (o *optInt) String() string {
	if o == nil || *o <= 0 { // unset (or 0): print no default in -h
		return ""
	}
	return strconv.Itoa(int(*o))
}

func (o *optInt) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return fmt.Errorf("want a whole number >= 0")
	}
	*o = optInt(n)
	return nil
}
