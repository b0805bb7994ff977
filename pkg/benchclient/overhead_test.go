package benchclient

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkClientOverhead measures the client against a server that answers at once:
// every request streams 64 one-token chunks with no delay, so whatever time passes is
// the cost of the client (and of the in-process server, which shares the CPUs). It
// reports requests/s and the mean gap between chunks (us/chunk), the latency the
// client adds to each ITL it measures, at concurrency 1, 64 and 1,024.
//
//	go test -run '^$' -bench ClientOverhead -benchtime=1x ./pkg/benchclient
func BenchmarkClientOverhead(b *testing.B) {
	const chunks = 64
	var body []byte
	for i := range chunks {
		body = fmt.Appendf(body, "data: {\"choices\":[{\"index\":0,\"text\":\" t%d\",\"finish_reason\":null}]}\n\n", i)
	}
	tail := []byte("data: {\"choices\":[],\"usage\":{\"completion_tokens\":64}}\n\ndata: [DONE]\n\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		// One write and flush a chunk, as a streaming server sends them.
		for start := 0; start < len(body); {
			end := start
			for end < len(body) && !(body[end] == '\n' && end > 0 && body[end-1] == '\n') {
				end++
			}
			w.Write(body[start : end+1])
			f.Flush()
			start = end + 1
		}
		w.Write(tail)
	}))
	defer srv.Close()
	for _, conc := range []int{1, 64, 1024} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			n := max(conc*4, 256)
			items := RandomDataset(n, 16, chunks, 0, 1)
			c := New(conc)
			cfg := Config{URL: srv.URL + "/v1/completions", Model: "m", Stream: true, IgnoreEOS: true, MaxConcurrency: conc}
			c.Run(context.Background(), cfg, items[:min(n, conc)]) // open the connections
			var reqs, secs, itl float64
			for b.Loop() {
				outs, dur := c.Run(context.Background(), cfg, items)
				m := Compute(outs, dur, []float64{99}, nil)
				if m.Completed != n || m.TotalOutput != n*chunks {
					b.Fatalf("%d of %d completed, %d tokens", m.Completed, n, m.TotalOutput)
				}
				reqs += float64(n)
				secs += dur.Seconds()
				itl += m.ITL.Mean
			}
			b.ReportMetric(reqs/secs, "req/s")
			b.ReportMetric(itl/float64(b.N)*1000, "us/chunk")
			b.ReportMetric(0, "ns/op")
		})
	}
}
