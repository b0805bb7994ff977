// `collector parse`: it judges a job's log file or folder offline,
// with the default metrics of a test type and category or a test config's own.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/metrics"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

const parseUsage = `usage: collector parse --type disagg|wideep --category perf|stress|accuracy [--config FILE] [--json] [--max-failed-requests N] PATH

PATH is a job's log folder or one log file. With --config, the test's custom metrics,
concurrency list, gen server count and accuracy datasets apply, and its type and category
are taken from its test_configs/{type}/{category}/ path unless given.
Exit status: 0 valid, 1 not valid, 2 usage or config error.
`

// Run runs `collector parse` with args (after "parse") and returns the exit status.
func runParse(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collector parse", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), parseUsage) }
	testType := fs.String("type", "", "test type: disagg or wideep")
	category := fs.String("category", "", "test category: perf, stress or accuracy")
	cfgPath := fs.String("config", "", "the test's YAML config")
	asJSON := fs.Bool("json", false, "print one JSON document")
	maxFailed := fs.Int("max-failed-requests", 0, "failed requests a concurrency may have and still be valid (negative: no check)")
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "collector parse: "+format+"\n\n%s", append(a, parseUsage)...)
		return 2
	}
	paths, code, ok := settings.Parse(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return code
	}
	var in metrics.Input
	if *cfgPath != "" {
		t, problems := config.LoadFile(*cfgPath)
		if config.HasErrors(problems) {
			config.SortProblems(problems)
			for _, p := range problems {
				fmt.Fprintln(stderr, p.String())
			}
			return 2
		}
		in = InputFor(t)
	}
	for _, f := range []struct {
		flagVal *string
		field   *string
		name    string
	}{{testType, &in.TestType, "type"}, {category, &in.Category, "category"}} {
		switch {
		case *f.flagVal == "":
		case *f.field != "" && *f.field != *f.flagVal:
			return fail("--%s %s contradicts the config's %s %s", f.name, *f.flagVal, f.name, *f.field)
		default:
			*f.field = *f.flagVal
		}
	}
	if !slices.Contains(config.TestTypes, in.TestType) {
		return fail("--type must be one of %s, got %q", strings.Join(config.TestTypes, ", "), in.TestType)
	}
	if !slices.Contains(config.TestCategories, in.Category) {
		return fail("--category must be one of %s, got %q", strings.Join(config.TestCategories, ", "), in.Category)
	}
	in.MaxFailedRequests = *maxFailed

	res := metrics.Judge(paths[0], in)
	// One write system call per 64 KiB rather than one per table cell.
	out := bufio.NewWriterSize(stdout, 64<<10)
	var err error
	if *asJSON {
		err = writeJSON(out, in, res)
	} else {
		err = writeText(out, in, res)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "collector parse: %v\n", err)
		return 2
	}
	if !res.Valid {
		return 1
	}
	return 0
}

// InputFor builds the judge's input from a loaded test as the collector builds it from
// the test's job spec: type, category, the custom metrics section as written (the
// judge fills the fields it leaves out from the defaults), concurrency list, gen
// server count and accuracy datasets with the seed's defaults filled in.
func InputFor(t *config.Test) metrics.Input {
	c := &t.Config
	in := metrics.Input{
		TestType: t.Type, Category: t.Category,
		Concurrencies: slices.Clone([]int(c.Benchmark.ConcurrencyList)),
		NumGenServers: c.Hardware.NumGenServers,
		Custom:        c.CustomMetrics(),
	}
	if a := c.Metadata.Accuracy; a != nil {
		for _, d := range a.Datasets {
			in.Datasets = append(in.Datasets, metrics.ResolveDataset(d))
		}
	}
	return in
}

type perfJSON struct {
	Concurrency int     `json:"concurrency"`
	Metric      string  `json:"metric"`
	Value       float64 `json:"value"`
	Unit        string  `json:"unit,omitempty"`
}

type accuracyJSON struct {
	Dataset   string   `json:"dataset"`
	Filter    string   `json:"filter"`
	Value     *float64 `json:"value"`
	Threshold *float64 `json:"threshold"`
	Passed    *bool    `json:"passed"`
	Expected  *float64 `json:"expected,omitempty"`
	Metric    string   `json:"metric"`
	Run       int      `json:"run"`
	File      string   `json:"file"`
}

type document struct {
	Valid    bool     `json:"valid"`
	Partial  bool     `json:"partial"`
	Reasons  []string `json:"reasons"`
	Warnings []string `json:"warnings"`
	Rows     []any    `json:"rows"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func writeJSON(w io.Writer, in metrics.Input, res metrics.Result) error {
	doc := document{Valid: res.Valid, Partial: res.Partial, Reasons: res.Reasons, Warnings: res.Warnings, Rows: []any{}}
	if doc.Reasons == nil {
		doc.Reasons = []string{}
	}
	if doc.Warnings == nil {
		doc.Warnings = []string{}
	}
	for _, r := range res.Perf {
		doc.Rows = append(doc.Rows, perfJSON{r.Concurrency, r.Metric, r.Value, r.Unit})
	}
	for _, r := range res.Accuracy {
		row := accuracyJSON{Dataset: r.Dataset, Filter: r.Filter, Value: finite(r.Value), Metric: r.Metric, Run: r.Run, File: r.File}
		if r.Judged {
			passed := r.Passed
			row.Threshold, row.Passed, row.Expected = finite(r.Threshold), &passed, finite(r.Expected)
		}
		doc.Rows = append(doc.Rows, row)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

func writeText(w io.Writer, in metrics.Input, res metrics.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(res.Perf) > 0 {
		fmt.Fprintln(tw, "CONCURRENCY\tMETRIC\tVALUE\tUNIT")
		for _, r := range res.Perf {
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%s\n", r.Concurrency, r.Metric, r.Value, r.Unit)
		}
	}
	if len(res.Accuracy) > 0 {
		fmt.Fprintln(tw, "DATASET\tFILTER\tRUN\tVALUE\tEXPECTED\tTHRESHOLD\tVERDICT")
		for _, r := range res.Accuracy {
			verdict, exp, thr := "-", "-", "-"
			if r.Judged {
				verdict = "FAIL"
				if r.Passed {
					verdict = "pass"
				}
				exp, thr = fmt.Sprintf("%.4f", r.Expected), fmt.Sprintf("%.4f", r.Threshold)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%s\t%s\t%s\n", r.Dataset, r.Filter, r.Run, r.Value, exp, thr, verdict)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "VALID"
	if !res.Valid {
		verdict = "NOT VALID"
	}
	if res.Partial {
		verdict += " (partial)"
	}
	fmt.Fprintf(w, "%s %s: %s\n", in.TestType, in.Category, verdict)
	// Written piece by piece: a long log may carry tens of thousands of warnings.
	for _, list := range []struct {
		prefix string
		lines  []string
	}{{"  - ", res.Reasons}, {"  warning: ", res.Warnings}} {
		for _, r := range list.lines {
			io.WriteString(w, list.prefix)
			io.WriteString(w, r)
			if _, err := io.WriteString(w, "\n"); err != nil {
				return err
			}
		}
	}
	return nil
}
