package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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
	logsFrom := fs.String("logs-from", "", "output path whose slurm_logs hold the jobs' folders (default --output-path); folders elsewhere are not read")
	dryRun := fs.Bool("dry-run", false, "print what would change (rows added, removed, changed per run) and write nothing")
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	if err := c.Resolve(settings.Env()); err != nil {
		fmt.Fprintln(stderr, "collector replay:", err)
		return 2
	}
	o := collect.ReplayOptions{RunID: *run, OutputPath: c.OutputPath, LogsFrom: *logsFrom, MaxFailedRequests: *maxFailed, DryRun: *dryRun}
	if o.LogsFrom != "" {
		abs, err := filepath.Abs(o.LogsFrom)
		if err != nil {
			fmt.Fprintln(stderr, "collector replay:", err)
			return 2
		}
		o.LogsFrom = abs
	}
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
	res, err := collect.Replay(ctx, b, o)
	if err != nil {
		fmt.Fprintln(stderr, "collector replay:", err)
		return 1
	}
	for _, run := range res.Runs {
		d := res.Diff[run]
		fmt.Fprintf(stdout, "run %s: %d added, %d removed, %d changed, %d unchanged\n", run, d.Added, d.Removed, d.Changed, d.Unchanged)
	}
	verb := "replayed"
	if *dryRun {
		verb = "dry run: would replay"
	}
	fmt.Fprintf(stdout, "%s %d %s, %d %s into %s\n", verb, res.Tests, plural(res.Tests, "test"), res.Rows, plural(res.Rows, "row"), c.OutputPath)
	return 0
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
