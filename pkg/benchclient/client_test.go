package benchclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock only the scripted server moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// script is one request's stream: the delay before its first text chunk, the gaps
// between text chunks (one token each) and the completion tokens its usage reports.
type script struct {
	ttft  time.Duration
	gaps  []time.Duration
	usage int
}

// scriptedBody returns one server-sent event a Read, moving the clock by the event's
// delay first: the client sees each event arrive exactly when the script says.
type scriptedBody struct {
	clk    *fakeClock
	events []string
	delays []time.Duration
}

func (b *scriptedBody) Read(p []byte) (int, error) {
	if len(b.events) == 0 {
		return 0, io.EOF
	}
	b.clk.advance(b.delays[0])
	n := copy(p, b.events[0])
	if n < len(b.events[0]) {
		panic("short read buffer")
	}
	b.events, b.delays = b.events[1:], b.delays[1:]
	return n, nil
}
func (b *scriptedBody) Close() error { return nil }

type scriptedTransport struct {
	clk     *fakeClock
	mu      sync.Mutex
	scripts []script
}

func (tr *scriptedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tr.mu.Lock()
	s := tr.scripts[0]
	tr.scripts = tr.scripts[1:]
	tr.mu.Unlock()
	ev := func(v string) string { return "data: " + v + "\n\n" }
	b := &scriptedBody{clk: tr.clk}
	add := func(d time.Duration, e string) { b.events, b.delays = append(b.events, e), append(b.delays, d) }
	// A chat server's first chunk carries the role and no text: not the first token.
	add(0, ev(`{"choices":[{"delta":{"role":"assistant","content":""}}]}`))
	add(s.ttft, ev(`{"choices":[{"delta":{"content":" a"}}]}`))
	for _, g := range s.gaps {
		add(g, ev(`{"choices":[{"delta":{"content":" b"}}]}`))
	}
	add(0, ev(`{"choices":[{"delta":{"content":""},"finish_reason":"length"}]}`))
	add(0, ev(fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":%d}}`, s.usage)))
	add(0, "data: [DONE]\n\n")
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: b, Request: r}, nil
}

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// The statistics come out exactly as benchmark_serving defines them, from a server
// whose delays are scripted on a fake clock.
func TestStatisticsFromScriptedDelays(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	tr := &scriptedTransport{clk: clk, scripts: []script{
		{ttft: ms(100), gaps: []time.Duration{ms(10), ms(20)}, usage: 3},
		{ttft: ms(200), gaps: []time.Duration{ms(30), ms(30), ms(30)}, usage: 4},
		{ttft: ms(300), usage: 1},
	}}
	c := &Client{HTTP: &http.Client{Transport: tr}, Now: clk.Now}
	items := []Item{{Prompt: "x", InputLen: 5, OutputLen: 3}, {Prompt: "y", InputLen: 6, OutputLen: 4}, {Prompt: "z", InputLen: 7, OutputLen: 1}}
	outs, dur := c.Run(context.Background(), Config{URL: "http://scripted/v1/chat/completions", Chat: true, Stream: true, MaxConcurrency: 1}, items)
	for i, o := range outs {
		if !o.Success {
			t.Fatalf("request %d: %s", i, o.Error)
		}
	}
	if dur != ms(720) {
		t.Errorf("duration %v, want 720ms", dur)
	}
	m := Compute(outs, dur, []float64{99}, Goodput{"ttft": 250})
	want := map[string][2]float64{
		"mean TTFT":    {m.TTFT.Mean, 200},
		"median TTFT":  {m.TTFT.Median, 200},
		"std TTFT":     {m.TTFT.Std, math.Sqrt(20000.0 / 3)},
		"p99 TTFT":     {m.TTFT.Percentiles[99], 298},
		"mean TPOT":    {m.TPOT.Mean, 22.5}, // (130-100)/2 and (290-200)/3; one token has none
		"median TPOT":  {m.TPOT.Median, 22.5},
		"mean ITL":     {m.ITL.Mean, 24}, // 10 20 30 30 30, pooled
		"median ITL":   {m.ITL.Median, 30},
		"p99 ITL":      {m.ITL.Percentiles[99], 30},
		"mean E2EL":    {m.E2EL.Mean, 240}, // 130 290 300
		"median E2EL":  {m.E2EL.Median, 290},
		"req/s":        {m.RequestThroughput, 3 / 0.72},
		"goodput":      {m.RequestGoodput, 2 / 0.72},
		"output tok/s": {m.OutputThroughput, 8 / 0.72},
		"total tok/s":  {m.TotalTokenThroughput, (18 + 8) / 0.72},
		"user tok/s":   {m.UserThroughput, (3/0.13 + 4/0.29 + 1/0.3) / 3},
	}
	for name, v := range want {
		if !near(v[0], v[1]) {
			t.Errorf("%s = %.9g, want %.9g", name, v[0], v[1])
		}
	}
	if m.Completed != 3 || m.TotalInput != 18 || m.TotalOutput != 8 || m.Good != 2 {
		t.Errorf("completed %d, input %d, output %d, good %d", m.Completed, m.TotalInput, m.TotalOutput, m.Good)
	}

	var buf bytes.Buffer
	m.Print(&buf, []string{"ttft", "tpot", "itl", "e2el"}, []float64{99}, true)
	for _, line := range []string{
		"============ Serving Benchmark Result ============",
		"Successful requests:                     3         ",
		"Request goodput (req/s):                 2.78      ",
		"---------------Time to First Token----------------",
		"Median TTFT (ms):                        200.00    ",
		"-----Time per Output Token (excl. 1st token)------",
		"P99 TTFT (ms):                           298.00    ",
		"Mean ITL (ms):                           24.00     ",
		"==================================================",
	} {
		if !strings.Contains(buf.String(), line+"\n") {
			t.Errorf("block lacks %q:\n%s", line, buf.String())
		}
	}

	res := m.Result(outs, map[string]any{"max_concurrency": 1}, []string{"ttft", "tpot", "itl", "e2el"}, []float64{99})
	b, _ := json.Marshal(res)
	path := filepath.Join(t.TempDir(), "result.json")
	os.WriteFile(path, b, 0o644)
	saved, err := ReadResult(path)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Completed != 3 || len(saved.ITLs) != 3 || len(saved.ITLs[1]) != 3 || !near(saved.ITLs[1][0], 0.03) || !near(saved.TTFTs[2], 0.3) {
		t.Errorf("saved %+v", saved)
	}
	for _, k := range []string{"completed", "total_input_tokens", "total_output_tokens", "request_throughput", "output_throughput",
		"mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "median_itl_ms", "p99_e2el_ms",
		"input_lens", "output_lens", "ttfts", "itls"} {
		if _, ok := res[k]; !ok {
			t.Errorf("result JSON lacks %q", k)
		}
	}
}

func TestCustomDataset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.jsonl")
	os.WriteFile(path, []byte(`{"input": {"messages": [{"role": "user", "content": "one two three"}], "max_tokens": 7}}
{"prompt": "four five", "max_tokens": 0}

`), 0o644)
	items, err := CustomDataset(path, 3, 9)
	if err != nil {
		t.Fatal(err)
	}
	want := []Item{{"one two three", 3, 7}, {"four five", 2, 9}, {"one two three", 3, 7}}
	for i := range want {
		if items[i] != want[i] {
			t.Errorf("item %d: %+v, want %+v", i, items[i], want[i])
		}
	}
	os.WriteFile(path, []byte("{\"input\": {}}\n"), 0o644)
	if _, err := CustomDataset(path, 0, 9); err == nil || !strings.Contains(err.Error(), path+":1:") {
		t.Errorf("error %v does not name the file and line", err)
	}
}

func TestRandomDatasetIsSeeded(t *testing.T) {
	a, b := RandomDataset(3, 100, 10, 0, 7), RandomDataset(3, 100, 10, 0, 7)
	for i := range a {
		if a[i] != b[i] || len(strings.Fields(a[i].Prompt)) != 100 || a[i].InputLen != 100 || a[i].OutputLen != 10 {
			t.Errorf("item %d: %d words, %+v", i, len(strings.Fields(a[i].Prompt)), a[i].InputLen)
		}
	}
	if a[0].Prompt == a[1].Prompt {
		t.Error("prompts repeat")
	}
	for _, it := range RandomDataset(50, 100, 10, 0.5, 1) {
		if it.InputLen < 50 || it.InputLen > 150 || len(strings.Fields(it.Prompt)) != it.InputLen {
			t.Errorf("range ratio 0.5: input %d", it.InputLen)
		}
	}
}
