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

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

// runProvision is `planner provision`: create the stream, the stages' consumers' home
// and the KV buckets (or move them to --replicas), then print what each has.
func runProvision(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner provision", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c settings.Common
	c.Register(fs, false)
	wait := fs.Duration("wait", 0, "keep trying this long while NATS is unreachable or not ready (a cluster starting)")
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	if err := c.Resolve(settings.Env()); err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *wait)
		defer cancel()
	}
	log := c.Logger(stderr)
	b, err := c.ConnectMode(ctx, "planner", log, settings.Mode{Wait: *wait > 0})
	if err != nil {
		fmt.Fprintln(stderr, "planner:", err)
		return 1
	}
	defer b.Close()
	ictx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range []string{events.Stream, "KV_" + bus.BucketJobs, "KV_" + bus.BucketRuns, "KV_" + bus.BucketResults, "KV_" + bus.BucketHistory} {
		st, err := b.StreamStatus(ictx, name)
		if err != nil {
			fmt.Fprintln(stderr, "planner:", name+":", err)
			return 1
		}
		fmt.Fprintf(stdout, "%-18s %s\n", name, describe(st))
	}
	return 0
}

func describe(st bus.StreamStatus) string {
	s := fmt.Sprintf("replicas %d, %d messages", st.Replicas, st.Msgs)
	if st.Leader != "" {
		s += ", leader " + st.Leader
		for _, r := range st.Peers {
			state := "current"
			if !r.Current {
				state = "catching up"
			}
			if r.Offline {
				state = "offline"
			}
			s += fmt.Sprintf(", %s %s", r.Name, state)
		}
	}
	return s
}
