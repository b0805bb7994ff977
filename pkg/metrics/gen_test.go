package metrics

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The logs under testdata/jobs are written by the code in this file, laid out as the
// benchmark client (benchmark_serving.py, "{:<40} {:<10.2f}"), run_benchmark.sh and
// lm_eval write them. go test -run TestGenerateTestdata -update rewrites them.
var update = flag.Bool("update", false, "rewrite testdata/jobs from the generator")

// clientRun is one benchmark_serving result block.
type clientRun struct {
	total, failed         int
	duration              float64
	inTok, outTok         int
	reqTput, outTput      float64
	totTput, userTput     float64
	lat                   [4][4]float64 // TTFT, TPOT, ITL, E2EL x mean, median, std, p99
	noE2EL                bool          // percentile metrics without e2el, as a warmup run
	noTotal               bool          // the vLLM layout without Total/Failed requests
	cutAfterSection       int           // >0: stop writing after this many latency sections
	colour                bool          // wrap labels and values in ANSI colours
	overrideSuccessful    int           // >0: print this instead of total-failed
	overrideGeneratedZero bool
}

func center(s string, n int, c byte) string {
	if len(s) >= n {
		return s
	}
	pad := n - len(s)
	left := pad / 2
	return strings.Repeat(string(c), left) + s + strings.Repeat(string(c), pad-left)
}

func (r clientRun) block() string {
	var b strings.Builder
	line := func(label string, v any) {
		var val string
		switch x := v.(type) {
		case int:
			val = fmt.Sprintf("%-10d", x)
		case float64:
			val = fmt.Sprintf("%-10.2f", x)
		}
		l := fmt.Sprintf("%-40s", label)
		if r.colour {
			l = "\x1b[1m" + label + "\x1b[0m" + strings.Repeat(" ", 40-len(label))
			val = "\x1b[32m" + val + "\x1b[0m"
		}
		b.WriteString(l + " " + val + "\n")
	}
	b.WriteString(center(" Serving Benchmark Result ", 50, '=') + "\n")
	succ := r.total - r.failed
	if r.overrideSuccessful > 0 {
		succ = r.overrideSuccessful
	}
	if !r.noTotal {
		line("Total requests:", r.total)
	}
	line("Successful requests:", succ)
	if !r.noTotal {
		line("Failed requests:", r.failed)
	}
	line("Benchmark duration (s):", r.duration)
	line("Total input tokens:", r.inTok)
	out := r.outTok
	if r.overrideGeneratedZero {
		out = 0
	}
	line("Total generated tokens:", out)
	line("Request throughput (req/s):", r.reqTput)
	line("Output token throughput (tok/s):", r.outTput)
	line("Total Token throughput (tok/s):", r.totTput)
	line("User throughput (tok/s):", r.userTput)
	sections := []struct{ head, name string }{
		{"Time to First Token", "TTFT"},
		{"Time per Output Token (excl. 1st token)", "TPOT"},
		{"Inter-token Latency", "ITL"},
		{"End-to-end Latency", "E2EL"},
	}
	for i, s := range sections {
		if r.cutAfterSection > 0 && i == r.cutAfterSection {
			return b.String()
		}
		if i == 3 && r.noE2EL {
			break
		}
		b.WriteString(center(s.head, 50, '-') + "\n")
		line("Mean "+s.name+" (ms):", r.lat[i][0])
		line("Median "+s.name+" (ms):", r.lat[i][1])
		line("Std Dev "+s.name+" (ms):", r.lat[i][2])
		line("P99 "+s.name+" (ms):", r.lat[i][3])
	}
	b.WriteString(strings.Repeat("=", 50) + "\n")
	return b.String()
}

// json returns the result.json benchmark_serving writes for the run.
func (r clientRun) json(conc int) []byte {
	m := map[string]any{
		"max_concurrency": conc,
		"num_prompts":     r.total, "completed": r.total - r.failed, "duration": r.duration,
		"total_input_tokens": r.inTok, "total_output_tokens": r.outTok,
		"request_throughput": r.reqTput, "output_throughput": r.outTput,
		"total_token_throughput": r.totTput,
	}
	for i, n := range []string{"ttft", "tpot", "itl", "e2el"} {
		for k, s := range []string{"mean", "median", "std", "p99"} {
			m[s+"_"+n+"_ms"] = r.lat[i][k]
		}
	}
	data, _ := json.MarshalIndent(m, "", "  ")
	return data
}

// makeRun derives a plausible run for a printed concurrency.
func makeRun(conc, prompts int, seed float64) clientRun {
	r := clientRun{total: prompts, duration: 40 + seed*3.17, inTok: prompts * 1024, outTok: prompts * 1024}
	r.reqTput = float64(prompts) / r.duration
	r.outTput = float64(r.outTok) / r.duration
	r.totTput = float64(r.inTok+r.outTok) / r.duration
	r.userTput = r.outTput / float64(conc)
	base := []float64{180 + 11.3*seed, 9.5 + 0.71*seed, 9.4 + 0.7*seed, 10500 + 123.4*seed}
	for i, v := range base {
		r.lat[i] = [4]float64{v * 1.04, v, v * 0.21, v * 1.9}
	}
	return r
}

// warmupRun is the short run a client makes before measuring: no E2EL section.
func warmupRun(conc int) clientRun {
	r := makeRun(conc, conc, 0.5)
	r.lat[0] = [4]float64{7777.77, 7766.66, 12.34, 7999.99} // far from any real value
	r.noE2EL = true
	return r
}

const progress = "\r  0%%|          | 0/%d [00:00<?, ?it/s]\r 50%%|█████     | %d/%d [00:05<00:05,  7.91it/s]\r100%%|██████████| %d/%d [00:10<00:00,  7.95it/s]\n"

func serverNoise(b *strings.Builder, n int) {
	for i := range n {
		fmt.Fprintf(b, "[11/27/2026-01:%02d:%02d] [TRT-LLM] [I] iter = %d, num_active_requests = %d, kv cache utilization: 0.%02d\n", i%60, (i*7)%60, 1000+i, i%32, i%100)
	}
}

// clientLog writes a 6_bench.log for printed concurrencies, each with its run.
type span struct {
	conc, prompts int
	run           clientRun
	warmup        bool // a warmup block inside the span before the run
	noDone        bool // the done line is missing (job killed)
	stop          bool // nothing after this span's block (truncated log)
}

func clientLog(spans []span, crlf bool) string {
	var b strings.Builder
	b.WriteString("Namespace(backend='openai', base_url=None, host='gb200-0017', port=8333, endpoint='/v1/completions', dataset_name='random', random_input_len=1024, random_output_len=1024, percentile_metrics='ttft,tpot,itl,e2el')\n")
	b.WriteString("Starting initial single prompt test run...\nInitial test run completed. Starting main benchmark run...\n")
	// A warmup before any concurrency, as the seed's logs have.
	b.WriteString(warmupRun(1).block())
	for _, s := range spans {
		fmt.Fprintf(&b, "Benchmarking with concurrency %d ... %d prompts\n", s.conc, s.prompts)
		serverNoise(&b, 3)
		if s.warmup {
			b.WriteString("Warmup run with concurrency " + fmt.Sprint(s.conc) + "\n")
			b.WriteString(warmupRun(s.conc).block())
		}
		fmt.Fprintf(&b, "Traffic request rate: inf\nBurstiness factor: 1.0 (Poisson process)\nMaximum request concurrency: %d\n", s.conc)
		fmt.Fprintf(&b, progress, s.prompts, s.prompts/2, s.prompts, s.prompts, s.prompts)
		b.WriteString(s.run.block())
		if s.stop {
			break
		}
		fmt.Fprintf(&b, "Result saved to /logs/concurrency_x/result.json\n")
		if !s.noDone {
			fmt.Fprintf(&b, "Benchmark with concurrency %d done\n", s.conc)
		}
	}
	out := b.String()
	if crlf {
		out = strings.ReplaceAll(out, "\n", "\r\n")
	}
	return out
}

// lmEvalTable renders one lm_eval results table.
func lmEvalTable(header string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("local-completions (model=/models/DeepSeek-R1,base_url=http://gb200-0017:8333/v1/completions,tokenizer_backend=huggingface), gen_kwargs: (None), limit: None, num_fewshot: None, batch_size: 1\n")
	b.WriteString(header + "\n")
	cols := strings.Count(header, "|") - 1
	seps := make([]string, cols)
	for i := range seps {
		seps[i] = "---"
	}
	b.WriteString("|" + strings.Join(seps, "|") + "|\n")
	for _, r := range rows {
		b.WriteString("|" + strings.Join(r, "|") + "|\n")
	}
	b.WriteString("\n")
	return b.String()
}

const tasksHeader = "|Tasks|Version|     Filter     |n-shot|  Metric   |   |Value |   |Stderr|"

func gsm8kTable(flex, strict string) string {
	return lmEvalTable(tasksHeader, [][]string{
		{"gsm8k", "      3", "flexible-extract", "     5", "exact_match", "↑  ", flex, "±  ", "0.0063"},
		{"     ", "       ", "strict-match    ", "     5", "exact_match", "↑  ", strict, "±  ", "0.0066"},
	})
}

type genFile struct {
	path string
	data []byte
}

// testJobs are the generated job log folders.
func testJobs() []genFile {
	var files []genFile
	add := func(p string, s string) { files = append(files, genFile{p, []byte(s)}) }
	addB := func(p string, b []byte) { files = append(files, genFile{p, b}) }

	// disagg_ok: concurrency_list 1 2 4, 2 gen servers, multi_round 10: printed 2 4 8.
	var okSpans []span
	for i, c := range []int{1, 2, 4} {
		okSpans = append(okSpans, span{conc: 2 * c, prompts: 20 * c, run: makeRun(2*c, 20*c, float64(i)), warmup: true})
	}
	add("disagg_ok/6_bench.log", clientLog(okSpans, false))
	addB("disagg_ok/concurrency_1/result.json", okSpans[0].run.json(2))
	addB("disagg_ok/concurrency_2/result.json/benchmark-20261127.json", okSpans[1].run.json(4))

	// disagg_json_disagree: result.json says something else.
	add("disagg_json_disagree/6_bench.log", clientLog(okSpans[:1], false))
	bad := okSpans[0].run
	bad.lat[0][1] += 25
	addB("disagg_json_disagree/concurrency_1/result.json", bad.json(2))

	// disagg_failed: concurrency 2 lost 3 requests.
	failed := append([]span(nil), okSpans...)
	failed[1].run.failed = 3
	add("disagg_failed/6_bench.log", clientLog(failed, false))

	// disagg_zero_tokens: concurrency 1 generated nothing.
	zero := append([]span(nil), okSpans...)
	zero[0].run.overrideGeneratedZero = true
	add("disagg_zero_tokens/6_bench.log", clientLog(zero, false))

	// disagg_timeout: the job hit its time limit inside concurrency 4's block.
	cut := append([]span(nil), okSpans...)
	cut[2].run.cutAfterSection = 2
	cut[2].stop = true
	add("disagg_timeout/6_bench.log", clientLog(cut, false)[:len(clientLog(cut, false))-17])

	// disagg_crlf_colour: CRLF line ends, ANSI colours, vLLM layout without totals.
	var col []span
	for i, c := range []int{1, 2, 4} {
		r := makeRun(2*c, 20*c, float64(i))
		r.colour = true
		r.noTotal = true
		col = append(col, span{conc: 2 * c, prompts: 20 * c, run: r, warmup: i == 0})
	}
	add("disagg_crlf_colour/6_bench.log", clientLog(col, true))

	// disagg_missing: concurrency 8 never ran although the job completed.
	add("disagg_missing/6_bench.log", clientLog(okSpans, false))

	// wideep_ok: one gen server, concurrency_list 16 32.
	var wide []span
	for i, c := range []int{16, 32} {
		wide = append(wide, span{conc: c, prompts: c * 10, run: makeRun(c, c*10, float64(i+5))})
	}
	add("wideep_ok/6_bench.log", clientLog(wide, false))

	// custom: a custom metrics log read with the test's own pattern.
	var cb strings.Builder
	for i, c := range []int{2, 4, 8} {
		fmt.Fprintf(&cb, "[bench] start concurrency=%d\n", c)
		serverNoise(&cb, 2)
		fmt.Fprintf(&cb, "Output token throughput (tok/s): %.2f\n", 1000.5+float64(i)*100)
		fmt.Fprintf(&cb, "Median TTFT (ms): %.2f\n", 200.25+float64(i))
		fmt.Fprintf(&cb, "[bench] concurrency=%d finished\n", c)
	}
	add("custom/custom_bench.log", cb.String())
	add("custom/6_bench.log", clientLog(okSpans, false))

	// accuracy_gsm8k: two lm_eval runs in one file.
	add("accuracy_gsm8k/7_accuracy_eval_gsm8k.log",
		"2026-11-27:01:20:00 INFO [__main__:440] Selected Tasks: ['gsm8k']\n"+
			gsm8kTable("0.9462", "0.9386")+
			"2026-11-27:01:40:00 INFO [__main__:440] Selected Tasks: ['gsm8k']\n"+
			gsm8kTable("0.9401", "0.9310"))
	// accuracy_fail: the second run falls below the threshold.
	add("accuracy_fail/7_accuracy_eval_gsm8k.log", gsm8kTable("0.9462", "0.9386")+gsm8kTable("0.9012", "0.8999"))
	// accuracy_mmlu: a Groups table after the Tasks table, acc metric, old layout
	// without the direction column.
	add("accuracy_mmlu/7_accuracy_eval_mmlu.log",
		lmEvalTable("|      Tasks       |Version|Filter|n-shot|Metric|Value |   |Stderr|", [][]string{
			{"mmlu              ", "      2", "none  ", "      ", "acc   ", "0.8712", "±  ", "0.0027"},
			{" - humanities     ", "      2", "none  ", "      ", "acc   ", "0.8101", "±  ", "0.0055"},
			{"  - formal_logic  ", "      1", "none  ", "     0", "acc   ", "0.7063", "±  ", "0.0407"},
		})+lmEvalTable("|      Groups      |Version|Filter|n-shot|Metric|Value |   |Stderr|", [][]string{
			{"mmlu              ", "      2", "none  ", "      ", "acc   ", "0.8712", "±  ", "0.0027"},
		}))
	return files
}

func TestGenerateTestdata(t *testing.T) {
	for _, f := range testJobs() {
		path := filepath.Join("testdata", "jobs", f.path)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestGenerateTestdata -update)", err)
		}
		if string(got) != string(f.data) {
			t.Errorf("%s differs from the generator (run go test -run TestGenerateTestdata -update)", path)
		}
	}
}
