// Package pipeline starts the submitter, watcher and collector stages on one bus: the one
// assembly used by the services, by `planner run` with no --nats, and by the tests.
package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/submit"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

// Stages runs the submitter, watcher and collector in this process.
type Stages struct {
	Submitter *submit.Submitter
	Watcher   *watch.Watcher
	Collector *collect.Collector
	wg        sync.WaitGroup
	cancel    context.CancelFunc
}

// Options configure the stages.
type Options struct {
	OutputPath       string
	Scheduler        scheduler.Scheduler
	Log              *slog.Logger
	Notify           func(submit.Notice) // the submitter's notices (submit.Config.Notify)
	PollMin, PollMax time.Duration
	// QueuePoll is the watcher's queue check interval (0: its default; negative: off).
	QueuePoll time.Duration
	// MaxRetries is the watcher's Config.MaxRetries (0: its default; negative: none).
	MaxRetries int
	TimeLimit  time.Duration
	Env        config.Env
	// GiveUpAfter bounds the retries of a test whose results cannot be written.
	GiveUpAfter time.Duration
}

// Start starts the three stages on b; Stop ends them.
func Start(ctx context.Context, b *bus.Bus, o Options) (*Stages, error) {
	debug, debugJob := config.DebugMode(nil, o.Env)
	sub, err := submit.New(submit.Config{Bus: b, Scheduler: o.Scheduler, OutputPath: o.OutputPath, Log: o.Log, Notify: o.Notify,
		DebugMode: debug, DebugJobID: debugJob})
	if err != nil {
		return nil, err
	}
	w, err := watch.New(watch.Config{Bus: b, Scheduler: o.Scheduler, Log: o.Log, PollMin: o.PollMin, PollMax: o.PollMax, QueuePoll: o.QueuePoll, TimeLimit: o.TimeLimit,
		MaxRetries: o.MaxRetries})
	if err != nil {
		return nil, err
	}
	col, err := collect.New(collect.Config{Bus: b, OutputPath: o.OutputPath, Log: o.Log, GiveUpAfter: o.GiveUpAfter})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Stages{Submitter: sub, Watcher: w, Collector: col, cancel: cancel}
	for name, run := range map[string]func(context.Context) error{"submitter": sub.Run, "watcher": w.Run, "collector": col.Run} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				o.Log.Error("stage stopped", "stage", name, "err", err)
			}
		}()
	}
	return s, nil
}

// Stop ends the stages and waits for them.
func (s *Stages) Stop() {
	s.cancel()
	s.wg.Wait()
}
