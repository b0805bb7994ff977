package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/plan"
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

func follow(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, false)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: planner %s [flags] RUN_ID\n", cmd)
		fs.PrintDefaults()
	}
	pos, code, ok := settings.Parse(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return code
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
	var onEvent func(string, *plan.Progress)
	if cmd == "watch" {
		onEvent = func(line string, _ *plan.Progress) { fmt.Fprintln(stdout, line) }
	}
	p, err := plan.Follow(ctx, b, run, cmd == "status", onEvent)
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
