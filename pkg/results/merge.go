package results

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// ReplayJob is one job whose CSV rows a replay rewrites: its old lines are found by the
// test id and the job's start and end (as the CSV writes them), and replaced by Rows.
type ReplayJob struct {
	RunID, TestID string
	Start, End    time.Time
	Rows          []Row
}

// RunDiff counts what a replay changes in the CSV for one run: rows added, removed and
// changed (same name and metric, other cells).
type RunDiff struct{ Added, Removed, Changed, Unchanged int }

type jobKey struct{ test, start, end string }

func keyOf(test string, start, end time.Time) jobKey {
	k := jobKey{test: test}
	if !start.IsZero() {
		k.start = start.UTC().Truncate(time.Microsecond).Format(csvTime)
	}
	if !end.IsZero() {
		k.end = end.UTC().Truncate(time.Microsecond).Format(csvTime)
	}
	return k
}

// lineKey reads a CSV record's job: the test id inside perf_case_name's brackets, and
// its start and end timestamps. ok is false for a record of another shape.
func lineKey(rec []string) (jobKey, bool) {
	if len(rec) != len(CSVHeader) {
		return jobKey{}, false
	}
	name := rec[5]
	open, end := strings.IndexByte(name, '['), strings.LastIndexByte(name, ']')
	if open < 0 || end <= open {
		return jobKey{}, false
	}
	return jobKey{test: name[open+1 : end], start: rec[10], end: rec[11]}, true
}

// MergeCSV returns the CSV old with the lines of the given jobs replaced by their new
// rows, and every other line (rows of other runs, rows it never wrote, the header) kept
// byte for byte. A job's new rows take the place of its first old line; a job that had
// none is appended. diff counts the changes per run.
func MergeCSV(old []byte, jobs []ReplayJob) (out []byte, diff map[string]*RunDiff, err error) {
	keys := make(map[jobKey]int, len(jobs))
	for i, j := range jobs {
		keys[keyOf(j.TestID, j.Start, j.End)] = i
	}
	oldLines := make([][][]string, len(jobs)) // each job's old records
	placed := make([]bool, len(jobs))
	var b bytes.Buffer
	if len(old) == 0 {
		b.Write(csvHeaderLine)
	}
	r := csv.NewReader(bytes.NewReader(old))
	r.FieldsPerRecord, r.LazyQuotes = -1, true
	var prev int64
	for first := true; ; first = false {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("results: the CSV cannot be read (%v); nothing changed", err)
		}
		off := r.InputOffset()
		span := old[prev:off]
		prev = off
		k, ok := lineKey(rec)
		i, replayed := keys[k]
		if first || !ok || !replayed {
			b.Write(span)
			continue
		}
		oldLines[i] = append(oldLines[i], append([]string(nil), rec...))
		if !placed[i] {
			placed[i] = true
			b.Write(encodeCSV(CSVRecords(jobs[i].Rows)))
		}
	}
	b.Write(old[prev:])
	if b.Len() > 0 && b.Bytes()[b.Len()-1] != '\n' {
		b.WriteByte('\n')
	}
	for i, j := range jobs {
		if !placed[i] {
			b.Write(encodeCSV(CSVRecords(j.Rows)))
		}
	}
	diff = map[string]*RunDiff{}
	for i, j := range jobs {
		d := diff[j.RunID]
		if d == nil {
			d = &RunDiff{}
			diff[j.RunID] = d
		}
		countDiff(d, oldLines[i], CSVRecords(j.Rows))
	}
	return b.Bytes(), diff, nil
}

// countDiff compares one job's old and new records by identity (network_name and
// metric_type).
func countDiff(d *RunDiff, old, new [][]string) {
	id := func(rec []string) string { return rec[0] + "\x00" + rec[len(rec)-1] }
	olds := map[string][]string{}
	for _, rec := range old {
		olds[id(rec)] = rec
	}
	for _, rec := range new {
		o, ok := olds[id(rec)]
		switch {
		case !ok:
			d.Added++
		case strings.Join(o, "\x00") == strings.Join(rec, "\x00"):
			d.Unchanged++
		default:
			d.Changed++
		}
		delete(olds, id(rec))
	}
	d.Removed += len(olds)
}

// ReplaceCSV merges a replay's jobs into the CSV at path under its lock (see MergeCSV).
// Unless dryRun, the previous file is kept as path+".bak" and the new one renamed into
// place, so a reader sees the old file or the new one, never a mix.
func ReplaceCSV(path string, jobs []ReplayJob, dryRun bool, opts ...Option) (map[string]*RunDiff, error) {
	var diff map[string]*RunDiff
	err := withLock(path, func() error {
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("results: %w", err)
		}
		out, d, err := MergeCSV(old, jobs)
		if err != nil {
			return err
		}
		diff = d
		if dryRun {
			return nil
		}
		o := applyOptions(opts)
		if old != nil {
			if err := writeAtomic(path+".bak", old, o); err != nil {
				return err
			}
		}
		return writeAtomic(path, out, o)
	})
	return diff, err
}
