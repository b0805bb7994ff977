package testspec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

// benchBlock is one benchmark_serving result block in the client log's format.
func benchBlock(c int, base float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Benchmarking with concurrency %d ... %d prompts\n", c, c*8)
	b.WriteString("============ Serving Benchmark Result ============\n")
	fmt.Fprintf(&b, "%-40s %-10d\n", "Successful requests:", c*8)
	b.WriteString("---------------Time to First Token----------------\n")
	for i, s := range []string{"Mean", "Median", "Std Dev", "P99"} {
		fmt.Fprintf(&b, "%-40s %-10.2f\n", s+" TTFT (ms):", base+float64(i))
	}
	for j, m := range []string{"TPOT", "ITL", "E2EL"} {
		fmt.Fprintf(&b, "-----%s-----\n", m)
		for i, s := range []string{"Mean", "Median", "Std Dev", "P99"} {
			fmt.Fprintf(&b, "%-40s %-10.2f\n", s+" "+m+" (ms):", base+float64(10*(j+1)+i))
		}
	}
	b.WriteString("==================================================\n")
	fmt.Fprintf(&b, "Benchmark with concurrency %d done\n", c)
	return b.String()
}

// warmupLog has a warmup that prints Median TTFT without E2EL (the seed's defect 3)
// and a concurrency whose benchmark produced no block.
func warmupLog() string {
	return "warming up\n" + fmt.Sprintf("%-40s %-10.2f\n", "Median TTFT (ms):", 9999.0) +
		benchBlock(1, 100) + benchBlock(2, 200) +
		"Benchmarking with concurrency 4 ... 32 prompts\nTraceback: failed\nBenchmark with concurrency 4 done\n" +
		benchBlock(8, 800)
}

func TestDefaultMetricsPatterns(t *testing.T) {
	log := warmupLog()
	for _, tc := range []struct {
		typ, cat string
		want     [][]string // per match: metric values then concurrency
	}{
		{"disagg", "perf", [][]string{{"101.00", "131.00", "1"}, {"201.00", "231.00", "2"}, {"801.00", "831.00", "8"}}},
		{"disagg", "stress", [][]string{{"101.00", "131.00", "1"}, {"201.00", "231.00", "2"}, {"801.00", "831.00", "8"}}},
		{"wideep", "perf", [][]string{
			{"100.00", "101.00", "103.00", "110.00", "111.00", "113.00", "120.00", "121.00", "123.00", "130.00", "131.00", "133.00", "1"},
			{"200.00", "201.00", "203.00", "210.00", "211.00", "213.00", "220.00", "221.00", "223.00", "230.00", "231.00", "233.00", "2"},
			{"800.00", "801.00", "803.00", "810.00", "811.00", "813.00", "820.00", "821.00", "823.00", "830.00", "831.00", "833.00", "8"},
		}},
	} {
		m := DefaultMetrics(tc.typ, tc.cat)
		goRE := regexp.MustCompile(m.ExtractorPattern)
		pyRE, err := pyre.Compile(m.ExtractorPattern)
		if err != nil {
			t.Fatalf("%s/%s: the pattern does not read the same under re.VERBOSE: %v", tc.typ, tc.cat, err)
		}
		for name, re := range map[string]*regexp.Regexp{"go": goRE, "verbose": pyRE} {
			var got [][]string
			for _, sm := range re.FindAllStringSubmatch(log, -1) {
				got = append(got, sm[1:])
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("%s/%s (%s): matches = %v, want %v", tc.typ, tc.cat, name, got, tc.want)
			}
			if re.NumSubexp() != len(m.MetricNames)+1 {
				t.Errorf("%s/%s: %d groups for %d names", tc.typ, tc.cat, re.NumSubexp(), len(m.MetricNames))
			}
		}
	}
	acc := DefaultMetrics("wideep", "accuracy")
	table := "|Tasks|Version|     Filter     |n-shot|  Metric   |   |Value |   |Stderr|\n" +
		"|gsm8k|      3|flexible-extract|     5|exact_match|↑  |0.9454|±  |0.0063|\n" +
		"|     |       |strict-match    |     5|exact_match|↑  |0.9393|±  |0.0066|\n"
	if got := regexp.MustCompile(acc.ExtractorPattern).FindAllStringSubmatch(table, -1); len(got) != 1 || got[0][1] != "gsm8k" || got[0][3] != "0.9454" {
		t.Errorf("accuracy pattern: %q", got)
	}
	if acc.LogFile != "7_accuracy_eval_*.log" || DefaultMetrics("disagg", "perf").LogFile != "6_bench.log" {
		t.Error("default log files")
	}
}
