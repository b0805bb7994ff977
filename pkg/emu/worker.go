package emu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/minieval"
)

// WorkerConfig is what the emulator reads of a worker's LLM-API options file
// (ctx_config.yaml, gen_config.yaml); every other option is ignored.
type WorkerConfig struct {
	TensorParallelSize    int `yaml:"tensor_parallel_size"`
	MoeExpertParallelSize int `yaml:"moe_expert_parallel_size"`
	MaxBatchSize          int `yaml:"max_batch_size"`
	MaxNumTokens          int `yaml:"max_num_tokens"`
	SpeculativeConfig     *struct {
		NumNextnPredictLayers int `yaml:"num_nextn_predict_layers"`
	} `yaml:"speculative_config"`
	CacheTransceiverConfig *struct {
		Backend string `yaml:"backend"`
	} `yaml:"cache_transceiver_config"`
	// PrintIterLog makes the worker log one line per iteration (prefill batch or
	// decode step), in TensorRT-LLM's iteration-log shape.
	PrintIterLog bool `yaml:"print_iter_log"`
}

// ReadWorkerConfig reads an options file; an error names the file.
func ReadWorkerConfig(path string) (WorkerConfig, error) {
	var c WorkerConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"tensor_parallel_size", c.TensorParallelSize}, {"moe_expert_parallel_size", c.MoeExpertParallelSize},
		{"max_batch_size", c.MaxBatchSize}, {"max_num_tokens", c.MaxNumTokens}, {"speculative_config.num_nextn_predict_layers", c.mtp()}} {
		if f.v < 0 {
			return c, fmt.Errorf("%s: %s: %d must not be negative", path, f.name, f.v)
		}
	}
	return c, nil
}

func (c WorkerConfig) mtp() int {
	if c.SpeculativeConfig == nil {
		return 0
	}
	return c.SpeculativeConfig.NumNextnPredictLayers
}

func (c WorkerConfig) backend() string {
	if c.CacheTransceiverConfig == nil || c.CacheTransceiverConfig.Backend == "" {
		return "DEFAULT"
	}
	return c.CacheTransceiverConfig.Backend
}

// Worker is one emulated trtllm-serve worker: a ctx worker (prefill only), a gen worker
// (KV transfer and decode), or, with no role, an aggregated server doing both.
type Worker struct {
	Role      string // "CONTEXT", "GENERATION" or ""
	ModelName string
	Config    WorkerConfig
	Model     Model
	Log       *log.Logger

	// QueueGate is TLLM_BENCHMARK_REQ_QUEUES_SIZE (gen_only benchmarks): every request
	// waits until that many generation requests have arrived, once. A context worker
	// never gets generation requests, so a gate there holds its requests for ever, as
	// it would hold a real one.
	QueueGate int

	requests atomic.Uint64
	iter     atomic.Uint64
	prefillQ chan *prefillJob
	arrive   chan *sequence
	genSeen  atomic.Int64
	gateOpen chan struct{}
}

type prefillJob struct {
	tokens int
	jitter float64
	done   chan struct{}
}

// sequence is one request in the decode batch.
type sequence struct {
	words     []string // the tokens still to generate
	r         *rand.Rand
	out       chan emitted
	cancelled atomic.Bool
}

type emitted struct {
	text string
	n    int
	done bool
}

func (w *Worker) maxBatch() int { return max(w.Config.MaxBatchSize, 1) }

// Summary describes the emulated worker's configuration in one line for its log.
func (w *Worker) Summary() string {
	wc := w.Config
	return fmt.Sprintf("tp %d, ep %d, max_batch_size %d, max_num_tokens %d, mtp %d, cache transceiver %s, seed %d",
		max(wc.TensorParallelSize, 1), max(wc.MoeExpertParallelSize, 1), w.maxBatch(), wc.MaxNumTokens, wc.mtp(), wc.backend(), w.Model.Seed)
}

func (w *Worker) parallel() int {
	return max(w.Config.TensorParallelSize, 1) * max(w.Config.MoeExpertParallelSize, 1)
}

// Start runs the worker's prefill and decode loops until ctx ends.
func (w *Worker) Start(ctx context.Context) {
	w.gateOpen = make(chan struct{})
	if w.QueueGate <= 0 {
		close(w.gateOpen)
	}
	w.prefillQ = make(chan *prefillJob, 1<<12)
	w.arrive = make(chan *sequence, 1<<16)
	go w.prefillLoop(ctx)
	go w.decodeLoop(ctx)
}

// prefillLoop runs prefill batches one at a time: up to max_batch_size prompts and
// max_num_tokens tokens (at least one prompt) a batch; the rest wait.
func (w *Worker) prefillLoop(ctx context.Context) {
	var pending []*prefillJob
	budget := w.Config.MaxNumTokens
	for {
		if len(pending) == 0 {
			select {
			case p := <-w.prefillQ:
				pending = append(pending, p)
			case <-ctx.Done():
				return
			}
		}
	drain:
		for {
			select {
			case p := <-w.prefillQ:
				pending = append(pending, p)
			default:
				break drain
			}
		}
		n, tokens := 0, 0
		for n < len(pending) && n < w.maxBatch() && (n == 0 || budget <= 0 || tokens+pending[n].tokens <= budget) {
			tokens += pending[n].tokens
			n++
		}
		d := w.Model.Prefill(tokens, w.parallel(), pending[0].jitter)
		sleepCtx(ctx, d)
		w.iterLog(d, n, n, tokens, 0)
		for _, p := range pending[:n] {
			close(p.done)
		}
		pending = pending[n:]
	}
}

// decodeLoop is continuous batching: each step every running sequence gets its next
// token(s); a finished sequence frees its slot for the next waiting one. Steps are
// timed against absolute deadlines, so a late wake-up does not slow the average rate.
func (w *Worker) decodeLoop(ctx context.Context) {
	var active []*sequence
	var deadline time.Time
	mtp := w.Config.mtp()
	for {
	admit:
		for len(active) < w.maxBatch() {
			select {
			case s := <-w.arrive:
				active = append(active, s)
			default:
				break admit
			}
		}
		if len(active) == 0 {
			select {
			case s := <-w.arrive:
				active = append(active, s)
				deadline = time.Time{}
				continue
			case <-ctx.Done():
				return
			}
		}
		step := w.Model.Step(len(active), w.parallel(), mtp)
		now := time.Now()
		// A loop that fell behind (a busy CPU) catches up on later steps, up to
		// maxLag; further behind, it starts counting from now.
		if deadline.IsZero() || deadline.Add(maxLag).Before(now) {
			deadline = now
		}
		deadline = deadline.Add(step)
		if !sleepCtx(ctx, time.Until(deadline)) {
			return
		}
		w.iterLog(step, len(active), 0, 0, len(active)*(1+mtp))
		keep := active[:0]
		for _, s := range active {
			if s.cancelled.Load() {
				continue
			}
			k := min(1+w.Model.Accepted(s.r, mtp), len(s.words))
			text := strings.Join(s.words[:k], "")
			s.words = s.words[k:]
			done := len(s.words) == 0
			s.out <- emitted{text: text, n: k, done: done}
			if !done {
				keep = append(keep, s)
			}
		}
		clear(active[len(keep):])
		active = keep
	}
}

// iterLog writes one iteration line as TensorRT-LLM's print_iter_log does: upstream's
// log processing keeps the lines whose states show no generation tokens (context-only
// iterations) or no context requests (generation-only iterations).
func (w *Worker) iterLog(d time.Duration, scheduled, ctxRequests, ctxTokens, genTokens int) {
	if !w.Config.PrintIterLog || w.Log == nil {
		return
	}
	w.Log.Printf("iter = %d, global_rank = 0, rank = 0, currank_total_requests = %d/%d, host_step_time = %.3fms, prev_device_step_time = %.3fms, timestamp = %s, num_scheduled_requests: %d, states = {'num_ctx_requests': %d, 'num_ctx_tokens': %d, 'num_generation_tokens': %d}",
		w.iter.Add(1), scheduled, scheduled, float64(d.Microseconds())/1000, float64(d.Microseconds())/1000,
		time.Now().UTC().Format("2006-01-02 15:04:05"), scheduled, ctxRequests, ctxTokens, genTokens)
}

// wait holds a request at the queue-size gate; a generation request counts towards
// opening it. It reports false when the request ended first.
func (w *Worker) wait(ctx context.Context, generation bool) bool {
	if generation && w.genSeen.Add(1) == int64(w.QueueGate) {
		if w.Log != nil {
			w.Log.Printf("EMULATION: %d generation requests queued (TLLM_BENCHMARK_REQ_QUEUES_SIZE): scheduling starts", w.QueueGate)
		}
		close(w.gateOpen)
	}
	select {
	case <-w.gateOpen:
		return true
	case <-ctx.Done():
		return false
	}
}

// maxLag is how far behind its schedule the decode loop may fall and still catch up.
const maxLag = 50 * time.Millisecond

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

var vocab = strings.Fields(`the of and to in is was for on that with as by at from it an be this which
or are have not has but were had their its one all can more also other new time may first some
these been into only most over such two when after many used then would each three where how them
our out about than well both part while year state under between through during same made day`)

// plan returns the tokens a request generates (each with its leading space) and why it
// stops: a question of the bundled evaluation set gets its worked answer; any other
// prompt gets words, max_tokens of them with ignore_eos, else a seeded length.
func plan(prompt string, maxTokens int, ignoreEOS bool, r *rand.Rand) ([]string, string) {
	var words []string
	if a, ok := minieval.Answer(prompt); ok && !ignoreEOS {
		words = strings.Fields(a)
	} else {
		n := maxTokens
		if !ignoreEOS {
			n = maxTokens/2 + r.IntN(maxTokens-maxTokens/2) + 1
		}
		words = make([]string, n)
		for i := range words {
			words[i] = vocab[r.IntN(len(vocab))]
		}
	}
	reason := "stop"
	if len(words) >= maxTokens {
		words, reason = words[:maxTokens], "length"
	}
	for i := range words {
		words[i] = " " + words[i]
	}
	return words, reason
}

// Handler serves the worker's HTTP API.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /v1/models", func(rw http.ResponseWriter, _ *http.Request) { models(rw, w.ModelName) })
	mux.HandleFunc("POST /v1/completions", func(rw http.ResponseWriter, r *http.Request) { w.complete(rw, r, false) })
	mux.HandleFunc("POST /v1/chat/completions", func(rw http.ResponseWriter, r *http.Request) { w.complete(rw, r, true) })
	return mux
}

func models(rw http.ResponseWriter, name string) {
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(map[string]any{"object": "list", "data": []map[string]any{
		{"id": name, "object": "model", "created": time.Now().Unix(), "owned_by": "tensorrt_llm (EMULATION)"}}})
}

const maxBody = 64 << 20

func (w *Worker) complete(rw http.ResponseWriter, hr *http.Request, chat bool) {
	var req request
	if err := json.NewDecoder(io.LimitReader(hr.Body, maxBody)).Decode(&req); err != nil {
		httpError(rw, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	text, tokens, err := req.prompt(chat)
	if err == nil && tokens == 0 {
		err = fmt.Errorf("prompt: empty")
	}
	maxTokens, err2 := req.maxTokens(chat)
	if err == nil {
		err = err2
	}
	if err != nil {
		httpError(rw, http.StatusBadRequest, err.Error())
		return
	}
	if req.Model == "" {
		req.Model = w.ModelName
	}
	num := w.requests.Add(1)
	r := w.Model.Rand(num)
	words, reason := plan(text, maxTokens, req.IgnoreEOS, r)
	out := newWriter(rw, &req, chat, "cmpl-emu-"+strconv.FormatUint(num, 10))
	ctx := hr.Context()
	kind := ""
	if req.DisaggregatedParams != nil {
		kind = req.DisaggregatedParams.RequestType
	}
	generation := kind == GenerationOnly || kind == "" && w.Role != "CONTEXT"
	if !w.wait(ctx, generation) {
		return
	}
	switch {
	case kind == ContextOnly || (kind == "" && w.Role == "CONTEXT"):
		// Prefill, then answer with the first token and what the gen worker needs.
		if !w.prefill(ctx, tokens, r) {
			return
		}
		out.stream = false
		out.send(words[0], 1)
		dp := &DisaggParams{RequestType: ContextOnly, FirstGenTokens: []int{len(words[0])}, CtxRequestID: num,
			EncodedOpaqueState: strconv.Itoa(tokens)}
		out.finish(reason, tokens, dp)
		return
	case kind == GenerationOnly:
		// The KV cache arrives from the ctx worker; the first token came with it.
		n := tokens
		if v, err := strconv.Atoi(req.DisaggregatedParams.EncodedOpaqueState); err == nil && v > 0 {
			n = v
		}
		if !sleepCtx(ctx, w.Model.KVTransfer(w.Config.backend(), n, w.Model.JitterFactor(r))) {
			return
		}
	case kind == "":
		if !w.prefill(ctx, tokens, r) {
			return
		}
	default:
		httpError(rw, http.StatusBadRequest, fmt.Sprintf("disaggregated_params.request_type: unknown %q", kind))
		return
	}
	if w.decode(ctx, out, words, r) {
		out.finish(reason, tokens, nil)
	}
}

// decode sends the first token, then the others as the batched decode loop emits
// them; false: the client went away.
func (w *Worker) decode(ctx context.Context, out *writer, words []string, r *rand.Rand) bool {
	if err := out.send(words[0], 1); err != nil {
		return false
	}
	if len(words) == 1 {
		return true
	}
	s := &sequence{words: words[1:], r: r, out: make(chan emitted, len(words))}
	select {
	case w.arrive <- s:
	case <-ctx.Done():
		return false
	}
	for e := range s.out {
		if err := out.send(e.text, e.n); err != nil {
			s.cancelled.Store(true)
			return false
		}
		if e.done {
			break
		}
	}
	return true
}

func (w *Worker) prefill(ctx context.Context, tokens int, r *rand.Rand) bool {
	j := &prefillJob{tokens: tokens, jitter: w.Model.JitterFactor(r), done: make(chan struct{})}
	select {
	case w.prefillQ <- j:
	case <-ctx.Done():
		return false
	}
	select {
	case <-j.done:
		return true
	case <-ctx.Done():
		return false
	}
}
