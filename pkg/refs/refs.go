// Package refs judges a test's measured values against its references (absolute bounds,
// or a reference value with a relative tolerance) and compares runs metric by metric.
// It knows each metric's good direction: latencies and durations lower, throughputs,
// goodput and accuracy scores higher.
package refs

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// Direction of a metric: Higher or Lower is better; Neutral has no better side (request
// and token counts).
type Direction int

const (
	Neutral Direction = iota
	Higher
	Lower
)

func (d Direction) String() string {
	switch d {
	case Higher:
		return "higher is better"
	case Lower:
		return "lower is better"
	}
	return "neutral"
}

// Derived metrics are columns of a perf row rather than metrics of their own; a
// reference or a comparison may name them like any metric.
var Derived = []string{"output_tok_s_per_gpu", "input_tok_s_per_gpu", "total_tok_s_per_gpu", "tok_s_per_user"}

// DirectionOf returns a metric's good direction from its name: SERVER_*_TTFT, TPOT,
// ITL, E2EL, BENCHMARK_DURATION and FAILED_REQUESTS are latencies or costs (lower);
// throughputs, goodput, tok/s and accuracy metrics (exact_match, acc, ...) are higher;
// request and token counts are neutral.
func DirectionOf(metric string) Direction {
	m := strings.ToUpper(metric)
	switch {
	case strings.HasPrefix(m, "SERVER_"), strings.Contains(m, "TTFT"), strings.Contains(m, "TPOT"),
		strings.Contains(m, "ITL"), strings.Contains(m, "E2EL"), m == "BENCHMARK_DURATION", m == "FAILED_REQUESTS":
		return Lower
	case strings.Contains(m, "THROUGHPUT"), strings.Contains(m, "GOODPUT"), strings.Contains(m, "TOK_S"),
		m == "SUCCESSFUL_REQUESTS":
		return Higher
	case m == "TOTAL_REQUESTS", m == "TOTAL_INPUT_TOKENS", m == "TOTAL_OUTPUT_TOKENS":
		return Neutral
	}
	// Accuracy metrics (exact_match, acc, acc_norm, ...) and anything else a test
	// extracts itself: a score.
	return Higher
}

// counts and clientMetrics are the names the benchmark client's result block gives
// (see metrics.Field.Metric); latencies are SERVER_<STAT>_<LATENCY>.
var clientMetrics = map[string]bool{
	"TOTAL_REQUESTS": true, "SUCCESSFUL_REQUESTS": true, "FAILED_REQUESTS": true, "BENCHMARK_DURATION": true,
	"TOTAL_INPUT_TOKENS": true, "TOTAL_OUTPUT_TOKENS": true, "REQUEST_THROUGHPUT": true, "REQUEST_GOODPUT": true,
	"OUTPUT_THROUGHPUT": true, "TOTAL_THROUGHPUT": true, "USER_THROUGHPUT": true,
}

var latencyMetric = regexp.MustCompile(`^SERVER_(MEAN|MEDIAN|STD|P[0-9]{1,2}(\.[0-9]+)?)_(TTFT|TPOT|ITL|E2EL)$`)

// KnownPerfMetric says whether a perf test's dataset holds metric: a value of the
// client's result block, or a derived per-GPU or per-user throughput.
func KnownPerfMetric(metric string) bool {
	return clientMetrics[metric] || latencyMetric.MatchString(metric) || slices.Contains(Derived, metric)
}

// Reference is one bound on a metric: Min or Max (absolute), or Value with Tolerance
// (the relative change allowed in the bad direction). Insufficient marks a reference
// whose value was to come from history that was too short.
type Reference struct {
	Metric       string   `json:"metric"`
	GPU          string   `json:"gpu,omitempty"`
	Concurrency  int      `json:"concurrency,omitempty"`
	Min          *float64 `json:"min,omitempty"`
	Max          *float64 `json:"max,omitempty"`
	Value        *float64 `json:"value,omitempty"`
	Tolerance    float64  `json:"tolerance,omitempty"`
	Source       string   `json:"source,omitempty"` // where Value came from: "file", "run <id>", "median of N runs"
	Insufficient bool     `json:"insufficient,omitempty"`
}

// Applies says whether the reference covers a value of metric at concurrency on gpu.
func (r Reference) Applies(metric string, concurrency int, gpu string) bool {
	return strings.EqualFold(r.Metric, metric) && (r.Concurrency == 0 || r.Concurrency == concurrency) &&
		(r.GPU == "" || strings.EqualFold(r.GPU, gpu))
}

// Verdicts of a value against its references.
const (
	Pass         = "pass"
	Regression   = "regression"
	Improvement  = "improvement"
	Insufficient = "insufficient data"
)

// Outcome is a value judged against one reference.
type Outcome struct {
	Verdict string
	// Bound is the limit the value was held to: Min, Max, or the reference value moved
	// by the tolerance in the bad direction.
	Bound   float64
	Message string
}

// Check judges value (of metric at concurrency) against r.
func Check(r Reference, metric string, concurrency int, value float64) Outcome {
	where := metric
	if concurrency > 0 {
		where = fmt.Sprintf("%s at concurrency %d", metric, concurrency)
	}
	if math.IsNaN(value) {
		return Outcome{Verdict: Regression, Message: fmt.Sprintf("%s: no value to hold to its reference", where)}
	}
	switch {
	case r.Max != nil && value > *r.Max:
		return Outcome{Regression, *r.Max, fmt.Sprintf("%s = %s, above its maximum %s", where, num(value), num(*r.Max))}
	case r.Min != nil && value < *r.Min:
		return Outcome{Regression, *r.Min, fmt.Sprintf("%s = %s, below its minimum %s", where, num(value), num(*r.Min))}
	case r.Insufficient:
		return Outcome{Verdict: Insufficient, Message: fmt.Sprintf("%s: %s", where, cmpOr(r.Source, "too little history for a reference value"))}
	case r.Value == nil:
		bound := 0.0
		if r.Max != nil {
			bound = *r.Max
		} else if r.Min != nil {
			bound = *r.Min
		}
		return Outcome{Verdict: Pass, Bound: bound}
	}
	ref := *r.Value
	dir := DirectionOf(metric)
	if dir == Neutral {
		dir = Higher
	}
	var bound, better float64
	if dir == Lower {
		bound, better = ref*(1+r.Tolerance), ref*(1-r.Tolerance)
	} else {
		bound, better = ref*(1-r.Tolerance), ref*(1+r.Tolerance)
	}
	change := 0.0
	if ref != 0 {
		change = (value - ref) / math.Abs(ref) * 100
	}
	src := ""
	if r.Source != "" {
		src = " (" + r.Source + ")"
	}
	switch {
	case dir == Lower && value > bound, dir == Higher && value < bound:
		return Outcome{Regression, bound, fmt.Sprintf("%s = %s, %+.1f%% against its reference %s%s: beyond the %.1f%% tolerance (bound %s)",
			where, num(value), change, num(ref), src, r.Tolerance*100, num(bound))}
	case dir == Lower && value < better, dir == Higher && value > better:
		return Outcome{Improvement, bound, fmt.Sprintf("%s = %s, %+.1f%% against its reference %s%s: better by more than the tolerance; the reference may be raised",
			where, num(value), change, num(ref), src)}
	}
	return Outcome{Verdict: Pass, Bound: bound}
}

// Worst returns the more serious of two verdicts (regression over insufficient data over
// improvement over pass; "" for none).
func Worst(a, b string) string {
	rank := map[string]int{"": 0, Pass: 1, Improvement: 2, Insufficient: 3, Regression: 4}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func num(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.6g", v)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Point is one measured value of a run, keyed by test, concurrency and metric (and, for
// accuracy, dataset and filter).
type Point struct {
	Test        string
	Concurrency int
	Metric      string
	Dataset     string
	Filter      string
	Value       float64
}

func (p Point) key() string {
	return fmt.Sprintf("%s\x00%09d\x00%s\x00%s\x00%s", p.Test, p.Concurrency, p.Metric, p.Dataset, p.Filter)
}

// Delta is one metric of one test in two runs.
type Delta struct {
	Test        string   `json:"test"`
	Concurrency int      `json:"concurrency,omitempty"`
	Metric      string   `json:"metric"`
	Dataset     string   `json:"dataset,omitempty"`
	Filter      string   `json:"filter,omitempty"`
	A           *float64 `json:"a"`
	B           *float64 `json:"b"`
	// Change is (B - A) / |A| in percent; nil when either side is missing or A is 0.
	Change *float64 `json:"change_pct"`
	// Verdict is "better" or "worse" when the change passes the threshold in the
	// metric's good or bad direction, "same" within it, "only in A"/"only in B" when one
	// run lacks the value, "changed" for a neutral metric beyond the threshold.
	Verdict   string `json:"verdict"`
	Direction string `json:"direction"`
}

// Comparison lines two runs up.
type Comparison struct {
	Deltas     []Delta  `json:"deltas"`
	OnlyInA    []string `json:"tests_only_in_a,omitempty"`
	OnlyInB    []string `json:"tests_only_in_b,omitempty"`
	Worse      int      `json:"worse"`
	Better     int      `json:"better"`
	ThresholdP float64  `json:"threshold_pct"`
}

// Compare lines up the points of runs a and b by test, concurrency and metric, and
// marks each relative change beyond thresholdPct as better or worse by the metric's
// direction. Tests present in only one run are listed apart.
func Compare(a, b []Point, thresholdPct float64) Comparison {
	cmp := Comparison{ThresholdP: thresholdPct}
	index := func(ps []Point) (map[string]Point, map[string]bool) {
		m, tests := map[string]Point{}, map[string]bool{}
		for _, p := range ps {
			m[p.key()] = p
			tests[p.Test] = true
		}
		return m, tests
	}
	am, at := index(a)
	bm, bt := index(b)
	keys := make([]string, 0, len(am)+len(bm))
	for k := range am {
		keys = append(keys, k)
	}
	for k := range bm {
		if _, ok := am[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for t := range at {
		if !bt[t] {
			cmp.OnlyInA = append(cmp.OnlyInA, t)
		}
	}
	for t := range bt {
		if !at[t] {
			cmp.OnlyInB = append(cmp.OnlyInB, t)
		}
	}
	slices.Sort(cmp.OnlyInA)
	slices.Sort(cmp.OnlyInB)
	for _, k := range keys {
		pa, inA := am[k]
		pb, inB := bm[k]
		p := pa
		if !inA {
			p = pb
		}
		dir := DirectionOf(p.Metric)
		d := Delta{Test: p.Test, Concurrency: p.Concurrency, Metric: p.Metric, Dataset: p.Dataset, Filter: p.Filter, Direction: dir.String()}
		switch {
		case !inA:
			d.B, d.Verdict = &pb.Value, "only in B"
		case !inB:
			d.A, d.Verdict = &pa.Value, "only in A"
		default:
			d.A, d.B = &pa.Value, &pb.Value
			d.Verdict = "same"
			if pa.Value != 0 {
				c := (pb.Value - pa.Value) / math.Abs(pa.Value) * 100
				d.Change = &c
				if math.Abs(c) > thresholdPct {
					switch {
					case dir == Neutral:
						d.Verdict = "changed"
					case (c > 0) == (dir == Higher):
						d.Verdict = "better"
						cmp.Better++
					default:
						d.Verdict = "worse"
						cmp.Worse++
					}
				}
			} else if pb.Value != 0 && dir != Neutral {
				if (pb.Value > 0) == (dir == Higher) {
					d.Verdict = "better"
					cmp.Better++
				} else {
					d.Verdict = "worse"
					cmp.Worse++
				}
			}
		}
		cmp.Deltas = append(cmp.Deltas, d)
	}
	return cmp
}

// Suggestion is a proposed reference: the median of a metric over the given runs, and
// a tolerance covering their spread.
type Suggestion struct {
	Test        string
	Concurrency int
	Metric      string
	Value       float64
	Tolerance   float64
	Runs        int
}

// Suggest proposes one reference per test, concurrency and judged metric from the
// points of passing runs: the value is the median, the tolerance the largest relative
// distance of a run from it, at least minTolerance, rounded up to the percent.
func Suggest(runs [][]Point, minTolerance float64) []Suggestion {
	type key struct {
		test   string
		conc   int
		metric string
	}
	vals := map[key][]float64{}
	for _, run := range runs {
		for _, p := range run {
			if p.Dataset != "" || math.IsNaN(p.Value) {
				continue
			}
			k := key{p.Test, p.Concurrency, p.Metric}
			vals[k] = append(vals[k], p.Value)
		}
	}
	var out []Suggestion
	for k, vs := range vals {
		slices.Sort(vs)
		med := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			med = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
		}
		tol := minTolerance
		for _, v := range vs {
			if med != 0 {
				tol = max(tol, math.Abs(v-med)/math.Abs(med))
			}
		}
		tol = math.Ceil(tol*100-1e-9) / 100
		out = append(out, Suggestion{Test: k.test, Concurrency: k.conc, Metric: k.metric, Value: med, Tolerance: tol, Runs: len(vs)})
	}
	slices.SortFunc(out, func(a, b Suggestion) int {
		return strings.Compare(fmt.Sprintf("%s\x00%09d\x00%s", a.Test, a.Concurrency, a.Metric), fmt.Sprintf("%s\x00%09d\x00%s", b.Test, b.Concurrency, b.Metric))
	})
	return out
}
