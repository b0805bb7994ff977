package collect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// ReplayOptions choose what to rebuild.
type ReplayOptions struct {
	RunID      string    // only this run; empty: every run
	Since      time.Time // only events stored at or after this time
	OutputPath string    // where the CSV and the Parquet dataset are rebuilt
	// LogsFrom is the output path whose slurm_logs hold the jobs' folders (default
	// OutputPath); a folder anywhere else is not read.
	LogsFrom          string
	MaxFailedRequests int
	DryRun            bool // compute what would change; write nothing
}

// ErrNothingToReplay is returned when the selection matches no stored completion; the
// outputs are left as they were.
var ErrNothingToReplay = errors.New("no stored completion matches")

// ReplayResult says what a replay did (or, dry, would do).
type ReplayResult struct {
	Tests, Rows int
	Runs        []string                    // the runs replayed, in stream order
	Diff        map[string]*results.RunDiff // CSV changes per run
}

// Replay re-reads the stored completed events it is asked for (in stream order, as the
// collector saw them), judges each job again from its logs with today's rules, and
// rewrites those jobs' CSV rows (every other line is kept byte for byte, the previous
// file kept as .bak) and the replayed runs' Parquet partitions. It publishes nothing. A
// run id or time that matches no completion is ErrNothingToReplay, and nothing changes.
func Replay(ctx context.Context, b *bus.Bus, o ReplayOptions) (res ReplayResult, err error) {
	filter := events.CompletedFilter
	if o.RunID != "" {
		filter = events.RunJobsFilter(o.RunID, events.KindCompleted)
	}
	rd, err := b.Read(ctx, bus.ReadOptions{Filter: filter, Since: o.Since, Ordered: true})
	if err != nil {
		return res, err
	}
	defer rd.Stop()
	byTest := map[string]results.ReplayJob{}
	var order []string
	for left := rd.Pending() > 0; left; {
		msg, err := rd.Next()
		if err != nil {
			return res, err
		}
		var ev events.JobCompleted
		if err := json.Unmarshal(msg.Data, &ev); err == nil {
			_, r, _, err := judgeEvent(ctx, cmp.Or(o.LogsFrom, o.OutputPath), &ev, o.MaxFailedRequests, DefaultTestBudget)
			if err != nil {
				return res, err
			}
			key := events.Key(ev.RunID, ev.TestID)
			if _, seen := byTest[key]; !seen {
				order = append(order, key)
			}
			byTest[key] = results.ReplayJob{RunID: ev.RunID, TestID: ev.TestID, Start: ev.Start, End: ev.End, Rows: r}
		}
		// The reader's last event so far (or one without its position) ends the replay.
		left = msg.Seq != 0 && msg.Pending > 0
	}
	if len(order) == 0 {
		switch {
		case o.RunID != "":
			return res, fmt.Errorf("run %s: %w; nothing changed", o.RunID, ErrNothingToReplay)
		case !o.Since.IsZero():
			return res, fmt.Errorf("since %s: %w; nothing changed", o.Since.Format(time.RFC3339), ErrNothingToReplay)
		}
		return res, fmt.Errorf("%w; nothing changed", ErrNothingToReplay)
	}
	perRun := map[string][]results.Row{}
	jobs := make([]results.ReplayJob, 0, len(order))
	for _, key := range order {
		j := byTest[key]
		csvJob := j
		csvJob.Rows = results.CSVRows(j.Rows) // the CSV holds the judged rows only
		jobs = append(jobs, csvJob)
		if _, ok := perRun[j.RunID]; !ok {
			res.Runs = append(res.Runs, j.RunID)
		}
		perRun[j.RunID] = append(perRun[j.RunID], j.Rows...)
		res.Rows += len(j.Rows)
	}
	res.Tests = len(order)
	res.Diff, err = results.ReplaceCSV(filepath.Join(o.OutputPath, CSVName), jobs, o.DryRun)
	if err != nil || o.DryRun {
		return res, err
	}
	root := filepath.Join(o.OutputPath, "results")
	for _, run := range res.Runs {
		if err := replacePartition(root, run, perRun[run]); err != nil {
			return res, err
		}
	}
	return res, nil
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
