package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

type runFlags struct {
	common            settings.Common
	configDir         string
	testList          string
	k, m              string
	gpuType           string
	batchSize         int
	policy            string
	order             string
	queueAhead        bool
	cancelOnInterrupt bool
	follow            followFlags
	ids               []string // only these tests (planner rerun)
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
	fs.StringVar(&f.order, "order", "", "submission order: file (sorted ids) or lpt (longest expected duration first, from earlier runs); default lpt when any selected test has history")
	fs.StringVar(&f.policy, "policy", events.PolicySliding, "sliding: refill a slot as soon as a job ends; barrier: next batch after the whole batch ended")
	fs.BoolVar(&f.queueAhead, "queue-ahead", false, "sliding, slurm: with the window full, submit the next job held on the window's jobs (sbatch --dependency=afterany:A?afterany:B...), so SLURM starts it the moment one ends")
	if run {
		f.common.RegisterHTTP(fs)
		fs.BoolVar(&f.cancelOnInterrupt, "cancel-on-interrupt", false, "cancel the run's jobs when interrupted")
		f.follow.register(fs)
	}
}

func (f *runFlags) options(env config.Env) plan.Options {
	sel := config.Selection{ConfigDir: f.configDir, TestList: f.testList, K: f.k, Marker: f.m, GPUType: f.gpuType, Flags: config.Env{}, IDs: f.ids}
	if f.common.OutputPath != "" {
		sel.Flags["OUTPUT_PATH"] = f.common.OutputPath
	}
	if f.gpuType != "" {
		sel.Flags["GPU_TYPE"] = f.gpuType
	}
	return plan.Options{Selection: sel, BatchSize: f.batchSize, Policy: f.policy, Order: f.order, QueueAhead: f.queueAhead, Scheduler: f.common.Scheduler, OutputPath: f.common.OutputPath}
}

// parseRunFlags parses the flags `planner publish` and `planner run` share; a nil
// result comes with the exit code.
func parseRunFlags(cmd string, run bool, args []string, stdout, stderr io.Writer) (*runFlags, config.Env, int) {
	fs := flag.NewFlagSet("planner "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	f.register(fs, run)
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return nil, nil, code
	}
	env := config.EnvFromOS()
	if err := f.common.Resolve(env); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return nil, nil, 2
	}
	return f, env, 0
}

// runPublish is `planner publish`: publish the run and print its id.
func runPublish(args []string, stdout, stderr io.Writer) int {
	f, env, code := parseRunFlags("publish", false, args, stdout, stderr)
	if f == nil {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := f.common.Logger(stderr)
	p, err := plan.Prepare(f.options(env), env)
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	report(p, stderr)
	if f.common.NATS == "" {
		fmt.Fprintf(stderr, "planner publish: warning: no --nats: run %s goes to the embedded server of %s, and nothing runs it "+
			"unless a submitter, watcher and collector are attached to that output path; use 'planner run' to run it here\n",
			p.RunID, f.common.OutputPath)
	}
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

func report(p *plan.Plan, w io.Writer) {
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
