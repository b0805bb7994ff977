package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/disaggbench/disaggbench/pkg/settings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"github.com/disaggbench/disaggbench/pkg/results"
)

const referencesUsage = `usage: planner references suggest RUN_ID... [--min-tolerance 0.05] [-k EXPR] [--output-path O]

Proposes references: entries from the passing tests of the given runs (the Parquet
dataset under OUTPUT_PATH/results): for each test, concurrency and judged metric (and
output_tok_s_per_gpu, tok_s_per_user), the median over the runs as value and a
tolerance covering their spread. The output is YAML to paste into each test's file.
`

// runReferences is `planner references suggest RUN_ID...`.
func runReferences(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "suggest" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, referencesUsage)
			return 0
		}
		fmt.Fprint(stderr, referencesUsage)
		return 2
	}
	fs := flag.NewFlagSet("planner references suggest", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), referencesUsage); fs.PrintDefaults() }
	minTol := fs.Float64("min-tolerance", 0.05, "smallest tolerance proposed (a fraction)")
	k := fs.String("k", "", "only tests whose ids match this expression, as pytest -k")
	out := fs.String("output-path", "", "results folder (env OUTPUT_PATH; default ./output)")
	runs, code, ok := settings.Parse(fs, args[1:], 1, -1, stdout, stderr)
	if !ok {
		return code
	}
	if *minTol < 0 {
		fmt.Fprintf(stderr, "planner references suggest: --min-tolerance %g: must be 0 or more\n", *minTol)
		return 2
	}
	match, err := config.KMatcher(*k)
	if err != nil {
		fmt.Fprintln(stderr, "planner references suggest:", err)
		return 2
	}
	root := filepath.Join(cmp.Or(*out, os.Getenv("OUTPUT_PATH"), "output"), "results")
	var all [][]refs.Point
	for _, run := range runs {
		rows, err := runRows(root, run)
		if err != nil {
			fmt.Fprintln(stderr, "planner references suggest:", err)
			return 1
		}
		passing := slices.DeleteFunc(rows, func(r results.Row) bool { return r.Verdict != "pass" })
		ps := slices.DeleteFunc(toPoints(passing, match, false), func(p refs.Point) bool {
			return p.Metric == "input_tok_s_per_gpu" || p.Metric == "total_tok_s_per_gpu"
		})
		all = append(all, ps)
	}
	sug := refs.Suggest(all, *minTol)
	if len(sug) == 0 {
		fmt.Fprintln(stderr, "planner references suggest: no passing perf values in those runs")
		return 1
	}
	test := ""
	for _, s := range sug {
		if s.Test != test {
			if test != "" {
				fmt.Fprintln(stdout)
			}
			test = s.Test
			fmt.Fprintf(stdout, "# %s (from %d run(s))\nreferences:\n", s.Test, s.Runs)
		}
		fmt.Fprintf(stdout, "  - metric: %s\n", s.Metric)
		if s.Concurrency > 0 {
			fmt.Fprintf(stdout, "    concurrency: %d\n", s.Concurrency)
		}
		fmt.Fprintf(stdout, "    value: %s\n    tolerance: %s\n", strconv.FormatFloat(s.Value, 'g', 6, 64), strconv.FormatFloat(s.Tolerance, 'f', -1, 64))
	}
	return 0
}
