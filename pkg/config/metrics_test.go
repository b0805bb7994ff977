package config

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

func TestMetricsOverrideFieldByField(t *testing.T) {
	text := edit(t, baseYAML(t), "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    log_file: custom.log\n")
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) {
		t.Fatal(dump(ps))
	}
	m, d := tt.Metrics(), DefaultMetrics("disagg", "perf")
	if m.LogFile != "custom.log" || m.ExtractorPattern != d.ExtractorPattern || !slices.Equal(m.MetricNames, d.MetricNames) {
		t.Errorf("metrics = %+v", m)
	}
	// The returned names are a copy.
	m.MetricNames[0] = "changed"
	if DefaultMetrics("disagg", "perf").MetricNames[0] == "changed" {
		t.Error("DefaultMetrics shares its slice")
	}
}

func TestHash(t *testing.T) {
	a, _ := LoadBytes("cfg/disagg/perf/x.yaml", []byte(baseYAML(t)))
	// Same config written differently: list form, a comment, sections reordered.
	other := edit(t, baseYAML(t), `"1 2 4 8 16 32"`, "[1, 2, 4, 8, 16, 32] # same")
	i := strings.Index(other, "hardware:")
	j := strings.Index(other, "environment:")
	other = other[i:j] + other[:i] + other[j:]
	b, ps := LoadBytes("cfg/disagg/perf/y.yaml", []byte(other))
	if HasErrors(ps) {
		t.Fatal(dump(ps))
	}
	if a.Hash() != b.Hash() || len(a.Hash()) != 16 {
		t.Errorf("hash %s != %s", a.Hash(), b.Hash())
	}
	c, _ := LoadBytes("cfg/disagg/perf/x.yaml", []byte(edit(t, baseYAML(t), "free_gpu_memory_fraction: 0.85", "free_gpu_memory_fraction: 0.8")))
	if c.Hash() == a.Hash() {
		t.Error("a carried-through option change does not change the hash")
	}
	d, _ := LoadBytes("cfg/wideep/perf/x.yaml", []byte(baseYAML(t)))
	if d.Hash() == a.Hash() {
		t.Error("test type does not change the hash")
	}
}
