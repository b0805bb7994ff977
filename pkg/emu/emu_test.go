package emu

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/benchclient"
	"github.com/disaggbench/disaggbench/pkg/minieval"
)

func TestTimingModel(t *testing.T) {
	m := DefaultModel()
	if a, b := m.Prefill(1024, 1, 1), m.Prefill(2048, 1, 1); b <= a {
		t.Errorf("prefill of 2048 tokens %v not above 1024's %v", b, a)
	}
	if got, want := m.Prefill(1024, 1, 1), m.PrefillBase+1024*m.PrefillPerToken; got != want {
		t.Errorf("prefill %v, want %v", got, want)
	}
	if a, b := m.Prefill(1024, 1, 1), m.Prefill(1024, 4, 1); b >= a {
		t.Errorf("tp4 prefill %v not below tp1's %v", b, a)
	}
	if ucx, nixl := m.KVTransfer("UCX", 1024, 1), m.KVTransfer("nixl", 1024, 1); nixl >= ucx || ucx != m.Transfer["UCX"].Base+1024*m.Transfer["UCX"].PerToken {
		t.Errorf("transfer UCX %v, NIXL %v", ucx, nixl)
	}
	if m.KVTransfer("SOMETHING", 10, 1) != m.KVTransfer("DEFAULT", 10, 1) {
		t.Error("an unknown backend must cost as DEFAULT")
	}
	if got, want := m.Step(4, 1, 0), m.StepBase+4*m.StepPerSeq; got != want {
		t.Errorf("step with 4 running %v, want %v", got, want)
	}
	if m.Step(8, 1, 0) <= m.Step(4, 1, 0) || m.Step(4, 2, 0) >= m.Step(4, 1, 0) || m.Step(4, 1, 3) <= m.Step(4, 1, 0) {
		t.Error("a step must grow with the batch and the MTP layers and shrink with parallelism")
	}
	// MTP: the same seed draws the same acceptances; about 1+p+p^2+p^3 tokens a step.
	r1, r2 := m.Rand(7), m.Rand(7)
	total := 0
	for range 10000 {
		a := m.Accepted(r1, 3)
		if a != m.Accepted(r2, 3) || a < 0 || a > 3 {
			t.Fatal("acceptance is not deterministic or out of range")
		}
		total += 1 + a
	}
	p := m.MTPAccept
	if got, want := float64(total)/10000, 1+p+p*p+p*p*p; got < want-0.05 || got > want+0.05 {
		t.Errorf("mean tokens a step %v, want about %v", got, want)
	}
	for range 1000 {
		if f := m.JitterFactor(r1); f < 1-m.Jitter || f > 1+m.Jitter {
			t.Fatalf("jitter factor %v", f)
		}
	}
}

func quiet() *log.Logger { return log.New(io.Discard, "", 0) }

// worker starts an emulated worker on a test server.
func worker(t *testing.T, role string, cfg WorkerConfig, m Model) (*Worker, *httptest.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{Role: role, ModelName: "m", Config: cfg, Model: m, Log: quiet()}
	w.Start(ctx)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() { srv.Close(); cancel() })
	return w, srv
}

func bench(t *testing.T, url string, conc, n, out int) benchclient.Metrics {
	t.Helper()
	c := benchclient.New(conc)
	items := benchclient.RandomDataset(n, 64, out, 0, 1)
	outs, dur := c.Run(context.Background(), benchclient.Config{URL: url + "/v1/completions", Model: "m", Stream: true, IgnoreEOS: true, MaxConcurrency: conc}, items)
	m := benchclient.Compute(outs, dur, []float64{99}, nil)
	if m.Completed != n || m.TotalOutput != n*out {
		t.Fatalf("%d of %d completed, %d tokens: %+v", m.Completed, n, m.TotalOutput, outs[0])
	}
	return m
}

// Decode steps take Model.Step of the running batch: the measured TPOT follows it, and
// requests beyond max_batch_size wait for a free slot.
func TestDecodeFollowsTheModel(t *testing.T) {
	m := DefaultModel()
	m.Jitter = 0
	_, srv := worker(t, "", WorkerConfig{MaxBatchSize: 4, MaxNumTokens: 8192}, m)
	for _, conc := range []int{1, 4} {
		got := bench(t, srv.URL, conc, conc*2, 40)
		want := float64(m.Step(conc, 1, 0)) / 1e6
		// The last requests of a run decode in a smaller batch; the machine adds a little.
		if got.TPOT.Median < want*0.85 || got.TPOT.Median > want*1.25+0.5 {
			t.Errorf("concurrency %d: median TPOT %.3f ms, the model says %.3f", conc, got.TPOT.Median, want)
		}
	}
	// Eight requests, four slots: the second four wait about one whole decode.
	got := bench(t, srv.URL, 8, 8, 40)
	full := float64(m.Step(4, 1, 0)) / 1e6 * 39
	if got.E2EL.Percentiles[99] < 1.8*full {
		t.Errorf("p99 E2EL %.1f ms with 8 requests on 4 slots, want about twice %.1f", got.E2EL.Percentiles[99], full)
	}
}

// MTP shortens decoding: the same output takes fewer steps.
func TestMTPShortensDecode(t *testing.T) {
	m := DefaultModel()
	m.Jitter = 0
	_, plain := worker(t, "", WorkerConfig{MaxBatchSize: 4}, m)
	cfg := WorkerConfig{MaxBatchSize: 4}
	cfg.SpeculativeConfig = &struct {
		NumNextnPredictLayers int `yaml:"num_nextn_predict_layers"`
	}{3}
	_, mtp := worker(t, "", cfg, m)
	a, b := bench(t, plain.URL, 1, 2, 100), bench(t, mtp.URL, 1, 2, 100)
	if b.E2EL.Mean >= a.E2EL.Mean*0.75 {
		t.Errorf("mtp3 E2EL %.1f ms, without MTP %.1f: want well below", b.E2EL.Mean, a.E2EL.Mean)
	}
}

// Through the router a request is prefilled on a ctx worker, then generated on a gen
// worker; streaming and whole answers, completions and chat, the health check, and
// the bundled questions all work end to end.
func TestRouterCtxThenGen(t *testing.T) {
	m := DefaultModel()
	ctxW, ctxS := worker(t, "CONTEXT", WorkerConfig{MaxBatchSize: 4, MaxNumTokens: 4096}, m)
	gen := WorkerConfig{MaxBatchSize: 8}
	gen.CacheTransceiverConfig = &struct {
		Backend string `yaml:"backend"`
	}{"NIXL"}
	genW, genS := worker(t, "GENERATION", gen, m)
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	rt := &Router{Config: ServerConfig{ContextServers: ServerSection{URLs: []string{host(ctxS)}},
		GenerationServers: ServerSection{URLs: []string{host(genS)}}}, Log: quiet()}
	rs := httptest.NewServer(rt.Handler())
	defer rs.Close()

	resp, err := http.Get(rs.URL + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", err, resp)
	}
	got := bench(t, rs.URL, 4, 8, 16)
	if ctxW.requests.Load() != 8 || genW.requests.Load() != 8 {
		t.Errorf("ctx worker saw %d requests, gen worker %d; want 8 each", ctxW.requests.Load(), genW.requests.Load())
	}
	if got.TTFT.Median <= float64(m.Prefill(64, 1, 0.95)+m.KVTransfer("NIXL", 64, 0.95))/1e6 {
		t.Errorf("median TTFT %.3f ms is below prefill plus transfer", got.TTFT.Median)
	}

	// Chat, whole answer, without ignore_eos: the seeded length, the same twice.
	body := `{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":50}`
	var texts []string
	for range 2 {
		resp, err := http.Post(rs.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		n := len(strings.Fields(out.Choices[0].Message.Content))
		if n == 0 || n > 50 || n != out.Usage.CompletionTokens {
			t.Errorf("chat answer of %d words, usage %d", n, out.Usage.CompletionTokens)
		}
		texts = append(texts, out.Choices[0].Message.Content)
	}

	scores, _, err := minieval.Run(context.Background(), minieval.Options{BaseURL: rs.URL + "/v1/completions", ModelName: "m",
		MaxTokens: 256, Parallel: 8, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	flex, strict := minieval.Expected()
	if scores[0].Value != flex || scores[1].Value != strict || flex < 0.9 {
		t.Errorf("scores %+v, want flexible %v strict %v", scores, flex, strict)
	}

	genS.Close()
	resp, err = http.Get(rs.URL + "/health")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("health with the gen worker down: %v %v", err, resp)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	dir := t.TempDir()
	p := dir + "/server_config.yaml"
	writeFile(t, p, "hostname: h\nport: 8333\ngeneration_servers:\n  urls:\n    - nohostport\n")
	if _, err := ReadServerConfig(p); err == nil || !strings.Contains(err.Error(), p+": generation_servers.urls[0]") {
		t.Errorf("error %v", err)
	}
	writeFile(t, p, "max_batch_size: -1\n")
	if _, err := ReadWorkerConfig(p); err == nil || !strings.Contains(err.Error(), "max_batch_size") {
		t.Errorf("error %v", err)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TLLM_BENCHMARK_REQ_QUEUES_SIZE: a generation worker holds requests until that many
// have arrived, then serves them all; a context worker, which never gets generation
// requests, holds them for ever (the hang a gate on a ctx worker causes on a real
// cluster). With print_iter_log each iteration logs its states line.
func TestQueueGate(t *testing.T) {
	var logBuf strings.Builder
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	lw := writerFunc(func(p []byte) (int, error) { <-mu; defer func() { mu <- struct{}{} }(); return logBuf.Write(p) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &Worker{ModelName: "m", Config: WorkerConfig{MaxBatchSize: 8, PrintIterLog: true}, Model: DefaultModel(), Log: log.New(lw, "", 0), QueueGate: 4}
	w.Start(ctx)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	post := func(url string, timeout time.Duration) error {
		c := http.Client{Timeout: timeout}
		resp, err := c.Post(url+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"m","prompt":"a b c","max_tokens":3,"ignore_eos":true}`))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return err
	}
	// Three requests are held: the fourth opens the gate.
	errs := make(chan error, 4)
	for range 3 {
		go func() { errs <- post(srv.URL, 10*time.Second) }()
	}
	select {
	case err := <-errs:
		t.Fatalf("a request passed the gate of 4 with 3 queued: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	go func() { errs <- post(srv.URL, 10*time.Second) }()
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-mu
	logs := logBuf.String()
	mu <- struct{}{}
	if !strings.Contains(logs, "'num_ctx_requests': 0, 'num_ctx_tokens': 0, 'num_generation_tokens':") ||
		!strings.Contains(logs, "'num_generation_tokens': 0}") {
		t.Errorf("no iteration lines of both kinds:\n%s", logs)
	}

	// A context worker with the gate never serves.
	cw := &Worker{Role: "CONTEXT", ModelName: "m", Config: WorkerConfig{MaxBatchSize: 8}, Model: DefaultModel(), Log: quiet(), QueueGate: 1}
	cw.Start(ctx)
	csrv := httptest.NewServer(cw.Handler())
	defer csrv.Close()
	if err := post(csrv.URL, 500*time.Millisecond); err == nil {
		t.Error("a gated context worker answered")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
