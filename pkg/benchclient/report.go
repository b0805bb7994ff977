package benchclient

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Metrics are a run's results, as benchmark_serving computes them.
type Metrics struct {
	Total, Completed, Failed int
	Duration                 float64 // seconds
	TotalInput, TotalOutput  int
	RequestThroughput        float64
	RequestGoodput           float64
	OutputThroughput         float64
	TotalTokenThroughput     float64
	UserThroughput           float64
	Good                     int
	TTFT, TPOT, ITL, E2EL    Summary
}

// Goodput holds the --goodput limits in milliseconds, by metric (ttft, tpot, e2el).
type Goodput map[string]float64

// ParseGoodput reads "ttft:100 tpot:10" (as one or several words).
func ParseGoodput(words []string) (Goodput, error) {
	g := Goodput{}
	for _, w := range words {
		for _, kv := range strings.Fields(w) {
			k, v, ok := strings.Cut(kv, ":")
			f, err := strconv.ParseFloat(v, 64)
			if !ok || err != nil || f < 0 {
				return nil, fmt.Errorf("--goodput: %q is not METRIC:MILLISECONDS", kv)
			}
			switch k {
			case "ttft", "tpot", "e2el":
				g[k] = f
			default:
				return nil, fmt.Errorf("--goodput: %q: the metric must be ttft, tpot or e2el", k)
			}
		}
	}
	return g, nil
}

// Compute derives the metrics of a run (see the package comment for definitions).
func Compute(outs []Output, dur time.Duration, percentiles []float64, goodput Goodput) Metrics {
	m := Metrics{Total: len(outs), Duration: dur.Seconds()}
	var ttfts, tpots, itls, e2els, tput []float64
	for _, o := range outs {
		if !o.Success {
			m.Failed++
			continue
		}
		m.Completed++
		m.TotalInput += o.InputLen
		m.TotalOutput += o.OutputLen
		tpot := 0.0
		if o.OutputLen > 1 {
			tpot = (o.Latency - o.TTFT) / float64(o.OutputLen-1)
			tpots = append(tpots, tpot)
		}
		ttfts = append(ttfts, o.TTFT)
		itls = append(itls, o.ITL...)
		e2els = append(e2els, o.Latency)
		if o.Latency > 0 {
			tput = append(tput, float64(o.OutputLen)/o.Latency)
		}
		if len(goodput) > 0 {
			ok := true
			for k, lim := range goodput {
				v := map[string]float64{"ttft": o.TTFT, "tpot": tpot, "e2el": o.Latency}[k] * 1000
				if v > lim {
					ok = false
				}
			}
			if ok {
				m.Good++
			}
		}
	}
	if m.Duration > 0 {
		m.RequestThroughput = float64(m.Completed) / m.Duration
		m.RequestGoodput = float64(m.Good) / m.Duration
		m.OutputThroughput = float64(m.TotalOutput) / m.Duration
		m.TotalTokenThroughput = float64(m.TotalInput+m.TotalOutput) / m.Duration
	}
	for _, t := range tput {
		m.UserThroughput += t / float64(len(tput))
	}
	m.TTFT = summarize(ttfts, percentiles)
	m.TPOT = summarize(tpots, percentiles)
	m.ITL = summarize(itls, percentiles)
	m.E2EL = summarize(e2els, percentiles)
	return m
}

var sections = []struct{ key, name, header string }{
	{"ttft", "TTFT", "Time to First Token"},
	{"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
	{"itl", "ITL", "Inter-token Latency"},
	{"e2el", "E2EL", "End-to-end Latency"},
}

func (m *Metrics) summary(key string) Summary {
	switch key {
	case "ttft":
		return m.TTFT
	case "tpot":
		return m.TPOT
	case "itl":
		return m.ITL
	}
	return m.E2EL
}

func center(s string, width int, fill byte) string {
	if len(s) >= width {
		return s
	}
	left := (width - len(s)) / 2
	return strings.Repeat(string(fill), left) + s + strings.Repeat(string(fill), width-len(s)-left)
}

func pctLabel(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }

// Print writes the "Serving Benchmark Result" block: each line a label padded to 40
// columns and a value padded to 10, the layout benchmark_serving prints.
func (m *Metrics) Print(w io.Writer, selected []string, percentiles []float64, goodput bool) {
	row := func(label string, v float64) { fmt.Fprintf(w, "%-40s %-10.2f\n", label, v) }
	irow := func(label string, v int) { fmt.Fprintf(w, "%-40s %-10d\n", label, v) }
	fmt.Fprintln(w, center(" Serving Benchmark Result ", 50, '='))
	irow("Total requests:", m.Total)
	irow("Successful requests:", m.Completed)
	irow("Failed requests:", m.Failed)
	row("Benchmark duration (s):", m.Duration)
	irow("Total input tokens:", m.TotalInput)
	irow("Total generated tokens:", m.TotalOutput)
	row("Request throughput (req/s):", m.RequestThroughput)
	if goodput {
		row("Request goodput (req/s):", m.RequestGoodput)
	}
	row("Output token throughput (tok/s):", m.OutputThroughput)
	row("Total Token throughput (tok/s):", m.TotalTokenThroughput)
	row("User throughput (tok/s):", m.UserThroughput)
	for _, s := range sections {
		if !contains(selected, s.key) {
			continue
		}
		sm := m.summary(s.key)
		fmt.Fprintln(w, center(s.header, 50, '-'))
		row("Mean "+s.name+" (ms):", sm.Mean)
		row("Median "+s.name+" (ms):", sm.Median)
		row("Std Dev "+s.name+" (ms):", sm.Std)
		for _, p := range percentiles {
			row("P"+pctLabel(p)+" "+s.name+" (ms):", sm.Percentiles[p])
		}
	}
	fmt.Fprintln(w, strings.Repeat("=", 50))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Result is the --save-result JSON: benchmark_serving's keys (per-request times in
// seconds, summaries in milliseconds).
func (m *Metrics) Result(outs []Output, meta map[string]any, selected []string, percentiles []float64) map[string]any {
	r := map[string]any{}
	for k, v := range meta {
		r[k] = v
	}
	r["duration"] = m.Duration
	r["completed"] = m.Completed
	r["total_input_tokens"] = m.TotalInput
	r["total_output_tokens"] = m.TotalOutput
	r["request_throughput"] = m.RequestThroughput
	r["request_goodput"] = m.RequestGoodput
	r["output_throughput"] = m.OutputThroughput
	r["total_token_throughput"] = m.TotalTokenThroughput
	r["user_throughput"] = m.UserThroughput
	in, out, ttfts := make([]int, len(outs)), make([]int, len(outs)), make([]float64, len(outs))
	itls, errs := make([][]float64, len(outs)), make([]string, len(outs))
	for i, o := range outs {
		in[i], ttfts[i], itls[i], errs[i] = o.InputLen, o.TTFT, o.ITL, o.Error
		if o.Success {
			out[i] = o.OutputLen
		}
		if itls[i] == nil {
			itls[i] = []float64{}
		}
	}
	r["input_lens"], r["output_lens"], r["ttfts"], r["itls"], r["errors"] = in, out, ttfts, itls, errs
	for _, s := range sections {
		if !contains(selected, s.key) {
			continue
		}
		sm := m.summary(s.key)
		r["mean_"+s.key+"_ms"] = sm.Mean
		r["median_"+s.key+"_ms"] = sm.Median
		r["std_"+s.key+"_ms"] = sm.Std
		for _, p := range percentiles {
			r["p"+pctLabel(p)+"_"+s.key+"_ms"] = sm.Percentiles[p]
		}
	}
	return r
}

// Saved is what ReadResult reads back of a --save-result JSON.
type Saved struct {
	Completed      int         `json:"completed"`
	MaxConcurrency int         `json:"max_concurrency"`
	TotalInput     int         `json:"total_input_tokens"`
	TotalOutput    int         `json:"total_output_tokens"`
	MedianTTFT     float64     `json:"median_ttft_ms"`
	MedianTPOT     float64     `json:"median_tpot_ms"`
	InputLens      []int       `json:"input_lens"`
	OutputLens     []int       `json:"output_lens"`
	TTFTs          []float64   `json:"ttfts"`
	ITLs           [][]float64 `json:"itls"`
}

// ReadResult reads a result JSON and checks that it agrees with itself: one TTFT and
// one output length a request, the output lengths adding up to total_output_tokens,
// and the median of the TTFTs (seconds) equal to median_ttft_ms.
func ReadResult(path string) (Saved, error) {
	var s Saved
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.TTFTs) != s.Completed || len(s.OutputLens) != s.Completed {
		return s, fmt.Errorf("%s: %d ttfts and %d output_lens for %d completed requests", path, len(s.TTFTs), len(s.OutputLens), s.Completed)
	}
	sum := 0
	for _, n := range s.OutputLens {
		sum += n
	}
	if sum != s.TotalOutput {
		return s, fmt.Errorf("%s: output_lens add up to %d, total_output_tokens is %d", path, sum, s.TotalOutput)
	}
	if med := summarize(s.TTFTs, nil).Median; math.Abs(med-s.MedianTTFT) > 1e-6 {
		return s, fmt.Errorf("%s: the median of ttfts is %.6f ms, median_ttft_ms is %.6f", path, med, s.MedianTTFT)
	}
	return s, nil
}
