package metrics

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/iotest"
)

// blk renders a result block with the given TTFT and E2EL medians and request counts.
func blk(total, succ, failed int, ttft, e2el float64) string {
	r := makeRun(1, total, 0)
	r.failed = total - succ
	if failed >= 0 {
		r.failed = failed
		r.overrideSuccessful = succ
	}
	r.lat[0][1], r.lat[3][1] = ttft, e2el
	return r.block()
}

// cutAfter cuts s just after the first occurrence of marker, as a killed job leaves it.
func cutAfter(s, marker string) string {
	return s[:strings.Index(s, marker)+len(marker)]
}

func TestReadBench(t *testing.T) {
	type want struct {
		logC          int
		warmup, done  bool
		closed        bool
		ttft, e2el    float64 // NaN: absent
		succ, prompts int
	}
	nan := math.NaN()
	tests := []struct {
		name string
		log  string
		want []want
	}{
		{"marked block",
			"Benchmarking with concurrency 4 ... 40 prompts\n" + blk(40, 40, 0, 11.5, 222.25) + "Benchmark with concurrency 4 done\n",
			[]want{{logC: 4, done: true, closed: true, ttft: 11.5, e2el: 222.25, succ: 40, prompts: 40}}},
		{"block outside any marker is a warmup",
			blk(1, 1, 0, 9, 99),
			[]want{{warmup: true, closed: true, ttft: 9, e2el: 99, succ: 1}}},
		{"earlier block in a span is a warmup",
			"Benchmarking with concurrency 2 ... 20 prompts\n" + blk(2, 2, 0, 1, 2) + blk(20, 20, 0, 3, 4) + "Benchmark with concurrency 2 done\n",
			[]want{{logC: 2, warmup: true, done: true, closed: true, ttft: 1, e2el: 2, succ: 2, prompts: 20},
				{logC: 2, done: true, closed: true, ttft: 3, e2el: 4, succ: 20, prompts: 20}}},
		{"timestamp prefix and ANSI on markers",
			"[01:02:03] \x1b[1mBenchmarking with concurrency 16 ... 160 prompts\x1b[0m\n" + blk(160, 160, 0, 5, 6) + "2026-11-27 01:05:00 Benchmark with concurrency 16 done\n",
			[]want{{logC: 16, done: true, closed: true, ttft: 5, e2el: 6, succ: 160, prompts: 160}}},
		{"done for another concurrency",
			"Benchmarking with concurrency 4\n" + blk(4, 4, 0, 5, 6) + "Benchmark with concurrency 8 done\n",
			[]want{{logC: 4, closed: true, ttft: 5, e2el: 6, succ: 4}}},
		{"truncated at end of file mid-line",
			"Benchmarking with concurrency 4 ... 40 prompts\n" + cutAfter(blk(40, 40, 0, 5, 6), "Mean ITL (ms):   "),
			[]want{{logC: 4, ttft: 5, e2el: nan, succ: 40, prompts: 40}}},
		{"new span before the block closed",
			"Benchmarking with concurrency 4\n" + cutAfter(blk(4, 4, 0, 5, 6), "Median E2EL (ms):") + "\nBenchmarking with concurrency 8\n" + blk(8, 8, 0, 7, 8) + "Benchmark with concurrency 8 done\n",
			[]want{{logC: 4, ttft: 5, e2el: nan, succ: 4}, {logC: 8, done: true, closed: true, ttft: 7, e2el: 8, succ: 8}}},
		{"CRLF and lone CR",
			strings.ReplaceAll("Benchmarking with concurrency 4\n"+blk(4, 4, 0, 5, 6)+"Benchmark with concurrency 4 done\n", "\n", "\r\n") +
				strings.ReplaceAll("Benchmarking with concurrency 8\n"+blk(8, 8, 0, 7, 8)+"Benchmark with concurrency 8 done\n", "\n", "\r"),
			[]want{{logC: 4, done: true, closed: true, ttft: 5, e2el: 6, succ: 4}, {logC: 8, done: true, closed: true, ttft: 7, e2el: 8, succ: 8}}},
		{"overlong progress line before the block",
			"Benchmarking with concurrency 4\n" + strings.Repeat("█", 100000) + "\n" + blk(4, 4, 0, 5, 6) + "Benchmark with concurrency 4 done\n",
			[]want{{logC: 4, done: true, closed: true, ttft: 5, e2el: 6, succ: 4}}},
		{"progress bar glued to the header by CR",
			"Benchmarking with concurrency 4\n 50%|█████     | 2/4\r" + blk(4, 4, 0, 5, 6) + "Benchmark with concurrency 4 done\n",
			[]want{{logC: 4, done: true, closed: true, ttft: 5, e2el: 6, succ: 4}}},
		{"nan values",
			"Benchmarking with concurrency 1\n" + strings.Replace(blk(1, 1, 0, 5, 6), "5.00", "nan ", 1) + "Benchmark with concurrency 1 done\n",
			[]want{{logC: 1, done: true, closed: true, ttft: nan, e2el: 6, succ: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs, err := ReadBench(strings.NewReader(tt.log))
			if err != nil {
				t.Fatal(err)
			}
			if len(bs) != len(tt.want) {
				t.Fatalf("got %d blocks, want %d: %+v", len(bs), len(tt.want), bs)
			}
			for i, w := range tt.want {
				b := bs[i]
				if b.LogConcurrency != w.logC || b.Warmup != w.warmup || b.Done != w.done || b.Closed != w.closed || b.Prompts != w.prompts {
					t.Errorf("block %d: logC=%d warmup=%v done=%v closed=%v prompts=%d, want %+v", i, b.LogConcurrency, b.Warmup, b.Done, b.Closed, b.Prompts, w)
				}
				for _, fv := range []struct {
					f Field
					v float64
				}{{MedianTTFT, w.ttft}, {MedianE2EL, w.e2el}, {SuccessfulRequests, float64(w.succ)}} {
					got, ok := b.Get(fv.f)
					switch {
					case math.IsNaN(fv.v) && fv.f == MedianE2EL:
						if ok {
							t.Errorf("block %d: %s = %v, want absent", i, fv.f, got)
						}
					case math.IsNaN(fv.v):
						if !ok || !math.IsNaN(got) {
							t.Errorf("block %d: %s = %v (present %v), want NaN", i, fv.f, got, ok)
						}
					case !ok || got != fv.v:
						t.Errorf("block %d: %s = %v (present %v), want %v", i, fv.f, got, ok, fv.v)
					}
				}
			}
		})
	}
}

func TestReadBenchAllFields(t *testing.T) {
	r := makeRun(8, 80, 1)
	r.failed = 2
	// The P90 lines and goodput that clients print with --metric-percentiles 90,99 and
	// --goodput go before the closing rule.
	block := strings.TrimSuffix(r.block(), "\n")
	rule := strings.LastIndexByte(block, '\n')
	block = block[:rule+1] + "Request goodput (req/s):                 3.25\n" +
		"P90 TTFT (ms):                           11.5\nP90 TPOT (ms):                           12.5\n" +
		"P90 ITL (ms):                            13.5\nP90 E2EL (ms):                           14.5\n" + block[rule+1:] + "\n"
	bs, err := ReadBench(strings.NewReader("Benchmarking with concurrency 8 ... 80 prompts\n" + block + "Benchmark with concurrency 8 done\n"))
	if err != nil || len(bs) != 1 {
		t.Fatalf("%v %v", err, bs)
	}
	b := bs[0]
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	want := map[Field]float64{
		TotalRequests: 80, SuccessfulRequests: 78, FailedRequests: 2, Duration: round(r.duration),
		InputTokens: 80 * 1024, GeneratedTokens: 80 * 1024, RequestThroughput: round(r.reqTput),
		OutputThroughput: round(r.outTput), TotalThroughput: round(r.totTput), UserThroughput: round(r.userTput),
		RequestGoodput: 3.25, P90TTFT: 11.5, P90TPOT: 12.5, P90ITL: 13.5, P90E2EL: 14.5,
	}
	for i := range 4 {
		for k := range 4 {
			want[MeanTTFT+Field(4*i+k)] = round(r.lat[i][k])
		}
	}
	for f := range NumFields {
		got, ok := b.Get(f)
		if !ok || got != want[f] {
			t.Errorf("%s (%s) = %v (present %v), want %v", f, f.Label(), got, ok, want[f])
		}
	}
	if b.OutputThroughput != want[OutputThroughput] || b.P99E2EL != want[P99E2EL] {
		t.Errorf("typed fields disagree with Get: %v %v", b.OutputThroughput, b.P99E2EL)
	}
	if !b.Complete() {
		t.Errorf("block with P90 lines is not complete: %+v", b)
	}
	for f, name := range map[Field]string{MedianTTFT: "SERVER_MEDIAN_TTFT", P90ITL: "SERVER_P90_ITL", StdE2EL: "SERVER_STD_E2EL", OutputThroughput: "OUTPUT_THROUGHPUT", RequestGoodput: "REQUEST_GOODPUT"} {
		if f.Metric() != name {
			t.Errorf("%s.Metric() = %q, want %q", f, f.Metric(), name)
		}
	}
	if got := b.Fields()["median_ttft_ms"]; got != want[MedianTTFT] {
		t.Errorf("Fields()[median_ttft_ms] = %v", got)
	}
}

func TestReadBenchAliases(t *testing.T) {
	log := "Benchmarking with concurrency 1\n" +
		"============ Serving Benchmark Result ============\n" +
		"Successful requests:                          10        \n" +
		"Benchmark duration (s):                       1.00      \n" +
		"Total output tokens:                          100       \n" +
		"Total token throughput (tok/s):               3.00      \n" +
		"Std TTFT (ms):                                4.00      \n" +
		"Request goodput (req/s):                      9.00      \n" +
		"============================================================\n" +
		"Benchmark with concurrency 1 done\n"
	bs, _ := ReadBench(strings.NewReader(log))
	if len(bs) != 1 || !bs[0].Complete() || bs[0].GeneratedTokens != 100 || bs[0].TotalThroughput != 3 || bs[0].StdTTFT != 4 {
		t.Fatalf("%+v", bs)
	}
}

func TestReadBenchManyBlocksInOneSpan(t *testing.T) {
	var b strings.Builder
	b.WriteString("Benchmarking with concurrency 2\n")
	for i := range 3 * maxPending {
		b.WriteString(blk(2, 2, 0, float64(i), 1))
	}
	b.WriteString("Benchmark with concurrency 2 done\n")
	bs, _ := ReadBench(strings.NewReader(b.String()))
	if len(bs) != 3*maxPending {
		t.Fatalf("got %d blocks", len(bs))
	}
	for i, x := range bs {
		last := i == len(bs)-1
		if x.Warmup == last || x.MedianTTFT != float64(i) {
			t.Errorf("block %d: warmup=%v ttft=%v", i, x.Warmup, x.MedianTTFT)
		}
	}
}

func TestBlockJSON(t *testing.T) {
	b := Block{Concurrency: 2, LogConcurrency: 4, Closed: true}
	b.Set(MedianTTFT, 1.5)
	b.Set(StdTTFT, math.NaN())
	data, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for _, want := range []string{`"median_ttft_ms":1.5`, `"std_ttft_ms":null`, `"log_concurrency":4`, `"complete":false`} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %s", s, want)
		}
	}
	if strings.Contains(s, "p99_ttft_ms") {
		t.Errorf("%s has a field never printed", s)
	}
}

func ExampleReadBench() {
	log := "Benchmarking with concurrency 8 ... 80 prompts\n" +
		"============ Serving Benchmark Result ============\n" +
		"Successful requests:                     80        \n" +
		"Benchmark duration (s):                  12.34     \n" +
		"Total generated tokens:                  81920     \n" +
		"Median TTFT (ms):                        55.10     \n" +
		"==================================================\n" +
		"Benchmark with concurrency 8 done\n"
	blocks, _ := ReadBench(strings.NewReader(log))
	for _, b := range blocks {
		fmt.Println(b.LogConcurrency, b.Complete(), b.MedianTTFT)
	}
	// Output: 8 true 55.1
}

// An overlong line is dropped whatever the read sizes, so a marker at its end is not
// seen through one reader and missed through another.
func TestReadBenchOverlongLineSameForAllReaders(t *testing.T) {
	log := "Benchmarking with concurrency 4\n" + strings.Repeat("x", maxLine+10) + "Benchmark with concurrency 4 done\n" +
		"Benchmarking with concurrency 8\n" + blk(8, 8, 0, 1, 2) + "Benchmark with concurrency 8 done\n"
	whole, _ := ReadBench(strings.NewReader(log))
	small, _ := ReadBench(iotest.HalfReader(strings.NewReader(log)))
	if len(whole) != 1 || len(small) != 1 || whole[0].LogConcurrency != 8 || small[0].LogConcurrency != 8 || whole[0].Line != small[0].Line {
		t.Fatalf("whole %+v\nsmall %+v", whole, small)
	}
}

// The nv_sa flow (use_nv_sa_benchmark): its client prints no failed-request line in the
// block; upstream's script prints "Total failed requests: N" after it, which counts for
// that point. The warm-up before the sweep stays a warmup.
func TestReadBenchNvSaFailedLine(t *testing.T) {
	block := func(n int) string {
		b := blk(n, n, 0, 12, 340)
		var out []string
		for l := range strings.SplitSeq(b, "\n") {
			if !strings.HasPrefix(l, "Failed requests:") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	log := "warming up ucx connections with small requests... 8\n" + blk(8, 8, 0, 50, 60) + "UCX warmup done\n" +
		"Starting benchmark...\n" +
		"Benchmarking with concurrency 4 ... 8 prompts\n" + block(8) + "Total failed requests: 2\n" + "Benchmark with concurrency 4 done\n" +
		"Benchmarking with concurrency 8 ... 16 prompts\n" + block(16) + "Total failed requests: 0\n" + "Benchmark with concurrency 8 done\n"
	bs, err := ReadBench(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 3 || !bs[0].Warmup || bs[1].Warmup || bs[2].Warmup || !bs[1].Done {
		t.Fatalf("blocks %+v", bs)
	}
	if v, ok := bs[1].Get(FailedRequests); !ok || v != 2 {
		t.Errorf("concurrency 4: failed %v (%v), want 2", v, ok)
	}
	if v, ok := bs[2].Get(FailedRequests); !ok || v != 0 {
		t.Errorf("concurrency 8: failed %v (%v), want 0", v, ok)
	}
	if v, _ := bs[1].Get(MedianTTFT); v != 12 {
		t.Errorf("median TTFT %v", v)
	}
}

// lookupLabel finds every label in any ASCII case, and nothing else: each label with one
// byte changed is found exactly when the change only altered its case.
func TestLookupLabel(t *testing.T) {
	want := map[string]Field{}
	for f := range NumFields {
		for _, l := range fields[f].labels {
			want[l] = f
		}
	}
	if len(want) < 35 {
		t.Fatalf("only %d labels", len(want))
	}
	check := func(label string) {
		t.Helper()
		f, ok := lookupLabel([]byte(label))
		wf, wok := want[strings.ToLower(label)]
		if strings.ToLower(label) != strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, label) {
			wok = false // only ASCII folds
		}
		if ok != wok || f != wf {
			t.Errorf("lookupLabel(%q) = %v, %v; want %v, %v", label, f, ok, wf, wok)
		}
	}
	for l := range want {
		check(l)
		check(strings.ToUpper(l))
		check(labelTitle(l))
		words := strings.Fields(l)
		for i, w := range words {
			words[i] = strings.ToUpper(w[:1]) + w[1:]
		}
		check(strings.Join(words, " ")) // each word capitalised: "Std Dev Ttft (ms)"
		for i := range len(l) {
			for _, c := range []byte{'x', 'X', ' ', '(', 0xc3, l[i] ^ 0x20} {
				b := []byte(l)
				b[i] = c
				check(string(b))
			}
		}
		check(l[1:])
		check(l + " ")
	}
	for _, s := range []string{"", "x", "Median", strings.Repeat("a", 63), "\u212aotal requests"} {
		check(s)
	}
}
