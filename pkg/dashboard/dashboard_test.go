package dashboard

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func connect(t *testing.T) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(t.TempDir(), "nats"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const testID = "disagg_perf_m_1k1k_ctx1_gen2_tep1_bs8_eplb0_mtp0_ccb-NIXL"

// publishRun publishes a run of one perf test up to the given step: 1 started and batch,
// 2 submitted and running, 3 completed and result, 4 finished.
func publishRun(t *testing.T, b *bus.Bus, run string, steps int) {
	t.Helper()
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	h := events.Header{V: events.Version, RunID: run, Time: at}
	pub := func(subject, id string, v any) {
		if err := b.Publish(ctx, subject, id, v); err != nil {
			t.Fatal(err)
		}
	}
	if steps >= 1 {
		pub(events.RunStartedSubject(run), events.StartedID(run), events.RunStarted{Header: h, Tests: 1, Batches: 1, BatchSize: 5,
			Policy: events.PolicySliding, Scheduler: "local", GPUType: "GB200", TestIDs: []string{testID}})
		pub(events.BatchSubject(run, 0), events.BatchID(run, 0), events.Batch{Header: h, Total: 1, Tests: 1, Jobs: []events.JobSpec{{
			TestID: testID, TestType: "disagg", Category: "perf", Model: "m", GPUType: "GB200", CtxGPUs: 2, GenGPUs: 6,
			NumCtxServers: 1, NumGenServers: 2, ISL: 1024, OSL: 1024, Backend: "NIXL", Concurrencies: []int{1, 2},
			Files: []events.File{{Name: "secret.sh", Data: []byte("FILE-CONTENT")}}}}})
	}
	if steps >= 2 {
		pub(events.JobSubject(run, testID, events.KindSubmitted), events.SubmittedID(run, testID, "7"),
			events.JobSubmitted{Header: h, TestID: testID, JobID: "7", Submitted: at})
		h2 := h
		h2.Time = at.Add(time.Second)
		pub(events.JobSubject(run, testID, events.KindState), events.StateID(run, testID, "7", "RUNNING"),
			events.JobState{Header: h2, TestID: testID, JobID: "7", State: "RUNNING"})
	}
	if steps >= 3 {
		pub(events.JobSubject(run, testID, events.KindCompleted), events.CompletedID(run, testID),
			events.JobCompleted{Header: h, TestID: testID, JobID: "7", State: "COMPLETED", Start: at, End: at.Add(time.Minute), NodeList: "n[1-2]"})
		var rows []events.ResultRow
		for _, c := range []int{2, 4} {
			f := float64(c)
			rows = append(rows,
				events.ResultRow{Concurrency: c, Metric: "SERVER_MEDIAN_TTFT", Value: 10 * f, Unit: "ms", Judged: true},
				events.ResultRow{Concurrency: c, Metric: "SERVER_P90_TTFT", Value: 12 * f, Unit: "ms"},
				events.ResultRow{Concurrency: c, Metric: "OUTPUT_THROUGHPUT", Value: 800 * f, Unit: "tok/s"},
				events.ResultRow{Concurrency: c, Metric: "TOTAL_THROUGHPUT", Value: 1600 * f, Unit: "tok/s"},
				events.ResultRow{Concurrency: c, Metric: "TOTAL_INPUT_TOKENS", Value: 8000, Unit: "tokens"},
				events.ResultRow{Concurrency: c, Metric: "BENCHMARK_DURATION", Value: 10, Unit: "s"},
				events.ResultRow{Concurrency: c, Metric: "USER_THROUGHPUT", Value: 100 / f, Unit: "tok/s"})
		}
		pub(events.ResultSubject(run, testID), events.ResultID(run, testID), events.Result{Header: h, TestID: testID, JobID: "7",
			State: "COMPLETED", Passed: true, Rows: rows, Start: at, End: at.Add(time.Minute), Duration: 60})
	}
	if steps >= 4 {
		h4 := h
		h4.Time = at.Add(2 * time.Minute)
		pub(events.RunFinishedSubject(run), events.FinishedID(run), events.RunFinished{Header: h4, Tests: 1, Passed: 1})
	}
}

func TestStoreFollowsARun(t *testing.T) {
	b := connect(t)
	publishRun(t, b, "r1", 2)
	store := NewStore()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	go func() { _ = Follow(ctx, b, store, quiet, func() { close(ready) }) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("history not read")
	}
	d := store.Run("r1")
	if d == nil || len(d.TestList) != 1 {
		t.Fatalf("run r1: %+v", d)
	}
	if tt := d.TestList[0]; tt.Phase != PhaseRunning || tt.JobID != "7" || tt.Topology != "ctx 1x2 gen 2x3" || tt.Backend != "NIXL" || tt.ISL != 1024 {
		t.Fatalf("running test: %+v", tt)
	}
	if d.Counts.Running != 1 || d.State != "running" {
		t.Fatalf("counts %+v state %s", d.Counts, d.State)
	}
	// Live: the rest of the run lands without a restart.
	publishRun(t, b, "r1", 4)
	checkFor(t, 10*time.Second, func() error {
		if d := store.Run("r1"); d.State != "finished" || d.Counts.Passed != 1 {
			return fmt.Errorf("run not finished: %+v", d.Run)
		}
		return nil
	})
	tt := store.Run("r1").TestList[0]
	if tt.Verdict != "PASSED" || tt.Nodes != "n[1-2]" || len(tt.Points) != 2 {
		t.Fatalf("finished test: %+v", tt)
	}
	p := tt.Points[1] // concurrency 4 on 8 GPUs
	if p.Concurrency != 4 || *p.OutputPerGPU != 400 || *p.TotalPerGPU != 800 || *p.InputPerGPU != 100 || *p.PerUser != 25 || p.Metrics["SERVER_P90_TTFT"] != 48 {
		t.Fatalf("point %+v", p)
	}
	if d := store.Run("r1"); d.Duration != 120 {
		t.Fatalf("run duration %v, want 120 s", d.Duration)
	}
}

// sse reads server-sent events: id and data of each.
type sse struct {
	id   uint64
	data StreamEvent
}

func readSSE(t *testing.T, body io.Reader, n int, out chan<- sse) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sse
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseUint(line[4:], 10, 64)
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(line[6:]), &cur.data); err != nil {
				t.Errorf("data %q: %v", line, err)
			}
		case line == "" && cur.id != 0:
			out <- cur
			cur = sse{}
		}
	}
	close(out)
}

func openSSE(t *testing.T, ctx context.Context, url, lastID string) <-chan sse {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sse, 100)
	go readSSE(t, resp.Body, 0, ch)
	return ch
}

func next(t *testing.T, ch <-chan sse) sse {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("event stream closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return sse{}
}

func TestServerAPIAndResumableEvents(t *testing.T) {
	b := connect(t)
	publishRun(t, b, "r1", 2)
	publishRun(t, b, "other", 1)
	store := NewStore()
	srv := NewServer(b, store, quiet)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if resp, err := http.Get(ts.URL + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("readyz before the history was read: %v %v", resp.StatusCode, err)
	}
	go func() { _ = Follow(ctx, b, store, quiet, srv.SetReady) }()
	checkFor(t, 10*time.Second, func() error {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("not ready: %v", err)
		}
		return nil
	})

	// /events: ids are stream sequences; ?run= keeps one run.
	ch := openSSE(t, ctx, ts.URL+"/events?run=r1", "")
	var got []sse
	for range 4 { // started, batch, submitted, state
		got = append(got, next(t, ch))
	}
	kinds := []string{"run.started", "batch", "job.submitted", "job.state"}
	for i, e := range got {
		if e.data.Kind != kinds[i] || e.data.RunID != "r1" || e.id != e.data.Seq {
			t.Fatalf("event %d: id %d %+v", i, e.id, e.data)
		}
		if i > 0 && e.id <= got[i-1].id {
			t.Fatalf("ids not increasing: %d after %d", e.id, got[i-1].id)
		}
	}
	if strings.Contains(string(got[1].data.Event), "FILE-CONTENT") {
		t.Fatal("a batch's job files reached /events")
	}
	// The rest of the run arrives live on the open stream...
	publishRun(t, b, "r1", 4)
	live := []sse{next(t, ch), next(t, ch), next(t, ch)}
	if live[0].data.Kind != "job.completed" || live[1].data.Kind != "result" || live[2].data.Kind != "run.finished" {
		t.Fatalf("live events: %+v", live)
	}
	// ... and once a client was sent an event, the API already shows it.
	resp, err := http.Get(ts.URL + "/api/runs/r1")
	if err != nil {
		t.Fatal(err)
	}
	var run struct {
		Seq      uint64  `json:"seq"`
		State    string  `json:"state"`
		TestList []*Test `json:"test_list"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&run); err != nil {
		t.Fatal(err)
	}
	if run.Seq < live[2].id || run.State != "finished" || len(run.TestList) != 1 || run.TestList[0].Verdict != "PASSED" || len(run.TestList[0].Points) != 2 {
		t.Fatalf("/api/runs/r1 after the finished event %d: %+v", live[2].id, run)
	}
	// A browser that reconnects with Last-Event-ID gets exactly what followed.
	ch2 := openSSE(t, ctx, ts.URL+"/events?run=r1", strconv.FormatUint(got[2].id, 10))
	for i, want := range []uint64{got[3].id, live[0].id, live[1].id, live[2].id} {
		if e := next(t, ch2); e.id != want {
			t.Fatalf("resumed event %d: id %d, want %d", i, e.id, want)
		}
	}

	var runs runsResponse
	resp, err = http.Get(ts.URL + "/api/runs")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&runs); err != nil || len(runs.Runs) != 2 {
		t.Fatalf("/api/runs: %v %+v", err, runs)
	}
	if resp, _ := http.Get(ts.URL + "/api/runs/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown run: %s", resp.Status)
	}
	resp, _ = http.Get(ts.URL + "/metrics")
	m, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(m), "disaggbench_dashboard_ready 1") || !strings.Contains(string(m), "disaggbench_dashboard_runs 2") ||
		!strings.Contains(string(m), "disaggbench_dashboard_sse_clients 2") {
		t.Fatalf("/metrics:\n%s", m)
	}
	resp, _ = http.Get(ts.URL + "/")
	page, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(page), `src="/static/app.js"`) || strings.Contains(string(page), "http") {
		t.Fatalf("index page:\n%s", page)
	}
	for _, p := range []string{"/static/app.js", "/static/chart.umd.min.js", "/static/app.css"} {
		if resp, _ := http.Get(ts.URL + p); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", p, resp.Status)
		}
	}

	// The dashboard's consumers are ordered ones: ephemeral and never acknowledging.
	names := b.Stream.ListConsumers(ctx)
	n := 0
	for ci := range names.Info() {
		n++
		if ci.Config.Durable != "" || ci.Config.AckPolicy != jetstream.AckNonePolicy {
			t.Errorf("consumer %s: durable %q, ack policy %v", ci.Name, ci.Config.Durable, ci.Config.AckPolicy)
		}
	}
	if n < 3 { // the follower and two event streams
		t.Errorf("%d consumers on the stream, want the follower's and two streams'", n)
	}
}

func TestReportIsSelfContained(t *testing.T) {
	b := connect(t)
	publishRun(t, b, "r1", 4)
	publishRun(t, b, "r2", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	page, err := Report(ctx, b, []string{"r1", "r2"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	if len(page) > 3<<20 || strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, `src="/`) {
		t.Fatalf("report of %d bytes names an address or loads a file", len(page))
	}
	i := strings.Index(s, `<script type="application/json" id="report-data">`)
	j := strings.Index(s[i:], "</script>")
	var data ReportData
	if i < 0 || j < 0 || json.Unmarshal([]byte(s[i+len(`<script type="application/json" id="report-data">`):i+j]), &data) != nil {
		t.Fatal("report carries no data")
	}
	if len(data.Runs) != 2 || len(data.Runs[0].TestList[0].Points) != 2 || !strings.Contains(s, "Chart.js v4.6.1") {
		t.Fatalf("report data: %+v", data.Runs)
	}
	if _, err := Report(ctx, b, []string{"r1", "missing"}, quiet); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("report of an unknown run: %v", err)
	}
}

// TestVendoredChartJS keeps the vendored library equal to the recorded checksum.
func TestVendoredChartJS(t *testing.T) {
	data, err := os.ReadFile("web/chart.umd.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	doc, err := os.ReadFile("web/CHARTJS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), hex.EncodeToString(sum[:])) || !strings.Contains(string(data), "Chart.js v4.6.1") {
		t.Fatalf("web/chart.umd.min.js (sha256 %x) is not the version CHARTJS.md records", sum)
	}
}
