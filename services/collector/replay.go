package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

// runReplay is `collector replay [--run ID] [--since TIME]`.
func runReplay(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, false)
	run := fs.String("run", "", "only this run")
	since := fs.String("since", "", "only events stored since this time (RFC 3339, or a duration such as 24h)")
	maxFailed := fs.Int("max-failed-requests", 0, "failed requests a perf test may have and still pass")
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	if err := c.Resolve(settings.Env()); err != nil {
		fmt.Fprintln(stderr, "collector replay:", err)
		return 2
	}
	o := collect.ReplayOptions{RunID: *run, OutputPath: c.OutputPath, MaxFailedRequests: *maxFailed}
	if *since != "" {
		if d, err := time.ParseDuration(*since); err == nil {
			o.Since = time.Now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, *since); err == nil {
			o.Since = t
		} else {
			fmt.Fprintf(stderr, "collector replay: --since %q: want RFC 3339 time or a duration\n", *since)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := c.Connect(ctx, "collector-replay", c.Logger(stderr))
	if err != nil {
		fmt.Fprintln(stderr, "collector replay:", err)
		return 1
	}
	defer b.Close()
	tests, rows, err := collect.Replay(ctx, b, o)
	if err != nil {
		fmt.Fprintln(stderr, "collector replay:", err)
		return 1
	}
	fmt.Fprintf(stdout, "replayed %d tests, %d rows into %s\n", tests, rows, c.OutputPath)
	return 0
}
