package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/disaggbench/disaggbench/pkg/settings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"github.com/disaggbench/disaggbench/pkg/results"
)

const compareUsage = `usage: planner compare RUN_A RUN_B [--threshold 5%] [--format table|markdown|json] [-k EXPR] [--output-path O]

Lines the two runs' results up by test, concurrency and metric (from the Parquet
dataset under OUTPUT_PATH/results), prints both values and the relative change, and
marks changes beyond the threshold as better or worse by each metric's direction
(latencies lower, throughputs and scores higher). Exit status 1 when any change is
worse than the threshold, 0 otherwise, 2 on bad usage.
`

// runCompare is `planner compare RUN_A RUN_B`.
func runCompare(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner compare", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), compareUsage); fs.PrintDefaults() }
	threshold := fs.String("threshold", "5%", "relative change that counts, in percent (5% or 5)")
	format := fs.String("format", "table", "table, markdown or json")
	k := fs.String("k", "", "only tests whose ids match this expression, as pytest -k")
	out := fs.String("output-path", "", "results folder (env OUTPUT_PATH; default ./output)")
	all := fs.Bool("all", false, "every metric the client printed, not only the judged ones")
	pos, code, ok := settings.Parse(fs, args, 2, 2, stdout, stderr)
	if !ok {
		return code
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(*threshold), "%"), 64)
	if err != nil || pct < 0 {
		fmt.Fprintf(stderr, "planner compare: --threshold %q: want a percentage such as 5%%\n", *threshold)
		return 2
	}
	if *format != "table" && *format != "markdown" && *format != "json" {
		fmt.Fprintf(stderr, "planner compare: --format %q: want table, markdown or json\n", *format)
		return 2
	}
	match, err := config.KMatcher(*k)
	if err != nil {
		fmt.Fprintln(stderr, "planner compare:", err)
		return 2
	}
	root := filepath.Join(cmp.Or(*out, os.Getenv("OUTPUT_PATH"), "output"), "results")
	var points [2][]refs.Point
	for i, run := range pos {
		rows, err := runRows(root, run)
		if err != nil {
			fmt.Fprintln(stderr, "planner compare:", err)
			return 1
		}
		points[i] = toPoints(rows, match, *all)
	}
	c := refs.Compare(points[0], points[1], pct)
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		doc := struct {
			A string `json:"a"`
			B string `json:"b"`
			refs.Comparison
		}{pos[0], pos[1], c}
		if err := enc.Encode(doc); err != nil {
			fmt.Fprintln(stderr, "planner compare:", err)
			return 1
		}
	default:
		writeComparison(stdout, pos[0], pos[1], c, *format == "markdown")
	}
	if c.Worse > 0 {
		return 1
	}
	return 0
}

// runRows reads one run's partition of the dataset; an unknown run is an error naming
// the runs there are.
func runRows(root, run string) ([]results.Row, error) {
	if strings.ContainsAny(run, "/\\") || run == "" || run == "." || run == ".." {
		return nil, fmt.Errorf("%q is not a run id", run)
	}
	dir := results.PartitionDir(root, run)
	entries, err := os.ReadDir(dir)
	if err != nil {
		known, _ := os.ReadDir(root)
		var ids []string
		for _, e := range known {
			if id, ok := strings.CutPrefix(e.Name(), "run="); ok && e.IsDir() {
				ids = append(ids, id)
			}
		}
		msg := fmt.Sprintf("no run %q in the results dataset %s", run, root)
		if s := config.SuggestIDs(run, ids, 3); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, " or ") + "?)"
		}
		return nil, errors.New(msg)
	}
	var rows []results.Row
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".parquet") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		rs, err := results.ReadParquet(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// toPoints keeps the measured rows of the matching tests: the judged ones (all with
// every) and, for perf rows, the derived per-GPU and per-user throughputs once per
// concurrency.
func toPoints(rows []results.Row, match func(string) bool, every bool) []refs.Point {
	var ps []refs.Point
	seen := map[string]bool{}
	for i := range rows {
		r := &rows[i]
		if !match(r.TestID) || r.Metric == "" {
			continue
		}
		if r.Judged || every {
			ps = append(ps, refs.Point{Test: r.TestID, Concurrency: int(r.Concurrency), Metric: r.Metric, Dataset: r.Dataset, Filter: r.Filter, Value: r.Value})
		}
		if r.Dataset != "" {
			continue
		}
		key := fmt.Sprintf("%s\x00%d", r.TestID, r.Concurrency)
		if seen[key] {
			continue
		}
		found := false
		for _, d := range refs.Derived {
			if v, ok := r.MetricValue(d); ok {
				ps = append(ps, refs.Point{Test: r.TestID, Concurrency: int(r.Concurrency), Metric: d, Value: v})
				found = true
			}
		}
		seen[key] = found
	}
	return ps
}

func writeComparison(w io.Writer, a, b string, c refs.Comparison, markdown bool) {
	value := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return strconv.FormatFloat(*p, 'g', 6, 64)
	}
	change := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%+.1f%%", *p)
	}
	sep := "\t"
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	out := io.Writer(tw)
	if markdown {
		out, sep = w, " | "
		fmt.Fprintf(w, "Comparing `%s` (A) with `%s` (B), threshold %g%%\n\n", a, b, c.ThresholdP)
		fmt.Fprintln(w, "| test | concurrency | metric | A | B | change | verdict |")
		fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|---|")
	} else {
		fmt.Fprintf(w, "A = %s, B = %s, threshold %g%%\n", a, b, c.ThresholdP)
		fmt.Fprintln(tw, strings.Join([]string{"TEST", "CONCURRENCY", "METRIC", "A", "B", "CHANGE", "VERDICT"}, sep))
	}
	for _, d := range c.Deltas {
		metric := d.Metric
		if d.Dataset != "" {
			metric = d.Dataset + "/" + d.Filter + "/" + d.Metric
		}
		conc := "-"
		if d.Concurrency > 0 {
			conc = strconv.Itoa(d.Concurrency)
		}
		verdict := d.Verdict
		if markdown && (verdict == "worse" || verdict == "better") {
			verdict = "**" + verdict + "**"
		}
		line := strings.Join([]string{d.Test, conc, metric, value(d.A), value(d.B), change(d.Change), verdict}, sep)
		if markdown {
			line = "| " + line + " |"
		}
		fmt.Fprintln(out, line)
	}
	tw.Flush()
	for _, t := range c.OnlyInA {
		fmt.Fprintf(w, "only in A: %s\n", t)
	}
	for _, t := range c.OnlyInB {
		fmt.Fprintf(w, "only in B: %s\n", t)
	}
	fmt.Fprintf(w, "%d worse, %d better beyond %g%% (%d values)\n", c.Worse, c.Better, c.ThresholdP, len(c.Deltas))
}
