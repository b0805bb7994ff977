package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/config/configtest"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/plan"
)

// judgedRow is one judged value as both paths can state it: perf rows by configured
// concurrency and metric, accuracy rows by dataset and filter.
type judgedRow struct {
	Concurrency int
	Metric      string
	Value       float64
	Dataset     string
	Filter      string
	Threshold   string // %.6f, or "-" when not judged against a threshold
	Passed      string // true, false or "-"
}

type judged struct {
	Valid, Partial bool
	Reasons        []string
	Rows           []judgedRow
}

// livePath judges a test as the pipeline does: the planner's job spec, through the
// completed event's JSON, to the collector's Judge.
func livePath(t *testing.T, path, logDir string) judged {
	t.Helper()
	tc, _ := config.LoadFile(path)
	tc.Resolve(nil, nil)
	spec, err := plan.Spec(tc, "run1", t.TempDir(), "GB200", nil, "")
	if err != nil {
		t.Fatalf("plan.Spec: %v", err)
	}
	data, err := json.Marshal(events.JobCompleted{Header: events.NewHeader("run1"), TestID: tc.ID,
		JobID: "1", State: "COMPLETED", LogDir: logDir, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	var ev events.JobCompleted
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	res, _ := collect.Judge(&ev, ev.Spec, 0)
	out := judged{Valid: res.Passed, Partial: res.Partial, Reasons: res.Reasons}
	for _, r := range res.Rows {
		if !r.Judged {
			continue
		}
		row := judgedRow{Metric: r.Metric, Value: r.Value, Dataset: r.Dataset, Filter: r.Filter, Threshold: "-", Passed: "-"}
		if r.Dataset == "" {
			row.Concurrency = r.Concurrency / max(spec.NumGenServers, 1)
		}
		if r.Threshold != nil {
			row.Threshold = fmt.Sprintf("%.6f", *r.Threshold)
		}
		if r.Passed != nil {
			row.Passed = fmt.Sprint(*r.Passed)
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

// parsePath judges a test as `collector parse --config` does.
func parsePath(t *testing.T, path, logDir string) judged {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := runParse([]string{"--config", path, "--json", logDir}, &stdout, &stderr); code == 2 {
		t.Fatalf("collector parse: exit 2: %s", stderr.String())
	}
	var d struct {
		Valid   bool     `json:"valid"`
		Partial bool     `json:"partial"`
		Reasons []string `json:"reasons"`
		Rows    []struct {
			Concurrency int      `json:"concurrency"`
			Metric      string   `json:"metric"`
			Value       *float64 `json:"value"`
			Dataset     string   `json:"dataset"`
			Filter      string   `json:"filter"`
			Threshold   *float64 `json:"threshold"`
			Passed      *bool    `json:"passed"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatalf("collector parse output: %v\n%s", err, stdout.String())
	}
	out := judged{Valid: d.Valid, Partial: d.Partial, Reasons: d.Reasons}
	if len(out.Reasons) == 0 {
		out.Reasons = nil
	}
	for _, r := range d.Rows {
		row := judgedRow{Concurrency: r.Concurrency, Metric: r.Metric, Value: math.NaN(), Dataset: r.Dataset, Filter: r.Filter, Threshold: "-", Passed: "-"}
		if r.Value != nil {
			row.Value = *r.Value
		}
		if r.Threshold != nil {
			row.Threshold = fmt.Sprintf("%.6f", *r.Threshold)
		}
		if r.Passed != nil {
			row.Passed = fmt.Sprint(*r.Passed)
		}
		if r.Dataset != "" && row.Metric == "" {
			row.Metric = "exact_match"
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

// TestLiveAndParseJudgeAlike: for every shape of a test's custom metrics and accuracy
// datasets, the pipeline (planner spec -> completed event -> collector) and
// `collector parse --config` read the same values from the same log and reach the same
// verdict with the same reasons. A partial metrics section is the defaults with the
// fields the test sets replacing the default's, on both paths.
func TestLiveAndParseJudgeAlike(t *testing.T) {
	base := configtest.Edit(t, configtest.Edit(t, configtest.BaseYAML(t),
		`concurrency_list: "1 2 4 8 16 32"`, `concurrency_list: "1 2 4"`),
		"num_gen_servers: 4", "num_gen_servers: 2")
	section := func(where, body string) func(string) string {
		return func(s string) string {
			anchor := map[string]string{"benchmark": "  multi_round: 8\n", "metadata": "  precision: fp4\n"}[where]
			return configtest.Edit(t, s, anchor, anchor+"  metrics:\n"+body)
		}
	}
	// Mean instead of the default's median: values the defaults would not give.
	meanPattern := `    extractor_pattern: 'Mean[ ]TTFT[ ]\(ms\):[ \t]+([0-9.]+)[^\n]*\n(?:[^=\n][^\n]*\n|\n)*?[^\n]*?Mean[ ]E2EL[ ]\(ms\):[ \t]+([0-9.]+)[\s\S]*?Benchmark[ ]with[ ]concurrency[ ](\d+)[ ]done'` + "\n"
	accuracy := func(s string) string {
		s = configtest.Edit(t, s, "  precision: fp4\n", "  precision: fp4\n  accuracy:\n    datasets:\n      - dataset_name: gsm8k\n        expected_value: 0.9454\n        sigma: 40\n        filter_type: flexible-extract\n")
		return s + configtest.AccuracySections
	}
	tests := []struct {
		name     string
		category string
		edits    []func(string) string
		log      string
		valid    bool // the config passes validation
		rows     int  // judged rows on both paths
	}{
		{name: "only metric_names", category: "perf", log: "disagg_ok", valid: true, rows: 6,
			edits: []func(string) string{section("benchmark", "    metric_names: [TTFT_MS, E2EL_MS]\n")}},
		{name: "only metric_names in metadata", category: "perf", log: "disagg_ok", valid: true, rows: 6,
			edits: []func(string) string{section("metadata", "    metric_names: [TTFT_MS, E2EL_MS]\n")}},
		{name: "only extractor_pattern", category: "perf", log: "disagg_ok", valid: true, rows: 6,
			edits: []func(string) string{section("benchmark", meanPattern)}},
		{name: "only log_file", category: "perf", log: "disagg_ok", valid: true, rows: 6,
			edits: []func(string) string{section("metadata", "    log_file: 6_bench.log\n")}},
		{name: "both sections with different values", category: "perf", log: "disagg_ok", rows: 6,
			edits: []func(string) string{
				section("benchmark", "    metric_names: [FROM_BENCHMARK_A, FROM_BENCHMARK_B]\n"),
				section("metadata", "    metric_names: [FROM_METADATA_A, FROM_METADATA_B]\n"+meanPattern),
			}},
		{name: "whole section", category: "perf", log: "custom", valid: true, rows: 6,
			edits: []func(string) string{section("benchmark", "    log_file: custom_*.log\n"+
				`    extractor_pattern: 'Output[ ]token[ ]throughput[ ]\(tok/s\):\s+([\d.]+)(?:.*\n)*?Median[ ]TTFT[ ]\(ms\):\s+([\d.]+)(?:.*\n)*?.*concurrency=(\d+)[ ]finished'`+"\n"+
				"    metric_names: [OUTPUT_TPUT, MEDIAN_TTFT]\n")}},
		{name: "no section", category: "perf", log: "disagg_ok", valid: true, rows: 6},
		{name: "accuracy with dataset defaults filled", category: "accuracy", log: "accuracy_fail", valid: true, rows: 2,
			edits: []func(string) string{accuracy}},
		{name: "accuracy with a partial metrics section", category: "accuracy", log: "accuracy_fail", valid: true, rows: 2,
			edits: []func(string) string{accuracy, section("benchmark", "    metric_names: [IGNORED_A, IGNORED_B]\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := base
			for _, e := range tt.edits {
				text = e(text)
			}
			dir := filepath.Join(t.TempDir(), "disagg", tt.category)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "x.yaml")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			tc, _ := config.LoadFile(path)
			tc.Resolve(nil, nil)
			problems := tc.Validate()
			if config.HasErrors(problems) == tt.valid {
				t.Fatalf("config valid = %v, want %v: %v", !config.HasErrors(problems), tt.valid, problems)
			}
			logDir := jobs(tt.log)
			live, parsed := livePath(t, path, logDir), parsePath(t, path, logDir)
			if len(parsed.Rows) != tt.rows {
				t.Errorf("collector parse: %d judged rows, want %d: %+v", len(parsed.Rows), tt.rows, parsed)
			}
			if live.Valid != parsed.Valid || live.Partial != parsed.Partial || !slices.Equal(live.Reasons, parsed.Reasons) {
				t.Errorf("verdicts differ:\n live:  valid=%v partial=%v reasons=%q\n parse: valid=%v partial=%v reasons=%q",
					live.Valid, live.Partial, live.Reasons, parsed.Valid, parsed.Partial, parsed.Reasons)
			}
			if !slices.EqualFunc(live.Rows, parsed.Rows, func(a, b judgedRow) bool {
				return a.Concurrency == b.Concurrency && a.Metric == b.Metric && a.Dataset == b.Dataset &&
					a.Filter == b.Filter && a.Threshold == b.Threshold && a.Passed == b.Passed &&
					(a.Value == b.Value || math.IsNaN(a.Value) && math.IsNaN(b.Value))
			}) {
				t.Errorf("values differ:\n live:  %s\n parse: %s", rowsString(live.Rows), rowsString(parsed.Rows))
			}
		})
	}
}

func rowsString(rows []judgedRow) string {
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%+v", r))
	}
	return strings.Join(parts, "\n        ")
}
