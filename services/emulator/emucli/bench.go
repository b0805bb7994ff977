package emucli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/benchclient"
)

// listFlag collects a flag given several times or with several words.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// runBench is the Go benchmark client's command line: benchmark_serving's options as the job script
// passes them. It returns the exit code.
func runBench(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "the model name sent with each request")
	backend := fs.String("backend", "openai", "openai (completions) or openai-chat (chat completions); vllm, sglang, trtllm, dynamo are openai")
	host := fs.String("host", "127.0.0.1", "server host")
	port := fs.Int("port", 8000, "server port")
	baseURL := fs.String("base-url", "", "server URL (instead of --host and --port)")
	endpoint := fs.String("endpoint", "", "API path (default /v1/completions, /v1/chat/completions for openai-chat)")
	dataset := fs.String("dataset-name", "random", "random or trtllm_custom")
	datasetPath := fs.String("dataset-path", "", "the trtllm_custom JSON lines file")
	inLen := fs.Int("random-input-len", 1024, "input tokens a prompt (random)")
	outLen := fs.Int("random-output-len", 128, "output tokens a request (random)")
	ratio := fs.Float64("random-range-ratio", 0, "draw lengths from [L(1-r), L(1+r)]")
	fs.Bool("random-ids", false, "accepted for compatibility: prompts are always words")
	numPrompts := fs.Int("num-prompts", 1000, "requests to send")
	maxConc := fs.Int("max-concurrency", 0, "requests in flight at most (0: all)")
	rate := fs.String("request-rate", "inf", "only inf: send as fast as --max-concurrency allows")
	fs.Bool("trust-remote-code", false, "accepted for compatibility")
	fs.String("tokenizer", "", "accepted for compatibility")
	ignoreEOS := fs.Bool("ignore-eos", false, "ask the server to ignore end-of-sequence (ignore_eos)")
	noTest := fs.Bool("no-test-input", false, "skip the initial single-prompt test run")
	warmup := fs.Int("num-warmup", 0, "warm-up requests at full concurrency before the run, not counted")
	nonStreaming := fs.Bool("non-streaming", false, "ask for whole responses instead of a stream")
	save := fs.Bool("save-result", false, "write the result JSON")
	resultDir := fs.String("result-dir", ".", "folder of the result JSON")
	resultFile := fs.String("result-filename", "", "name of the result JSON")
	pctMetrics := fs.String("percentile-metrics", "ttft,tpot,itl", "metrics to report: ttft,tpot,itl,e2el")
	metricPct := fs.String("metric-percentiles", "99", "percentiles to report, comma separated")
	var goodputArgs listFlag
	fs.Var(&goodputArgs, "goodput", "SLOs as METRIC:MS words (ttft, tpot, e2el)")
	seed := fs.Uint64("seed", 0, "random dataset seed")
	fs.Bool("disable-tqdm", false, "accepted for compatibility")
	chatTemplate := fs.Bool("use-chat-template", false, "send each prompt as a chat message, so the server applies the model's chat template (the nv_sa client's option)")
	if err := fs.Parse(normalizeArgs(args)); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if msg := checkCounts(*rate, *numPrompts, *maxConc, *warmup); msg != "" {
		fmt.Fprintln(stderr, "bench: "+msg)
		return 2
	}
	selected, pcts, msg := percentiles(*pctMetrics, *metricPct)
	if msg != "" {
		fmt.Fprintln(stderr, "bench: "+msg)
		return 2
	}
	goodput, err := benchclient.ParseGoodput(goodputArgs)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	cfg := benchclient.Config{Model: *model, Stream: !*nonStreaming, IgnoreEOS: *ignoreEOS, MaxConcurrency: *maxConc, Warmup: *warmup}
	chat, ok := chatBackend(*backend)
	if !ok {
		fmt.Fprintf(stderr, "bench: --backend %q: want openai or openai-chat\n", *backend)
		return 2
	}
	cfg.Chat = chat || *chatTemplate
	ep := *endpoint
	if ep == "" {
		ep = map[bool]string{false: "/v1/completions", true: "/v1/chat/completions"}[cfg.Chat]
	}
	cfg.URL = benchclient.URL(*baseURL, *host, *port, ep)
	items, code, err := benchItems(*dataset, *datasetPath, *numPrompts, *inLen, *outLen, *ratio, *seed)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return code
	}

	job := &benchJob{cfg: cfg, items: items, dataset: *dataset, noTest: *noTest, warmup: *warmup, maxConc: *maxConc,
		pcts: pcts, goodput: goodput, selected: selected, save: *save, backend: *backend, model: *model,
		resultDir: *resultDir, resultFile: *resultFile}
	return job.run(stdout, stderr)
}

// benchJob is one run of the client, its options checked.
type benchJob struct {
	cfg                   benchclient.Config
	items                 []benchclient.Item
	dataset               string
	noTest, save          bool
	warmup, maxConc       int
	pcts                  []float64
	goodput               benchclient.Goodput
	selected              []string
	backend, model        string
	resultDir, resultFile string
}

// run sends the requests, prints the result block as benchmark_serving does and saves
// the result JSON when asked; it returns the exit code.
func (b *benchJob) run(stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := benchclient.New(max(b.maxConc, 64))
	fmt.Fprintf(stdout, "disaggbench benchmark client: %s, %d prompts, %s dataset\n", b.cfg.URL, len(b.items), b.dataset)
	if b.noTest {
		fmt.Fprintln(stdout, "Skipping initial test run. Starting main benchmark run...")
	} else {
		fmt.Fprintln(stdout, "Starting initial single prompt test run...")
		if o := c.Send(ctx, b.cfg, b.items[0]); !o.Success {
			fmt.Fprintf(stderr, "bench: initial test run failed: %s\n", o.Error)
			return 1
		}
		fmt.Fprintln(stdout, "Initial test run completed. Starting main benchmark run...")
	}
	if b.warmup > 0 {
		fmt.Fprintf(stdout, "Warming up with %d requests...\n", b.warmup)
	}
	fmt.Fprintln(stdout, "Traffic request rate: inf")
	fmt.Fprintln(stdout, "Burstiness factor: 1.0 (Poisson process)")
	if b.maxConc > 0 {
		fmt.Fprintf(stdout, "Maximum request concurrency: %d\n", b.maxConc)
	} else {
		fmt.Fprintln(stdout, "Maximum request concurrency: None")
	}
	outs, dur := c.Run(ctx, b.cfg, b.items)
	m := benchclient.Compute(outs, dur, b.pcts, b.goodput)
	fmt.Fprintf(stdout, "Total failed requests: %d\n", m.Failed)
	shown := 0
	for _, o := range outs {
		if !o.Success && shown < 5 {
			fmt.Fprintf(stdout, "Failed request: %s\n", o.Error)
			shown++
		}
	}
	m.Print(stdout, b.selected, b.pcts, len(b.goodput) > 0)
	if b.save {
		meta := map[string]any{"date": time.Now().Format("20060102-150405"), "backend": b.backend, "model_id": b.model,
			"num_prompts": len(b.items), "request_rate": "inf", "burstiness": 1.0, "max_concurrency": b.maxConc,
			"client": "disaggbench"}
		name := b.resultFile
		if name == "" {
			name = fmt.Sprintf("%s-inf-concurrency%d-%s.json", b.backend, b.maxConc, time.Now().Format("20060102-150405"))
		}
		data, err := json.MarshalIndent(m.Result(outs, meta, b.selected, b.pcts), "", "  ")
		if err == nil {
			err = os.MkdirAll(b.resultDir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(b.resultDir, name), append(data, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: save result: %v\n", err)
			return 1
		}
	}
	if ctx.Err() != nil {
		return 1
	}
	if m.Completed == 0 {
		fmt.Fprintln(stderr, "bench: no request succeeded")
		return 1
	}
	return 0
}

// normalizeArgs accepts benchmark_serving's habit of "--goodput a:1 b:2" (several
// words after one flag) by joining them into the flag's value.
func normalizeArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		out = append(out, args[i])
		if args[i] == "--goodput" {
			var vals []string
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				vals = append(vals, args[i])
			}
			out = append(out, strings.Join(vals, " "))
		}
	}
	return out
}

// percentiles reads --percentile-metrics and --metric-percentiles; msg says what is wrong.
func percentiles(metricsArg, pctArg string) (selected []string, pcts []float64, msg string) {
	selected = strings.Split(metricsArg, ",")
	for _, s := range selected {
		if !slices.Contains([]string{"ttft", "tpot", "itl", "e2el"}, s) {
			return nil, nil, fmt.Sprintf("--percentile-metrics: unknown metric %q", s)
		}
	}
	for _, s := range strings.Split(pctArg, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || p <= 0 || p >= 100 {
			return nil, nil, fmt.Sprintf("--metric-percentiles: %q is not a percentile in (0, 100)", s)
		}
		pcts = append(pcts, p)
	}
	return selected, pcts, ""
}

// benchItems makes the requests of the random or the trtllm_custom dataset; code is
// the exit code when err is set.
func benchItems(dataset, path string, n, inLen, outLen int, ratio float64, seed uint64) ([]benchclient.Item, int, error) {
	switch dataset {
	case "random":
		return benchclient.RandomDataset(n, inLen, outLen, ratio, seed), 0, nil
	case "trtllm_custom":
		if path == "" {
			return nil, 2, fmt.Errorf("--dataset-name trtllm_custom needs --dataset-path")
		}
		items, err := benchclient.CustomDataset(path, n, outLen)
		if err != nil {
			return nil, 1, err
		}
		return items, 0, nil
	}
	return nil, 2, fmt.Errorf("--dataset-name %q: want random or trtllm_custom", dataset)
}

// chatBackend says whether a --backend talks to chat completions; ok is false for an
// unknown backend.
func chatBackend(backend string) (chat, ok bool) {
	switch backend {
	case "openai", "vllm", "sglang", "trtllm", "dynamo", "lmdeploy":
		return false, true
	case "openai-chat":
		return true, true
	}
	return false, false
}

// checkCounts checks the request rate and the request counts.
func checkCounts(rate string, numPrompts, maxConc, warmup int) string {
	if rate != "inf" {
		return fmt.Sprintf("--request-rate %s: only inf is supported", rate)
	}
	if numPrompts <= 0 || maxConc < 0 || warmup < 0 {
		return "--num-prompts must be positive; --max-concurrency and --num-warmup not negative"
	}
	return ""
}
