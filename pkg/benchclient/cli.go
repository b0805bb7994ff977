package benchclient

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// words of the random dataset: common English words, one token each for most
// tokenizers (with the leading space the prompt puts before each).
var words = strings.Fields(`time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book eye job word
business issue side kind head house service friend father power hour game line end member law car city
community name president team minute idea kid body information back parent face others level office door
health person art war history party result change morning reason research girl guy moment air teacher force education`)

// RandomDataset makes n prompts of inLen words each and output lengths of outLen
// tokens; with ratio r > 0 each length is drawn uniformly from [L(1-r), L(1+r)].
func RandomDataset(n, inLen, outLen int, ratio float64, seed uint64) []Item {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	draw := func(l int) int {
		if ratio <= 0 {
			return l
		}
		lo, hi := int(math.Floor(float64(l)*(1-ratio))), int(math.Ceil(float64(l)*(1+ratio)))
		return max(1, lo+r.IntN(hi-lo+1))
	}
	items := make([]Item, n)
	for i := range items {
		in := draw(inLen)
		var b strings.Builder
		for k := range in {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		items[i] = Item{Prompt: b.String(), InputLen: in, OutputLen: draw(outLen)}
	}
	return items
}

// CustomDataset reads TensorRT-LLM's trtllm_custom JSON lines: each line
// {"input": {"messages": [...] or "prompt": "...", "max_tokens": N}} (or the same
// fields at the top level). A prompt's length is its number of words. n > 0 takes the
// first n lines, cycling when the file has fewer.
func CustomDataset(path string, n, defaultOut int) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var items []Item
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var rec struct {
			Input *customInput `json:"input"`
			customInput
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		in := rec.customInput
		if rec.Input != nil {
			in = *rec.Input
		}
		prompt := in.Prompt
		for _, m := range in.Messages {
			if prompt != "" {
				prompt += "\n"
			}
			prompt += m.Content
		}
		if strings.TrimSpace(prompt) == "" {
			return nil, fmt.Errorf("%s:%d: input: no prompt and no message content", path, line)
		}
		out := in.MaxTokens
		if out <= 0 {
			out = defaultOut
		}
		if out <= 0 {
			return nil, fmt.Errorf("%s:%d: input.max_tokens: missing, and no --random-output-len to fall back on", path, line)
		}
		items = append(items, Item{Prompt: prompt, InputLen: len(strings.Fields(prompt)), OutputLen: out})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no requests", path)
	}
	if n > 0 {
		all := items
		items = make([]Item, n)
		for i := range items {
			items[i] = all[i%len(all)]
		}
	}
	return items, nil
}

type customInput struct {
	Prompt   string `json:"prompt"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens int `json:"max_tokens"`
}

// listFlag collects a flag given several times or with several words.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Main is the client's command line: benchmark_serving's options as the job script
// passes them. It returns the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
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
	if *rate != "inf" {
		fmt.Fprintf(stderr, "bench: --request-rate %s: only inf is supported\n", *rate)
		return 2
	}
	if *numPrompts <= 0 || *maxConc < 0 || *warmup < 0 {
		fmt.Fprintln(stderr, "bench: --num-prompts must be positive; --max-concurrency and --num-warmup not negative")
		return 2
	}
	selected := strings.Split(*pctMetrics, ",")
	for _, s := range selected {
		if !contains([]string{"ttft", "tpot", "itl", "e2el"}, s) {
			fmt.Fprintf(stderr, "bench: --percentile-metrics: unknown metric %q\n", s)
			return 2
		}
	}
	var pcts []float64
	for _, s := range strings.Split(*metricPct, ",") {
		p, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || p <= 0 || p >= 100 {
			fmt.Fprintf(stderr, "bench: --metric-percentiles: %q is not a percentile in (0, 100)\n", s)
			return 2
		}
		pcts = append(pcts, p)
	}
	goodput, err := ParseGoodput(goodputArgs)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	cfg := Config{Model: *model, Stream: !*nonStreaming, IgnoreEOS: *ignoreEOS, MaxConcurrency: *maxConc, Warmup: *warmup}
	switch *backend {
	case "openai", "vllm", "sglang", "trtllm", "dynamo", "lmdeploy":
	case "openai-chat":
		cfg.Chat = true
	default:
		fmt.Fprintf(stderr, "bench: --backend %q: want openai or openai-chat\n", *backend)
		return 2
	}
	if *chatTemplate {
		cfg.Chat = true
	}
	ep := *endpoint
	if ep == "" {
		ep = map[bool]string{false: "/v1/completions", true: "/v1/chat/completions"}[cfg.Chat]
	}
	cfg.URL = URL(*baseURL, *host, *port, ep)
	var items []Item
	switch *dataset {
	case "random":
		items = RandomDataset(*numPrompts, *inLen, *outLen, *ratio, *seed)
	case "trtllm_custom":
		if *datasetPath == "" {
			fmt.Fprintln(stderr, "bench: --dataset-name trtllm_custom needs --dataset-path")
			return 2
		}
		if items, err = CustomDataset(*datasetPath, *numPrompts, *outLen); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
	default:
		fmt.Fprintf(stderr, "bench: --dataset-name %q: want random or trtllm_custom\n", *dataset)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := New(max(*maxConc, 64))
	fmt.Fprintf(stdout, "disaggbench benchmark client: %s, %d prompts, %s dataset\n", cfg.URL, len(items), *dataset)
	if *noTest {
		fmt.Fprintln(stdout, "Skipping initial test run. Starting main benchmark run...")
	} else {
		fmt.Fprintln(stdout, "Starting initial single prompt test run...")
		if o := c.Send(ctx, cfg, items[0]); !o.Success {
			fmt.Fprintf(stderr, "bench: initial test run failed: %s\n", o.Error)
			return 1
		}
		fmt.Fprintln(stdout, "Initial test run completed. Starting main benchmark run...")
	}
	if *warmup > 0 {
		fmt.Fprintf(stdout, "Warming up with %d requests...\n", *warmup)
	}
	fmt.Fprintln(stdout, "Traffic request rate: inf")
	fmt.Fprintln(stdout, "Burstiness factor: 1.0 (Poisson process)")
	if *maxConc > 0 {
		fmt.Fprintf(stdout, "Maximum request concurrency: %d\n", *maxConc)
	} else {
		fmt.Fprintln(stdout, "Maximum request concurrency: None")
	}
	outs, dur := c.Run(ctx, cfg, items)
	m := Compute(outs, dur, pcts, goodput)
	fmt.Fprintf(stdout, "Total failed requests: %d\n", m.Failed)
	shown := 0
	for _, o := range outs {
		if !o.Success && shown < 5 {
			fmt.Fprintf(stdout, "Failed request: %s\n", o.Error)
			shown++
		}
	}
	m.Print(stdout, selected, pcts, len(goodput) > 0)
	if *save {
		meta := map[string]any{"date": time.Now().Format("20060102-150405"), "backend": *backend, "model_id": *model,
			"num_prompts": len(items), "request_rate": "inf", "burstiness": 1.0, "max_concurrency": *maxConc,
			"client": "disaggbench"}
		name := *resultFile
		if name == "" {
			name = fmt.Sprintf("%s-inf-concurrency%d-%s.json", *backend, *maxConc, time.Now().Format("20060102-150405"))
		}
		b, err := json.MarshalIndent(m.Result(outs, meta, selected, pcts), "", "  ")
		if err == nil {
			err = os.MkdirAll(*resultDir, 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(*resultDir, name), append(b, '\n'), 0o644)
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
