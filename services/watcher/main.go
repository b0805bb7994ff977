// Command watcher tracks submitted jobs with one scheduler query per poll cycle and
// publishes their state changes and completion.
package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/settings"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	var pollMin, pollMax, queuePoll, timeout, ackWait time.Duration
	var maxRetries int
	return settings.Serve("watcher", args, stderr, true,
		func(fs *flag.FlagSet) {
			fs.DurationVar(&pollMin, "poll-min", 2*time.Second, "poll interval right after a change")
			fs.DurationVar(&pollMax, "poll-max", 60*time.Second, "longest poll interval while nothing changes; with a queue check, the interval of the full sacct safety net")
			fs.DurationVar(&queuePoll, "queue-poll", time.Second, "interval of the squeue check while jobs run (sacct is then asked only about jobs that left the queue); 0 turns it off")
			fs.DurationVar(&timeout, "timeout", watch.DefaultTimeLimit, "cancel a job not finished this long after submission")
			fs.DurationVar(&ackWait, "ack-wait", watch.DefaultAckWait, "a watcher silent this long loses its jobs to another")
			fs.IntVar(&maxRetries, "max-retries", watch.DefaultMaxRetries, "submit a test again at most this many times after NODE_FAIL, BOOT_FAIL or PREEMPTED, excluding the failed nodes; 0 never")
		},
		func(ctx context.Context, c *settings.Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error) {
			sched, err := c.NewScheduler()
			if err != nil {
				return nil, err
			}
			w, err := watch.New(watch.Config{Bus: b, Scheduler: sched, Log: log, PollMin: pollMin, PollMax: pollMax, QueuePoll: watch.QueuePollFlag(queuePoll), TimeLimit: timeout, AckWait: ackWait,
				MaxRetries: watch.MaxRetriesFlag(maxRetries)})
			if err != nil {
				return nil, err
			}
			return w.Run, nil
		})
}
