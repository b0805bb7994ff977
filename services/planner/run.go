package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/slurm"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

// runRun is `planner run`: publish, then follow the run to its end.
func runRun(args []string, stdout, stderr io.Writer) int {
	f, env, code := parseRunFlags("run", true, args, stdout, stderr)
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

	p, err := plan.Prepare(f.options(env), env)
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
	var stages *pipeline.Stages
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
		stages, err = pipeline.Start(context.WithoutCancel(ctx), b, pipeline.Options{
			OutputPath: f.common.OutputPath, Scheduler: sched, Log: log, View: logOut,
			PollMin: pmin, PollMax: pmax, QueuePoll: watch.QueuePollFlag(f.queuePoll), TimeLimit: f.timeout, Env: env,
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
	fmt.Fprintf(stderr, "run %s: %s (%d invalid), batch size %d, policy %s, order %s (history for %d), scheduler %s\nlog: %s\n",
		p.RunID, plan.Count(p.Started.Tests, "test"), p.Started.Invalid, p.BatchSize, p.Policy, p.Order, p.Known, f.common.Scheduler, logPath)
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
	prog, err := plan.Follow(ctx, b, p.RunID, false, func(line string, pr *plan.Progress) {
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

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
