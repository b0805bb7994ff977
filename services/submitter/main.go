// Command submitter runs on the cluster's login node: it takes batch work from NATS,
// writes each job's files, submits them and publishes "submitted".
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/cli"
	"github.com/disaggbench/disaggbench/pkg/submit"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	return cli.Serve("submitter", args, stderr, true, nil,
		func(ctx context.Context, c *cli.Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error) {
			sched, err := c.NewScheduler()
			if err != nil {
				return nil, err
			}
			env := cli.Env()
			s, err := submit.New(submit.Config{Bus: b, Scheduler: sched, Log: log, View: stderr,
				DebugMode: env["DEBUG_MODE"] == "1", DebugJobID: env["DEBUG_JOB_ID"]})
			if err != nil {
				return nil, err
			}
			return s.Run, nil
		})
}
