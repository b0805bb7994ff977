// Package testspec owns what a test says about judging it, in the one shape the YAML
// config, the job spec on the wire and the judge all use: its custom metrics section
// and accuracy datasets, the default metrics of each test type and category, and how a
// partial metrics section is completed from them. A leaf: config, events and metrics
// import it.
package testspec

import (
	"fmt"
	"strings"
)

// MetricsSpec says which log to read and how to pull numbers out of it. Each match of
// ExtractorPattern is one concurrency; its last group is the concurrency. As a test
// writes it (benchmark.metrics or metadata.metrics) any field may be left out:
// Resolve fills it from the defaults.
type MetricsSpec struct {
	LogFile          string   `yaml:"log_file" json:"log_file"`
	ExtractorPattern string   `yaml:"extractor_pattern" json:"extractor_pattern"`
	MetricNames      []string `yaml:"metric_names" json:"metric_names"`
}

// AccuracyDataset is one dataset's expected score and hypothesis-test parameters; nil
// parameters take the dataset's defaults (metrics.ResolveDataset).
type AccuracyDataset struct {
	DatasetName    string   `yaml:"dataset_name" json:"dataset_name"`
	ExpectedValue  float64  `yaml:"expected_value" json:"expected_value"`
	ThresholdType  string   `yaml:"threshold_type,omitempty" json:"threshold_type,omitempty"`
	FilterType     string   `yaml:"filter_type,omitempty" json:"filter_type,omitempty"`
	Alpha          *float64 `yaml:"alpha,omitempty" json:"alpha,omitempty"`
	Beta           *float64 `yaml:"beta,omitempty" json:"beta,omitempty"`
	Sigma          *float64 `yaml:"sigma,omitempty" json:"sigma,omitempty"`
	NumSamples     *int     `yaml:"num_samples,omitempty" json:"num_samples,omitempty"`
	HigherIsBetter *bool    `yaml:"higher_is_better,omitempty" json:"higher_is_better,omitempty"`
}

// Resolve returns the metrics a test extracts: the default of its type and category
// with every field custom sets replacing the default's. custom may be nil (the
// defaults). The config's `planner show`, its validation and the judge all read a
// test's metrics through here, so a partial section means the same everywhere.
func Resolve(testType, category string, custom *MetricsSpec) MetricsSpec {
	m := DefaultMetrics(testType, category)
	if custom == nil {
		return m
	}
	if custom.LogFile != "" {
		m.LogFile = custom.LogFile
	}
	if custom.ExtractorPattern != "" {
		m.ExtractorPattern = custom.ExtractorPattern
	}
	if len(custom.MetricNames) > 0 {
		m.MetricNames = append([]string(nil), custom.MetricNames...)
	}
	return m
}

// The seed's log names in a job's log folder.
const (
	ClientLog       = "6_bench.log"
	AccuracyLogGlob = "7_accuracy_eval_*.log"
)

// Default metrics, per (test type, category). Patterns read the same in Go's regexp and
// in Python's re with re.VERBOSE (as the seed compiles them, and pkg/metrics after it):
// they hold no bare spaces, a space is written [ ]. A perf match is one concurrency: its groups are the
// metrics in order and its last group is the concurrency. Lines starting with '=' may not
// sit between the first and the last metric of a match, so a warmup block that prints
// Median TTFT without the rest can never pair with the next real block.
const (
	metricLine  = `[^\n]*?%s[ ]\(ms\):[ \t]+([0-9.]+)[^\n]*\n`
	noBlockEdge = `(?:[^=\n][^\n]*\n|\n)*?`
	doneLine    = `[\s\S]*?Benchmark[ ]with[ ]concurrency[ ](\d+)[ ]done`

	accuracyPattern = `\|([a-zA-Z0-9_-]+)\|.*?\|([\w-]+)\|.*?\|exact_match\|.*?\|([0-9.]+)\|`
)

func perfPattern(metrics ...string) string {
	var b strings.Builder
	for i, m := range metrics {
		if i > 0 {
			b.WriteString(noBlockEdge)
		}
		fmt.Fprintf(&b, metricLine, m)
	}
	b.WriteString(doneLine)
	return b.String()
}

var (
	disaggPerfMetrics = MetricsSpec{
		LogFile:          ClientLog,
		ExtractorPattern: perfPattern(`Median[ ]TTFT`, `Median[ ]E2EL`),
		MetricNames:      []string{"SERVER_MEDIAN_TTFT", "SERVER_MEDIAN_E2EL"},
	}
	wideepPerfMetrics = func() MetricsSpec {
		var lines, names []string
		for _, m := range []string{"TTFT", "TPOT", "ITL", "E2EL"} {
			for _, s := range []string{"Mean", "Median", "P99"} {
				lines = append(lines, s+"[ ]"+m)
				names = append(names, "SERVER_"+strings.ToUpper(s)+"_"+m)
			}
		}
		return MetricsSpec{LogFile: ClientLog, ExtractorPattern: perfPattern(lines...), MetricNames: names}
	}()
	accuracyMetrics = MetricsSpec{
		LogFile:          AccuracyLogGlob,
		ExtractorPattern: accuracyPattern,
		MetricNames:      []string{"flexible-extract", "strict-match"},
	}
)

// DefaultMetrics returns the default metrics of a (test type, category): disagg perf and
// stress read median TTFT and E2EL, wideep perf and stress read mean, median and P99 of
// TTFT, TPOT, ITL and E2EL, and accuracy reads lm_eval's exact_match table. The names
// are the block fields pkg/metrics reads from the client log when a test has no
// metrics section of its own.
func DefaultMetrics(testType, category string) MetricsSpec {
	var m MetricsSpec
	switch {
	case category == "accuracy":
		m = accuracyMetrics
	case testType == "wideep":
		m = wideepPerfMetrics
	default:
		m = disaggPerfMetrics
	}
	m.MetricNames = append([]string(nil), m.MetricNames...)
	return m
}
