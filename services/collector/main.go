// Command collector turns completed jobs into results: the seed's CSV, a Parquet
// dataset and result events. `collector parse` reads a log offline; `collector replay`
// rebuilds the outputs from the stored events.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/settings"

	"github.com/disaggbench/disaggbench/pkg/redact"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `usage: collector [serve] [flags]     run the collector service (flags: collector serve -h)
       collector parse [flags] PATH    judge a job's logs offline
       collector replay [flags]        rebuild the CSV and Parquet from stored events
       collector --version

Run 'collector COMMAND -h' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	stderr = redact.Writer(stderr) // no credential reaches the terminal
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help", "help":
			fmt.Fprint(stdout, usage)
			return 0
		case "parse":
			return runParse(args[1:], stdout, stderr)
		case "replay":
			return runReplay(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	var maxFailed int
	var ackWait, giveUp time.Duration
	return settings.Serve("collector", args, stderr, false,
		func(fs *flag.FlagSet) {
			fs.IntVar(&maxFailed, "max-failed-requests", 0, "failed requests a perf test may have and still pass")
			fs.DurationVar(&ackWait, "ack-wait", collect.DefaultAckWait, "a completion not acknowledged this long goes to another collector")
			fs.DurationVar(&giveUp, "give-up-after", collect.DefaultGiveUpAfter, "fail a test whose results cannot be written after retrying this long")
		},
		func(ctx context.Context, c *settings.Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error) {
			col, err := collect.New(collect.Config{Bus: b, OutputPath: c.OutputPath, Log: log, MaxFailedRequests: maxFailed, AckWait: ackWait, GiveUpAfter: giveUp})
			if err != nil {
				return nil, err
			}
			return col.Run, nil
		})
}
