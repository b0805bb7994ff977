// Command submitter runs on the cluster's login node: it takes batch work from NATS,
// writes each job's files, submits them and publishes "submitted".
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/settings"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/services/internal/seedview"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	var ackWait time.Duration
	return settings.Serve("submitter", args, stderr, true,
		func(fs *flag.FlagSet) {
			fs.DurationVar(&ackWait, "ack-wait", submit.DefaultAckWait, "a batch without a heartbeat this long goes to another submitter")
		},
		func(ctx context.Context, c *settings.Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error) {
			sched, err := c.NewScheduler()
			if err != nil {
				return nil, err
			}
			debug, debugJob := config.DebugMode(nil, settings.Env())
			s, err := submit.New(submit.Config{Bus: b, Scheduler: sched, OutputPath: c.OutputPath, Log: log, Notify: seedview.New(stderr),
				DebugMode: debug, DebugJobID: debugJob, AckWait: ackWait})
			if err != nil {
				return nil, err
			}
			return s.Run, nil
		})
}
