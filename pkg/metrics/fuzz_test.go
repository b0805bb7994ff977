package metrics

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

func addTestdata(f *testing.F, glob string) {
	files, _ := filepath.Glob(filepath.Join("testdata", "jobs", glob))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err == nil {
			f.Add(data)
		}
	}
}

// FuzzReadBench: any input reads without panic, and reading it one byte at a time gives
// the same blocks as reading it whole.
func FuzzReadBench(f *testing.F) {
	// Small seeds: the fuzzer stalls on inputs of tens of kilobytes, and the generated
	// logs run as ordinary tests elsewhere.
	f.Add([]byte("Benchmarking with concurrency 2 ... 20 prompts\n" + blk(20, 20, 0, 1.5, 2.5) + "Benchmark with concurrency 2 done\n"))
	f.Add([]byte(blk(1, 1, 0, 1, 2)[:300]))
	f.Add([]byte("Benchmarking with concurrency 4 ... 40 prompts\r\n===== Serving Benchmark Result =====\r\nMedian TTFT (ms): \x1b[32m1.5\x1b[0m\r\n" + strings.Repeat("=", 50) + "\nBenchmark with concurrency 4 done"))
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, err := ReadBench(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("whole: %v", err)
		}
		bytewise, err := ReadBench(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatalf("bytewise: %v", err)
		}
		if !reflect.DeepEqual(stripNaN(whole), stripNaN(bytewise)) {
			t.Fatalf("whole and bytewise reads differ:\n%+v\n%+v", whole, bytewise)
		}
		lines := bytes.Count(data, []byte{'\n'}) + 1
		for _, b := range whole {
			if b.Line < 1 || b.EndLine < b.Line || b.EndLine > lines || b.LogConcurrency < 0 {
				t.Fatalf("bad block position %+v (input has %d lines)", b, lines)
			}
			if b.Complete() && !b.Closed {
				t.Fatal("complete but not closed")
			}
			if _, err := b.MarshalJSON(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// stripNaN replaces NaN values so DeepEqual compares blocks.
func stripNaN(bs []Block) []Block {
	out := make([]Block, len(bs))
	for i, b := range bs {
		for f := range NumFields {
			if v, ok := b.Get(f); ok && v != v {
				b.Set(f, -1)
			}
		}
		out[i] = b
	}
	return out
}

// FuzzReadEval: lm_eval tables read without panic and independently of read sizes.
func FuzzReadEval(f *testing.F) {
	addTestdata(f, "*/7_accuracy_eval_*.log")
	f.Add([]byte("|Tasks|Filter|Metric|Value|\n|---|---|---|---|\n|gsm8k|none|exact_match|0.5|\n||strict|exact_match|N/A|\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, err := ReadEval(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		bytewise, err := ReadEval(iotest.OneByteReader(bytes.NewReader(data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(whole) != len(bytewise) {
			t.Fatalf("%d rows whole, %d bytewise", len(whole), len(bytewise))
		}
		for i, r := range whole {
			if r.Task == "" || r.Run < 1 || r.Line < 1 {
				t.Fatalf("bad row %+v", r)
			}
			if r.Task != bytewise[i].Task || r.Filter != bytewise[i].Filter || r.Line != bytewise[i].Line {
				t.Fatalf("row %d differs: %+v vs %+v", i, r, bytewise[i])
			}
		}
	})
}

// FuzzNormalizeLog: no CR or ESC survives, and LF count is kept or grows.
func FuzzNormalizeLog(f *testing.F) {
	addTestdata(f, "disagg_crlf_colour/6_bench.log")
	f.Add([]byte("a\x1b[1;32mb\x1b]0;title\x07c\r\nd\re\x1b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := NormalizeLog(data)
		if bytes.IndexByte(out, '\r') >= 0 || bytes.IndexByte(out, 0x1b) >= 0 {
			t.Fatalf("CR or ESC left in %q", out)
		}
		if bytes.Count(out, []byte{'\n'}) < bytes.Count(data, []byte{'\n'}) {
			t.Fatalf("lost a line end: %q -> %q", data, out)
		}
	})
}

// FuzzFastDecimal: the fast path agrees with strconv.ParseFloat bit for bit.
func FuzzFastDecimal(f *testing.F) {
	for _, s := range []string{"0", "12.50", "10500.00", "999999999999999", "0.000000000000001", "1.", ".5", "-1", "1e5", "123456789012345.6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := fastDecimal([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(v) != math.Float64bits(want) {
			t.Fatalf("fastDecimal(%q) = %v, ParseFloat = %v, %v", s, v, want, err)
		}
	})
}

// FuzzJudgeCustom: a custom pattern over any log gives a verdict without panic, and a
// valid verdict has a row per name for every listed concurrency.
func FuzzJudgeCustom(f *testing.F) {
	f.Add(`Median\ TTFT\ \(ms\):\s+([\d.]+) (?:.*\n)*? .*concurrency\ (\d+)\ done`, "Median TTFT (ms): 1.5\nx\nBenchmark with concurrency 4 done\n")
	f.Add(`(\d+)\ (\d+)`, "1 2\r\n3 4\x1b[0m\n")
	f.Fuzz(func(t *testing.T, pattern, log string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "custom.log"), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
		in := Input{TestType: "disagg", Category: "perf", Concurrencies: []int{2, 4}, NumGenServers: 1,
			Custom: &testspec.MetricsSpec{LogFile: "custom.log", ExtractorPattern: pattern, MetricNames: []string{"A"}}}
		res := Judge(dir, in)
		if res.Valid && len(res.Perf) != 2 {
			t.Fatalf("valid with %d rows", len(res.Perf))
		}
		if res.Valid != (len(res.Reasons) == 0) {
			t.Fatal("valid disagrees with reasons")
		}
	})
}
