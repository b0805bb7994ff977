// Package benchclient is the project's serving benchmark client: what TensorRT-LLM's
// benchmark_serving does for the job script, against any OpenAI-compatible endpoint
// (trtllm-serve, vLLM, SGLang, Dynamo, the emulator). It sends a dataset's prompts with
// at most MaxConcurrency in flight, times every streamed chunk on the monotonic clock,
// and reports benchmark_serving's "Serving Benchmark Result" block and its --save-result
// JSON with the same definitions:
//
//	TTFT   from sending a request to its first chunk with non-empty text
//	ITL    every gap between two consecutive non-empty chunks, all requests pooled
//	E2EL   from sending a request to its last non-empty chunk
//	TPOT   per request (E2EL - TTFT) / (output tokens - 1), for requests with more than
//	       one output token
//	output tokens  the server's usage.completion_tokens when it sends usage, else the
//	       number of non-empty chunks
//	request, output and total token throughput  completed requests, output tokens and
//	       input plus output tokens, divided by the benchmark's duration
//	user throughput  the mean over requests of output tokens / E2EL in seconds
//	goodput  completed requests meeting every --goodput limit (ms), per second
//
// Non-streaming requests have TTFT = E2EL and no ITL.
package benchclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Item is one prompt of a dataset.
type Item struct {
	Prompt    string // sent as the prompt, or as the one user message of a chat request
	InputLen  int    // its length in tokens, as the dataset counts it
	OutputLen int    // max_tokens
}

// Config is one benchmark run.
type Config struct {
	URL            string // the full endpoint, e.g. http://host:8333/v1/completions
	Model          string
	Chat           bool // chat completions (messages) instead of completions (prompt)
	Stream         bool
	IgnoreEOS      bool
	MaxConcurrency int // 0: all at once
	Warmup         int // warm-up requests before the run, not counted
	Header         http.Header
}

// Output is one request's measurements; times in seconds.
type Output struct {
	Success   bool
	Error     string
	InputLen  int
	OutputLen int
	TTFT      float64
	ITL       []float64
	Latency   float64
	Chunks    int
}

// Client sends requests; one Client reuses its connections across runs.
type Client struct {
	HTTP *http.Client
	// Now is the clock (default time.Now, monotonic); tests script it.
	Now func() time.Time
}

func (c *Client) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// New returns a client whose transport keeps up to conns idle connections per host.
func New(conns int) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = max(conns, 2)
	tr.DisableCompression = true
	tr.ReadBufferSize = 64 << 10
	return &Client{HTTP: &http.Client{Transport: tr}}
}

// Run sends items with at most cfg.MaxConcurrency in flight, after cfg.Warmup
// warm-up requests, and returns every request's output and the run's duration.
func (c *Client) Run(ctx context.Context, cfg Config, items []Item) ([]Output, time.Duration) {
	if cfg.Warmup > 0 && len(items) > 0 {
		warm := make([]Item, cfg.Warmup)
		for i := range warm {
			warm[i] = items[i%len(items)]
		}
		c.run(ctx, cfg, warm)
	}
	start := c.now()
	out := c.run(ctx, cfg, items)
	return out, c.now().Sub(start)
}

func (c *Client) run(ctx context.Context, cfg Config, items []Item) []Output {
	out := make([]Output, len(items))
	limit := cfg.MaxConcurrency
	if limit <= 0 || limit > len(items) {
		limit = len(items)
	}
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(items); j++ {
				out[j] = Output{InputLen: items[j].InputLen, Error: ctx.Err().Error()}
			}
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.Send(ctx, cfg, it)
			<-sem
		}()
	}
	wg.Wait()
	return out
}

// Send sends one request and times it.
func (c *Client) Send(ctx context.Context, cfg Config, it Item) Output {
	o := Output{InputLen: it.InputLen}
	body := map[string]any{"model": cfg.Model, "max_tokens": it.OutputLen, "stream": cfg.Stream, "temperature": 0}
	if cfg.IgnoreEOS {
		body["ignore_eos"] = true
	}
	if cfg.Stream {
		body["stream_options"] = map[string]any{"include_usage": true}
	}
	if cfg.Chat {
		body["messages"] = []map[string]string{{"role": "user", "content": it.Prompt}}
	} else {
		body["prompt"] = it.Prompt
	}
	b, err := json.Marshal(body)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(b))
	if err != nil {
		o.Error = err.Error()
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range cfg.Header {
		req.Header[k] = v
	}
	start := c.now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		o.Error = fmt.Sprintf("%s: %s", resp.Status, bytes.TrimSpace(msg))
		return o
	}
	if !cfg.Stream {
		data, err := io.ReadAll(resp.Body)
		now := c.now().Sub(start).Seconds()
		if err != nil {
			o.Error = err.Error()
			return o
		}
		var ch chunk
		if err := json.Unmarshal(data, &ch); err != nil {
			o.Error = "response: " + err.Error()
			return o
		}
		o.TTFT, o.Latency, o.Chunks = now, now, 1
		o.OutputLen = ch.completionTokens()
		if o.OutputLen == 0 && ch.text() != "" {
			o.OutputLen = 1
		}
		o.Success = true
		return o
	}
	err = readStream(resp.Body, start, c.now, &o)
	if err != nil {
		o.Error = err.Error()
		return o
	}
	o.Success = true
	return o
}

// chunk is what the client reads of a response or a streamed chunk.
type chunk struct {
	Choices []struct {
		Text  *string `json:"text"`
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
		Message *struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

func (c *chunk) text() string {
	if len(c.Choices) == 0 {
		return ""
	}
	ch := c.Choices[0]
	switch {
	case ch.Text != nil:
		return *ch.Text
	case ch.Delta != nil && ch.Delta.Content != nil:
		return *ch.Delta.Content
	case ch.Message != nil && ch.Message.Content != nil:
		return *ch.Message.Content
	}
	return ""
}

func (c *chunk) completionTokens() int {
	if c.Usage == nil {
		return 0
	}
	return c.Usage.CompletionTokens
}

var errNoDone = errors.New("the stream ended without data: [DONE]")

// readStream reads server-sent events, timing each non-empty chunk when its event has
// been read whole.
func readStream(r io.Reader, start time.Time, clock func() time.Time, o *Output) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var last time.Duration
	usageTokens := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return errNoDone
			}
			return err
		}
		if errors.Is(err, bufio.ErrBufferFull) { // a very long event: read it whole
			rest, err := br.ReadBytes('\n')
			if err != nil {
				return err
			}
			line = append(append([]byte{}, line...), rest...)
		}
		data, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r\n"), []byte("data:"))
		if !ok {
			continue
		}
		data = bytes.TrimSpace(data)
		if bytes.Equal(data, []byte("[DONE]")) {
			break
		}
		now := clock().Sub(start)
		var ch chunk
		if err := json.Unmarshal(data, &ch); err != nil {
			return fmt.Errorf("chunk %q: %w", data, err)
		}
		if ch.Usage != nil {
			usageTokens = ch.Usage.CompletionTokens
		}
		if ch.text() == "" {
			continue
		}
		if o.Chunks == 0 {
			o.TTFT = now.Seconds()
		} else {
			o.ITL = append(o.ITL, (now - last).Seconds())
		}
		last = now
		o.Chunks++
	}
	o.Latency = last.Seconds()
	o.OutputLen = o.Chunks
	if usageTokens >= 0 {
		o.OutputLen = usageTokens
	}
	if o.Chunks == 0 {
		return errors.New("no chunk with text")
	}
	return nil
}

// URL joins a base URL (or host and port) and an endpoint.
func URL(base, host string, port int, endpoint string) string {
	if base == "" {
		base = fmt.Sprintf("http://%s:%d", host, port)
	}
	return strings.TrimRight(base, "/") + "/" + strings.TrimLeft(endpoint, "/")
}
