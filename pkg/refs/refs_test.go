package refs_test

import (
	"math"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/metrics"
	"github.com/disaggbench/disaggbench/pkg/refs"
)

func f(v float64) *float64 { return &v }

func TestDirections(t *testing.T) {
	for metric, want := range map[string]refs.Direction{
		"SERVER_MEDIAN_TTFT": refs.Lower, "SERVER_P99_E2EL": refs.Lower, "BENCHMARK_DURATION": refs.Lower,
		"OUTPUT_THROUGHPUT": refs.Higher, "REQUEST_GOODPUT": refs.Higher, "output_tok_s_per_gpu": refs.Higher,
		"tok_s_per_user": refs.Higher, "exact_match": refs.Higher, "TOTAL_REQUESTS": refs.Neutral,
	} {
		if got := refs.DirectionOf(metric); got != want {
			t.Errorf("%s: %v, want %v", metric, got, want)
		}
	}
}

// Every value of the client's result block is a metric a reference may name.
func TestEveryClientMetricIsKnown(t *testing.T) {
	for f := range metrics.NumFields {
		if !refs.KnownPerfMetric(f.Metric()) {
			t.Errorf("%s (%s) is not a known perf metric", f.Metric(), f.Label())
		}
	}
	for _, bad := range []string{"SERVER_MEDIAN_TFTT", "output_tok_s", ""} {
		if refs.KnownPerfMetric(bad) {
			t.Errorf("%q is known", bad)
		}
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		ref     refs.Reference
		metric  string
		value   float64
		verdict string
		bound   float64
		msg     string
	}{
		{"under max", refs.Reference{Max: f(2000)}, "SERVER_MEDIAN_TTFT", 1500, refs.Pass, 2000, ""},
		{"over max", refs.Reference{Max: f(2000)}, "SERVER_MEDIAN_TTFT", 2100, refs.Regression, 2000, "SERVER_MEDIAN_TTFT at concurrency 8 = 2100, above its maximum 2000"},
		{"under min", refs.Reference{Min: f(1000)}, "OUTPUT_THROUGHPUT", 900, refs.Regression, 1000, "below its minimum 1000"},
		{"throughput within tolerance", refs.Reference{Value: f(1450), Tolerance: 0.05}, "output_tok_s_per_gpu", 1400, refs.Pass, 1377.5, ""},
		{"throughput below tolerance", refs.Reference{Value: f(1450), Tolerance: 0.05}, "output_tok_s_per_gpu", 1370, refs.Regression, 1377.5, "-5.5% against its reference 1450"},
		{"throughput improved", refs.Reference{Value: f(1450), Tolerance: 0.05}, "output_tok_s_per_gpu", 1600, refs.Improvement, 1377.5, "reference may be raised"},
		{"latency up beyond tolerance", refs.Reference{Value: f(100), Tolerance: 0.1}, "SERVER_P99_TPOT", 111, refs.Regression, 110, "+11.0%"},
		{"latency down is better", refs.Reference{Value: f(100), Tolerance: 0.1}, "SERVER_P99_TPOT", 80, refs.Improvement, 110, ""},
		{"no value", refs.Reference{Max: f(1)}, "SERVER_MEDIAN_TTFT", math.NaN(), refs.Regression, 0, "no value"},
		{"insufficient history", refs.Reference{Insufficient: true, Source: "insufficient data: 1 passing run"}, "OUTPUT_THROUGHPUT", 5, refs.Insufficient, 0, "1 passing run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := refs.Check(tt.ref, tt.metric, 8, tt.value)
			if o.Verdict != tt.verdict || math.Abs(o.Bound-tt.bound) > 1e-9 || !strings.Contains(o.Message, tt.msg) {
				t.Errorf("got %+v, want %s bound %v message with %q", o, tt.verdict, tt.bound, tt.msg)
			}
		})
	}
}
