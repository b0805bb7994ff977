package collect

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// ReplayOptions choose what to rebuild.
type ReplayOptions struct {
	RunID             string    // only this run; empty: every run
	Since             time.Time // only events stored at or after this time
	OutputPath        string    // where the CSV and the Parquet dataset are rebuilt
	MaxFailedRequests int
}

// Replay re-reads every stored completed event (in stream order, as the collector saw
// them), judges each job again from its logs with today's rules, and rewrites the CSV
// and the Parquet files. It publishes nothing.
func Replay(ctx context.Context, b *bus.Bus, o ReplayOptions) (tests, rows int, err error) {
	filter := events.CompletedFilter
	if o.RunID != "" {
		filter = "bench.jobs." + events.Token(o.RunID) + ".*." + events.KindCompleted
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !o.Since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &o.Since
	}
	cons, err := b.JS.OrderedConsumer(ctx, events.Stream, cfg)
	if err != nil {
		return 0, 0, err
	}
	var all []results.Row
	byTest := map[string][]results.Row{}
	var order []string
	if info := cons.CachedInfo(); info == nil || info.NumPending > 0 {
		it, err := cons.Messages()
		if err != nil {
			return 0, 0, err
		}
		defer it.Stop()
		for {
			msg, err := it.Next()
			if err != nil {
				return 0, 0, err
			}
			var ev events.JobCompleted
			if err := json.Unmarshal(msg.Data(), &ev); err == nil {
				spec := ev.Spec
				if ev.LogDir != "" {
					if s, err := events.ReadJobFile(ev.LogDir); err == nil {
						spec = s
					}
				}
				if spec == nil {
					spec = &events.JobSpec{TestID: ev.TestID}
				}
				_, r := Judge(&ev, spec, o.MaxFailedRequests)
				key := events.Key(ev.RunID, ev.TestID)
				if _, seen := byTest[key]; !seen {
					order = append(order, key)
				}
				byTest[key] = r
			}
			md, err := msg.Metadata()
			if err != nil || md.NumPending == 0 {
				break
			}
		}
	}
	root := filepath.Join(o.OutputPath, "results")
	perRun := map[string][]results.Row{}
	var runs []string
	for _, key := range order {
		r := byTest[key]
		all = append(all, r...)
		if len(r) > 0 {
			if _, ok := perRun[r[0].RunID]; !ok {
				runs = append(runs, r[0].RunID)
			}
			perRun[r[0].RunID] = append(perRun[r[0].RunID], r...)
		}
	}
	for _, run := range runs {
		if err := replacePartition(root, run, perRun[run]); err != nil {
			return 0, 0, err
		}
	}
	if err := results.WriteCSV(filepath.Join(o.OutputPath, CSVName), results.CSVRows(all)); err != nil {
		return 0, 0, err
	}
	return len(order), len(all), nil
}

// replacePartition swaps a run's Parquet partition for one file of the given rows: the
// new partition is written beside the old one and renamed into its place.
func replacePartition(root, run string, rows []results.Row) error {
	dir := results.PartitionDir(root, run)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, ".replay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := results.WriteParquetFile(filepath.Join(tmp, "part-replay.parquet"), rows); err != nil {
		return err
	}
	old := tmp + ".old"
	if err := os.Rename(dir, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	return os.RemoveAll(old)
}
