package plan

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/results"
)

// history is the results dataset under root, read once, the first time a test's
// reference asks for a baseline.
type history struct {
	root string
	rows []results.Row
	read bool
}

func (h *history) load() ([]results.Row, error) {
	if !h.read {
		rows, err := results.ReadDataset(h.root)
		if err != nil {
			return nil, fmt.Errorf("read the results dataset for baselines: %w", err)
		}
		h.rows, h.read = rows, true
	}
	return h.rows, nil
}

// resolveReferences turns a test's references into the spec's: bounds and values as
// written, baselines read from the results dataset. A baseline becomes one reference
// per concurrency it has history for, its value that run's (baseline.run) or the median
// of the last N passing runs' (baseline.last); too little history gives a reference
// marked insufficient, which never fails the test.
func resolveReferences(rs []config.Reference, spec *events.JobSpec, hist *history) ([]events.Reference, error) {
	var out []events.Reference
	for _, r := range rs {
		er := events.Reference{Metric: r.Metric, GPU: r.GPU, Concurrency: r.Concurrency, Min: r.Min, Max: r.Max, Value: r.Value, Source: "file"}
		if r.GPU != "" {
			er.GPU = config.NormalizeGPU(r.GPU)
		}
		if r.Tolerance != nil {
			er.Tolerance = *r.Tolerance
		}
		if r.Value == nil && r.Baseline == nil {
			er.Source = ""
		}
		if r.Baseline == nil {
			out = append(out, er)
			continue
		}
		rows, err := hist.load()
		if err != nil {
			return nil, err
		}
		out = append(out, baselineReferences(er, *r.Baseline, spec, rows)...)
	}
	return out, nil
}

// baselineReferences resolves one baseline reference against the dataset's rows.
func baselineReferences(er events.Reference, b config.Baseline, spec *events.JobSpec, rows []results.Row) []events.Reference {
	// The test's values by run and concurrency, from passing runs on its GPU type (or
	// the one run named).
	values := map[int]map[string]float64{} // concurrency -> run -> value
	ends := map[string]int64{}
	for i := range rows {
		r := &rows[i]
		if r.TestID != spec.TestID || !strings.EqualFold(r.GPUType, spec.GPUType) {
			continue
		}
		if b.Run != "" && r.RunID != b.Run || b.Run == "" && r.Verdict != "pass" {
			continue
		}
		if er.Concurrency > 0 && int(r.Concurrency) != er.Concurrency {
			continue
		}
		v, ok := r.MetricValue(er.Metric)
		if !ok {
			continue
		}
		c := int(r.Concurrency)
		if values[c] == nil {
			values[c] = map[string]float64{}
		}
		values[c][r.RunID] = v
		ends[r.RunID] = max(ends[r.RunID], r.End.UnixNano())
	}
	want := max(b.Last, 1)
	source := func(n int) string {
		if b.Run != "" {
			return "run " + b.Run
		}
		return fmt.Sprintf("median of the last %d passing runs", n)
	}
	var out []events.Reference
	concs := slices.Sorted(maps.Keys(values))
	for _, c := range concs {
		runs := slices.Collect(maps.Keys(values[c]))
		// Newest first, by the runs' end times (then id).
		slices.SortFunc(runs, func(x, y string) int { return cmp.Or(cmp.Compare(ends[y], ends[x]), cmp.Compare(y, x)) })
		ref := er
		ref.Concurrency = c
		if len(runs) < want {
			ref.Insufficient = true
			ref.Source = fmt.Sprintf("insufficient data: %d passing run(s) on %s, baseline wants %d", len(runs), spec.GPUType, want)
			out = append(out, ref)
			continue
		}
		runs = runs[:want]
		vals := make([]float64, len(runs))
		for i, run := range runs {
			vals[i] = values[c][run]
		}
		v := events.DurationHistory{Seconds: vals}.Median() // the median of any values
		ref.Value, ref.Source = &v, source(len(runs))
		out = append(out, ref)
	}
	if len(out) == 0 {
		er.Insufficient = true
		er.Source = "insufficient data: no earlier value in the results dataset"
		if b.Run != "" {
			er.Source = fmt.Sprintf("insufficient data: run %s has no value of %s for this test on %s", b.Run, er.Metric, spec.GPUType)
		}
		out = append(out, er)
	}
	return out
}
