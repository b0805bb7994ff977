package metrics

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

func perfString(rows []PerfRow) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%d %s %.2f %s\n", r.Concurrency, r.Metric, r.Value, r.Unit)
	}
	return b.String()
}

func TestJudgePerf(t *testing.T) {
	disaggOK := "" +
		"1 SERVER_MEDIAN_TTFT 180.00 ms\n1 SERVER_MEDIAN_E2EL 10500.00 ms\n" +
		"2 SERVER_MEDIAN_TTFT 191.30 ms\n2 SERVER_MEDIAN_E2EL 10623.40 ms\n" +
		"4 SERVER_MEDIAN_TTFT 202.60 ms\n4 SERVER_MEDIAN_E2EL 10746.80 ms\n"
	disagg := Input{TestType: "disagg", Category: "perf", Concurrencies: []int{1, 2, 4}, NumGenServers: 2, JobState: "COMPLETED"}
	with := func(f func(*Input)) Input {
		in := disagg
		f(&in)
		return in
	}
	tests := []struct {
		name     string
		dir      string
		in       Input
		valid    bool
		partial  bool
		rows     string
		reasons  []string // each must appear in some reason
		warnings []string
	}{
		{name: "warmups never shift a value", dir: "disagg_ok", in: disagg, valid: true, rows: disaggOK},
		{name: "stress uses the perf defaults", dir: "disagg_ok", in: with(func(in *Input) { in.Category = "stress" }), valid: true, rows: disaggOK},
		{name: "no list takes what the log shows", dir: "disagg_ok", in: with(func(in *Input) { in.Concurrencies = nil }), valid: true, rows: disaggOK},
		{name: "failed requests", dir: "disagg_failed", in: disagg, rows: disaggOK,
			reasons: []string{"concurrency 2 (6_bench.log:", "3 failed requests (at most 0 allowed)", "successful requests 37 != total requests 40"}},
		{name: "failed requests allowed", dir: "disagg_failed", in: with(func(in *Input) { in.MaxFailedRequests = 3 }), rows: disaggOK,
			reasons: []string{"successful requests 37 != total requests 40"}},
		{name: "zero tokens", dir: "disagg_zero_tokens", in: disagg, rows: disaggOK,
			reasons: []string{"concurrency 1 (6_bench.log:", "generated tokens is 0, not above zero"}},
		{name: "timeout keeps finished concurrencies", dir: "disagg_timeout", in: with(func(in *Input) { in.JobState = "TIMEOUT" }),
			partial: true, rows: disaggOK[:strings.Index(disaggOK, "4 ")],
			reasons: []string{"job ended in state TIMEOUT", "concurrency 4", "truncated", "no 'Benchmark with concurrency 8 done' line", "Median E2EL (ms) missing"}},
		{name: "missing concurrency", dir: "disagg_missing", in: with(func(in *Input) { in.Concurrencies = []int{1, 2, 4, 8} }),
			partial: true, rows: disaggOK, reasons: []string{"concurrency 8: no result block between 'Benchmarking with concurrency 16'"}},
		{name: "concurrency not reached before a timeout", dir: "disagg_missing", in: with(func(in *Input) { in.Concurrencies = []int{1, 2, 4, 8}; in.JobState = "TIMEOUT" }),
			partial: true, rows: disaggOK, reasons: []string{"job ended in state TIMEOUT", "concurrency 8: no result block for concurrency 16: the job ended (TIMEOUT) before it finished"}},
		{name: "crlf and colours", dir: "disagg_crlf_colour", in: disagg, valid: true, rows: disaggOK},
		{name: "result.json agrees", dir: "disagg_ok", in: disagg, valid: true, rows: disaggOK},
		{name: "result.json disagrees", dir: "disagg_json_disagree", in: with(func(in *Input) { in.Concurrencies = []int{1} }),
			rows:    disaggOK[:strings.Index(disaggOK, "2 ")],
			reasons: []string{"concurrency 1: Median TTFT (ms) is 180 in 6_bench.log but 205 in concurrency_1/result.json"}},
		{name: "wrong gen server count", dir: "disagg_ok", in: with(func(in *Input) { in.NumGenServers = 1 }),
			partial: true, rows: "2 SERVER_MEDIAN_TTFT 180.00 ms\n2 SERVER_MEDIAN_E2EL 10500.00 ms\n4 SERVER_MEDIAN_TTFT 191.30 ms\n4 SERVER_MEDIAN_E2EL 10623.40 ms\n",
			reasons: []string{"concurrency 1: no result block between 'Benchmarking with concurrency 1'",
				"concurrency 2: concurrency_2/result.json/benchmark-20261127.json is for concurrency 4 but the log's block is for 2"},
			warnings: []string{"concurrency 8 is not in the concurrency list [1 2 4] (times 1 gen servers)"}},
		{name: "printed value outside the list is not taken for another concurrency", dir: "disagg_ok", in: with(func(in *Input) { in.Concurrencies = []int{2, 4} }),
			valid: true, rows: "2 SERVER_MEDIAN_TTFT 191.30 ms\n2 SERVER_MEDIAN_E2EL 10623.40 ms\n4 SERVER_MEDIAN_TTFT 202.60 ms\n4 SERVER_MEDIAN_E2EL 10746.80 ms\n",
			warnings: []string{"concurrency 2 is not in the concurrency list [2 4] (times 2 gen servers)"}},
		{name: "wideep twelve metrics", dir: "wideep_ok", in: Input{TestType: "wideep", Category: "perf", Concurrencies: []int{16, 32}, NumGenServers: 1}, valid: true,
			rows: "16 SERVER_MEAN_TTFT 245.96 ms\n16 SERVER_MEDIAN_TTFT 236.50 ms\n16 SERVER_P99_TTFT 449.35 ms\n16 SERVER_MEAN_TPOT 13.57 ms\n16 SERVER_MEDIAN_TPOT 13.05 ms\n16 SERVER_P99_TPOT 24.80 ms\n16 SERVER_MEAN_ITL 13.42 ms\n16 SERVER_MEDIAN_ITL 12.90 ms\n16 SERVER_P99_ITL 24.51 ms\n16 SERVER_MEAN_E2EL 11561.68 ms\n16 SERVER_MEDIAN_E2EL 11117.00 ms\n16 SERVER_P99_E2EL 21122.30 ms\n32 SERVER_MEAN_TTFT 257.71 ms\n32 SERVER_MEDIAN_TTFT 247.80 ms\n32 SERVER_P99_TTFT 470.82 ms\n32 SERVER_MEAN_TPOT 14.31 ms\n32 SERVER_MEDIAN_TPOT 13.76 ms\n32 SERVER_P99_TPOT 26.14 ms\n32 SERVER_MEAN_ITL 14.14 ms\n32 SERVER_MEDIAN_ITL 13.60 ms\n32 SERVER_P99_ITL 25.84 ms\n32 SERVER_MEAN_E2EL 11690.02 ms\n32 SERVER_MEDIAN_E2EL 11240.40 ms\n32 SERVER_P99_E2EL 21356.76 ms\n"},
		{name: "custom pattern", dir: "custom", valid: true,
			in: with(func(in *Input) {
				in.Custom = &testspec.MetricsSpec{LogFile: "custom_*.log", MetricNames: []string{"OUTPUT_TPUT", "MEDIAN_TTFT"}, ExtractorPattern: `
					Output\ token\ throughput\ \(tok/s\):\s+([\d.]+)   # throughput
					(?:.*\n)*?
					Median\ TTFT\ \(ms\):\s+([\d.]+)
					(?:.*\n)*?
					.*concurrency=(\d+)\ finished`}
			}),
			rows: "1 OUTPUT_TPUT 1000.50 \n1 MEDIAN_TTFT 200.25 \n2 OUTPUT_TPUT 1100.50 \n2 MEDIAN_TTFT 201.25 \n4 OUTPUT_TPUT 1200.50 \n4 MEDIAN_TTFT 202.25 \n"},
		{name: "custom pattern with too few names", dir: "custom",
			in: with(func(in *Input) {
				in.Custom = &testspec.MetricsSpec{LogFile: "custom_*.log", MetricNames: []string{"A"}, ExtractorPattern: `(\d+)\ (\d+)\ (\d+)`}
			}),
			reasons: []string{"has 3 groups but metric_names has 1 names"}},
		{name: "unknown category", dir: "disagg_ok", in: with(func(in *Input) { in.Category = "soak" }), reasons: []string{`unknown category "soak"`}},
		{name: "no client log", dir: "accuracy_gsm8k", in: disagg, reasons: []string{"client log:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Judge(filepath.Join("testdata", "jobs", tt.dir), tt.in)
			if res.Valid != tt.valid || res.Partial != tt.partial {
				t.Errorf("valid=%v partial=%v, want %v %v; reasons:\n%s", res.Valid, res.Partial, tt.valid, tt.partial, strings.Join(res.Reasons, "\n"))
			}
			if res.Valid != (len(res.Reasons) == 0) {
				t.Errorf("valid=%v with %d reasons", res.Valid, len(res.Reasons))
			}
			if got := perfString(res.Perf); got != tt.rows {
				t.Errorf("rows:\n%s\nwant:\n%s", got, tt.rows)
			}
			all := strings.Join(res.Reasons, "\n")
			for _, want := range tt.reasons {
				if !strings.Contains(all, want) {
					t.Errorf("no reason mentions %q; reasons:\n%s", want, all)
				}
			}
			if tt.valid && len(res.Reasons) > 0 {
				t.Errorf("unexpected reasons:\n%s", all)
			}
			warns := strings.Join(res.Warnings, "\n")
			for _, want := range tt.warnings {
				if !strings.Contains(warns, want) {
					t.Errorf("no warning mentions %q; warnings:\n%s", want, warns)
				}
			}
		})
	}
}

func TestJudgeSingleFile(t *testing.T) {
	res := Judge(filepath.Join("testdata", "jobs", "disagg_ok", "6_bench.log"), Input{TestType: "disagg", Category: "perf"})
	if !res.Valid || len(res.Perf) != 6 || res.Perf[0].Concurrency != 2 {
		t.Fatalf("valid=%v rows=%v reasons=%v", res.Valid, res.Perf, res.Reasons)
	}
}

func TestJudgeBlocksKeepWarmups(t *testing.T) {
	res := Judge(filepath.Join("testdata", "jobs", "disagg_ok"), Input{TestType: "disagg", Category: "perf", Concurrencies: []int{1, 2, 4}, NumGenServers: 2})
	// One warmup before the first concurrency, then a warmup and a result per concurrency.
	if len(res.Blocks) != 7 {
		t.Fatalf("got %d blocks, want 7", len(res.Blocks))
	}
	warm := 0
	for _, b := range res.Blocks {
		if b.Warmup {
			warm++
			if b.Has(MedianE2EL) {
				t.Errorf("warmup block at line %d has E2EL", b.Line)
			}
			continue
		}
		if !b.Complete() || !b.Done || b.LogConcurrency != 2*b.Concurrency || b.Prompts != 10*b.LogConcurrency {
			t.Errorf("result block %+v", b)
		}
	}
	if warm != 4 {
		t.Errorf("got %d warmups, want 4", warm)
	}
}

func TestJudgeAccuracy(t *testing.T) {
	gsm := func(filter string, expected float64) Dataset {
		d := DatasetDefaults("gsm8k")
		d.Filter, d.Expected = filter, expected
		return d
	}
	tests := []struct {
		name    string
		dir     string
		ds      []Dataset
		valid   bool
		rows    string // dataset filter run value threshold passed
		reasons []string
	}{
		{name: "two runs both pass", dir: "accuracy_gsm8k", ds: []Dataset{gsm("flexible-extract", 0.9454)}, valid: true,
			rows: "gsm8k flexible-extract 1 0.9462 0.9134 true\ngsm8k flexible-extract 2 0.9401 0.9134 true\n"},
		{name: "every filter when none is set", dir: "accuracy_gsm8k", ds: []Dataset{gsm("", 0.9454)}, valid: true,
			rows: "gsm8k flexible-extract 1 0.9462 0.9134 true\ngsm8k strict-match 1 0.9386 0.9134 true\n" +
				"gsm8k flexible-extract 2 0.9401 0.9134 true\ngsm8k strict-match 2 0.9310 0.9134 true\n"},
		{name: "second run fails", dir: "accuracy_fail", ds: []Dataset{gsm("flexible-extract", 0.9454)},
			rows:    "gsm8k flexible-extract 1 0.9462 0.9134 true\ngsm8k flexible-extract 2 0.9012 0.9134 false\n",
			reasons: []string{"gsm8k flexible-extract (7_accuracy_eval_gsm8k.log run 2, line 10): exact_match 0.9012 < threshold 0.9134 (expected 0.9454"}},
		{name: "filter not printed", dir: "accuracy_gsm8k", ds: []Dataset{gsm("regex", 0.9454)},
			reasons: []string{`gsm8k: filter "regex" not in the lm_eval tables (found flexible-extract, strict-match)`}},
		{name: "dataset not printed", dir: "accuracy_gsm8k", ds: []Dataset{{Name: "aime25", Expected: 0.5, Alpha: 0.05, Sigma: 50, NumSamples: 30, HigherIsBetter: true}},
			reasons: []string{"aime25: no exact_match or acc row"}},
		{name: "percent expected refused", dir: "accuracy_gsm8k", ds: []Dataset{gsm("flexible-extract", 94.54)},
			reasons: []string{"expected_value 94.54 must be a fraction"}},
		{name: "fraction sigma refused", dir: "accuracy_gsm8k", ds: []Dataset{func() Dataset { d := gsm("", 0.9454); d.Sigma = 0.5; return d }()},
			reasons: []string{"sigma 0.5 must be in percentage points"}},
		{name: "mmlu groups and acc", dir: "accuracy_mmlu", ds: []Dataset{func() Dataset { d := DatasetDefaults("mmlu"); d.Expected = 0.87; return d }()}, valid: true,
			rows: "mmlu none 1 0.8712 0.8518 true\n"},
		{name: "no datasets: values without verdicts", dir: "accuracy_gsm8k", valid: true,
			rows: "gsm8k flexible-extract 1 0.9462 NaN false\ngsm8k strict-match 1 0.9386 NaN false\n" +
				"gsm8k flexible-extract 2 0.9401 NaN false\ngsm8k strict-match 2 0.9310 NaN false\n"},
		{name: "no accuracy log", dir: "disagg_ok", ds: []Dataset{gsm("", 0.9454)}, reasons: []string{"no accuracy log 7_accuracy_eval_*.log"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Judge(filepath.Join("testdata", "jobs", tt.dir), Input{TestType: "disagg", Category: "accuracy", Datasets: tt.ds})
			if res.Valid != tt.valid {
				t.Errorf("valid=%v, want %v; reasons:\n%s", res.Valid, tt.valid, strings.Join(res.Reasons, "\n"))
			}
			var b strings.Builder
			for _, r := range res.Accuracy {
				fmt.Fprintf(&b, "%s %s %d %.4f %.4f %v\n", r.Dataset, r.Filter, r.Run, r.Value, r.Threshold, r.Passed)
			}
			if b.String() != tt.rows {
				t.Errorf("rows:\n%s\nwant:\n%s", b.String(), tt.rows)
			}
			all := strings.Join(res.Reasons, "\n")
			for _, want := range tt.reasons {
				if !strings.Contains(all, want) {
					t.Errorf("no reason mentions %q; reasons:\n%s", want, all)
				}
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	d := DatasetDefaults("gsm8k")
	d.Expected = 0.9454
	// scale = sqrt(2 * 0.5^2 / 1319) = 0.019469; z(0.05) = -1.644854.
	want := 0.9454 - 1.6448536269514722*math.Sqrt(2*0.25/1319)
	if got := d.Threshold(); math.Abs(got-want) > 1e-12 {
		t.Errorf("threshold %v, want %v", got, want)
	}
	if !d.Pass(0.9134) || d.Pass(0.9133) {
		t.Errorf("pass boundary wrong around %v", want)
	}
	d.HigherIsBetter = false
	if got := d.Threshold(); math.Abs(got-(0.9454+(0.9454-want))) > 1e-12 {
		t.Errorf("lower-is-better threshold %v", got)
	}
	if !d.Pass(0.97) || d.Pass(0.98) {
		t.Error("lower-is-better verdicts wrong")
	}
	for _, name := range []string{"gsm8k", "mmlu", "humaneval", "gpqa_diamond", "aime25", "cnn_dailymail", "other"} {
		dd := DatasetDefaults(name)
		dd.Expected = 0.5
		if err := dd.Validate(); err != nil {
			t.Errorf("defaults of %s do not validate: %v", name, err)
		}
	}
	if d := DatasetDefaults("humaneval"); d.Alpha != 0.002 || d.Sigma != 15.08 || d.NumSamples != 164 {
		t.Errorf("humaneval defaults %+v", d)
	}
	if d := DatasetDefaults("other"); d.Alpha != 0.05 || d.Beta != 0.2 || d.Sigma != 50 || d.NumSamples != 1000 {
		t.Errorf("fallback defaults %+v", d)
	}
}

func TestNormInv(t *testing.T) {
	for _, p := range []float64{1e-300, 1e-12, 1e-6, 0.001, 0.002, 0.01, 0.02425, 0.05, 0.1, 0.3, 0.5, 0.7, 0.95, 0.975, 0.999, 1 - 1e-9} {
		// The CDF at the result must give p back.
		x := NormInv(p)
		var back float64
		if p < 0.5 {
			back = 0.5 * math.Erfc(-x/math.Sqrt2)
			if math.Abs(back-p) > 1e-13*p {
				t.Errorf("Phi(NormInv(%g)) = %.17g", p, back)
			}
		} else {
			back = 0.5 * math.Erfc(x/math.Sqrt2) // upper tail, 1-p
			if math.Abs(back-(1-p)) > 1e-12*(1-p) {
				t.Errorf("1-Phi(NormInv(%g)) = %.17g, want %.17g", p, back, 1-p)
			}
		}
	}
	if NormInv(0.05) > -1.6448536269 || NormInv(0.05) < -1.6448536270 {
		t.Errorf("NormInv(0.05) = %.12f", NormInv(0.05))
	}
	if !math.IsInf(NormInv(0), -1) || !math.IsInf(NormInv(1), 1) || !math.IsNaN(NormInv(-0.1)) || !math.IsNaN(NormInv(math.NaN())) {
		t.Error("edge values wrong")
	}
}

// The per-concurrency slices of the workers' iteration logs become recorded (never
// judged) rows: iterations, median step time and mean scheduled requests per point.
func TestJudgeIterationSlices(t *testing.T) {
	dir := t.TempDir()
	log := "Benchmarking with concurrency 8 ... 16 prompts\n" + blk(16, 16, 0, 10, 100) + "Benchmark with concurrency 8 done\n"
	if err := os.WriteFile(filepath.Join(dir, ClientLog), []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "concurrency_4"), 0o755)
	line := func(ms string, n int) string {
		return fmt.Sprintf("iter = 1, global_rank = 0, rank = 0, currank_total_requests = %d/%d, host_step_time = %sms, prev_device_step_time = 1.0ms, timestamp = x, num_scheduled_requests: %d, states = {'num_ctx_requests': 0, 'num_ctx_tokens': 0, 'num_generation_tokens': %d}\n", n, n, ms, n, n)
	}
	os.WriteFile(filepath.Join(dir, "concurrency_4", "gen_only_0.txt"), []byte(line("10.0", 4)+line("30.0", 4)), 0o644)
	os.WriteFile(filepath.Join(dir, "concurrency_4", "gen_only_1.txt"), []byte(line("20.0", 2)), 0o644)
	r := Judge(dir, Input{TestType: "disagg", Category: "perf", Concurrencies: []int{4}, NumGenServers: 2, JobState: "COMPLETED"})
	if !r.Valid {
		t.Fatalf("invalid: %v", r.Reasons)
	}
	want := []IterRow{{4, "gen_only_iterations", 3, "count"}, {4, "gen_only_median_step_time", 20, "ms"}, {4, "gen_only_mean_scheduled_requests", 10.0 / 3, "count"}}
	if fmt.Sprint(r.Iterations) != fmt.Sprint(want) {
		t.Errorf("iterations %v, want %v", r.Iterations, want)
	}
}

// A long log's blocks are written once, into a slice sized from the log's density, not
// gathered in chunks and joined (twice the memory, and every fresh page a fault).
func TestBlockStoreWritesLongLogOnce(t *testing.T) {
	const n, bytesPer = 60000, 2000
	var read int64
	s := blockStore{size: n * bytesPer, read: func() int64 { return read }}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		read = min(int64(i+1)*bytesPer+readBuffer, n*bytesPer)
		s.add(Block{Line: i + 1})
	}
	got := s.join(nil)
	runtime.ReadMemStats(&after)
	for i := range got {
		if got[i].Line != i+1 {
			t.Fatalf("block %d is line %d", i, got[i].Line)
		}
	}
	if len(got) != n {
		t.Fatalf("got %d blocks, want %d", len(got), n)
	}
	blocks := uint64(n) * uint64(unsafe.Sizeof(Block{}))
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > blocks*3/2 {
		t.Errorf("allocated %d bytes for %d bytes of blocks", alloc, blocks)
	}
}

// A log denser than its start outgrows the sized slice and goes on in chunks: every block
// is kept, in order; so is every block of a file whose size is unknown or that grew.
func TestBlockStoreDenserTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{{"denser tail", 3000*2000 + 40000*100}, {"size unknown", 0}, {"grew", 1000}} {
		var read int64
		s := blockStore{size: tc.size, read: func() int64 { return read }}
		n := 0
		for i := range 43000 {
			if i < 3000 {
				read += 2000
			} else {
				read += 100
			}
			s.add(Block{Line: i + 1})
			n++
		}
		got := s.join([]Block{{Line: 0}})
		if len(got) != n+1 {
			t.Fatalf("%s: got %d blocks, want %d", tc.name, len(got), n+1)
		}
		for i := range got {
			if got[i].Line != i {
				t.Fatalf("%s: block %d is line %d", tc.name, i, got[i].Line)
			}
		}
	}
}

// A log that runs its concurrencies over and over gets one warning per repeat, in the
// words it always had; they are written into one buffer, so the allocations do not grow
// with the repeats.
func TestJudgeRepeatWarnings(t *testing.T) {
	const runs = 2000
	one := "Benchmarking with concurrency 1 ... 10 prompts\n" + blk(10, 10, 0, 1.5, 2.5) + "Benchmark with concurrency 1 done\n"
	log := strings.Repeat(one, runs)
	path := filepath.Join(t.TempDir(), ClientLog)
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	bs, err := ReadBench(strings.NewReader(log))
	if err != nil || len(bs) != runs {
		t.Fatalf("%d blocks, %v", len(bs), err)
	}
	var res Result
	allocs := testing.AllocsPerRun(1, func() { res = Judge(path, Input{TestType: "disagg", Category: "perf"}) })
	if len(res.Warnings) != runs-1 {
		t.Fatalf("%d warnings, want %d", len(res.Warnings), runs-1)
	}
	for i, w := range res.Warnings {
		want := fmt.Sprintf("%s: concurrency %d ran more than once (lines %d and %d); the later result is used", ClientLog, 1, bs[i].Line, bs[i+1].Line)
		if w != want {
			t.Fatalf("warning %d: %q, want %q", i, w, want)
		}
	}
	if allocs > runs/4 {
		t.Errorf("%v allocations for %d repeats", allocs, runs)
	}
	t.Logf("%v allocations", allocs)
}

// A log whose blocks stop early (a long tail of server output) keeps no room for the
// blocks its start promised.
func TestBlockStoreSparseTail(t *testing.T) {
	var read int64
	s := blockStore{size: 3000 * 2000 * 3, read: func() int64 { return read }}
	for i := range 3000 {
		read += 2000
		s.add(Block{Line: i + 1})
	}
	got := s.join(nil)
	if len(got) != 3000 || got[2999].Line != 3000 {
		t.Fatalf("got %d blocks", len(got))
	}
	if cap(got) > len(got)*4/3 {
		t.Errorf("%d blocks kept in room for %d", len(got), cap(got))
	}
}
