package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

//go:embed web
var webFS embed.FS

// Server serves the dashboard's pages, its JSON API and its event stream.
type Server struct {
	bus     *bus.Bus
	store   *Store
	log     *slog.Logger
	ready   atomic.Bool
	clients atomic.Int64
	sent    atomic.Uint64
	mux     *http.ServeMux
	// KeepAlive is how often an idle event stream gets a comment line (default 15 s), so
	// proxies and browsers keep it open.
	KeepAlive time.Duration
}

// NewServer serves store's picture; b is read for the event stream.
func NewServer(b *bus.Bus, store *Store, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{bus: b, store: store, log: log, mux: http.NewServeMux(), KeepAlive: 15 * time.Second}
	static, _ := fs.Sub(webFS, "web")
	s.mux.HandleFunc("GET /{$}", s.index)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /api/runs", s.apiRuns)
	s.mux.HandleFunc("GET /api/runs/{id}", s.apiRun)
	s.mux.HandleFunc("GET /events", s.events)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	return s
}

// SetReady marks the history as read: /readyz answers 200 from then on.
func (s *Server) SetReady() { s.ready.Store(true) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// Run follows the stream into the store and serves on addr until ctx ends.
func (s *Server) Run(ctx context.Context, addr string) error {
	hs := &http.Server{Addr: addr, Handler: s, ReadHeaderTimeout: 10 * time.Second}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	s.log.Info("dashboard listening", "url", "http://"+ln.Addr().String()+"/")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Requests live in ctx, so a stop ends the open event streams instead of waiting on them.
	hs.BaseContext = func(net.Listener) context.Context { return ctx }
	errc := make(chan error, 2)
	go func() {
		err := Follow(ctx, s.bus, s.store, s.log, s.SetReady)
		if err != nil {
			err = fmt.Errorf("following events: %w", err)
		}
		errc <- err
	}()
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	cancel()
	shut, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = hs.Shutdown(shut)
	return runErr
}

func (s *Server) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
	page, err := Page(nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(page)
}

// runsResponse is GET /api/runs.
type runsResponse struct {
	Seq  uint64 `json:"seq"`
	Runs []Run  `json:"runs"`
}

// runResponse is GET /api/runs/{id}.
type runResponse struct {
	Seq uint64 `json:"seq"`
	*RunDetail
}

func (s *Server) apiRuns(w http.ResponseWriter, _ *http.Request) {
	seq := s.store.Seq()
	writeJSON(w, runsResponse{Seq: seq, Runs: s.store.Runs()})
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	seq := s.store.Seq()
	d := s.store.Run(r.PathValue("id"))
	if d == nil {
		http.Error(w, "no run "+strconv.Quote(r.PathValue("id")), http.StatusNotFound)
		return
	}
	writeJSON(w, runResponse{Seq: seq, RunDetail: d})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "reading the event history", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (s *Server) metrics(w http.ResponseWriter, _ *http.Request) {
	st := s.store.Stats()
	ready := 0
	if s.ready.Load() {
		ready = 1
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, m := range []struct {
		name, typ, help string
		v               any
	}{
		{"disaggbench_dashboard_ready", "gauge", "1 once the event history was read", ready},
		{"disaggbench_dashboard_stream_sequence", "gauge", "stream sequence of the last event applied", st.Seq},
		{"disaggbench_dashboard_events_applied_total", "counter", "events applied to the dashboard's picture", st.Applied},
		{"disaggbench_dashboard_events_bad_total", "counter", "events that did not decode", st.Bad},
		{"disaggbench_dashboard_runs", "gauge", "runs known", st.Runs},
		{"disaggbench_dashboard_sse_clients", "gauge", "open /events streams", s.clients.Load()},
		{"disaggbench_dashboard_sse_events_sent_total", "counter", "events sent on /events streams", s.sent.Load()},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", m.name, m.help, m.name, m.typ, m.name, m.v)
	}
}

// StreamEvent is one message of GET /events: the event as published, under its subject
// and stream sequence (also the SSE id). A batch's jobs come without their files and
// scheduler request.
type StreamEvent struct {
	Seq     uint64          `json:"seq"`
	Subject string          `json:"subject"`
	Kind    string          `json:"kind"`
	RunID   string          `json:"run_id"`
	TestID  string          `json:"test_id,omitempty"`
	Event   json.RawMessage `json:"event"`
}

// events streams the events as server-sent events whose ids are stream sequences. A
// client resumes after the id it last saw (the Last-Event-ID header a browser sends when
// it reconnects, or ?after=N); without either it gets the whole history, then live
// events. ?run=ID keeps one run's events.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	after, err := lastEventID(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	msgs, stop, err := s.eventStream(ctx, r.URL.Query().Get("run"), after)
	if err != nil {
		http.Error(w, "event stream: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer stop()
	s.clients.Add(1)
	defer s.clients.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	fmt.Fprint(w, "retry: 1000\n: disaggbench events\n\n")
	fl.Flush()
	tick := time.NewTicker(s.KeepAlive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			fl.Flush()
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if !s.send(ctx, w, m) {
				return
			}
			fl.Flush()
		}
	}
}

// lastEventID is the sequence the client has seen: Last-Event-ID or ?after=, the later.
func lastEventID(r *http.Request) (uint64, error) {
	var after uint64
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("after")} {
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad event id %s", strconv.Quote(v))
		}
		after = max(after, n)
	}
	return after, nil
}

// eventStream delivers the stream's events (of one run, or all) after a sequence
// through an ordered reader; stop ends it.
func (s *Server) eventStream(ctx context.Context, run string, after uint64) (<-chan bus.Message, func(), error) {
	filter := events.Subjects
	if run != "" {
		filter = events.RunFilter(run)
	}
	r, err := s.bus.Read(ctx, bus.ReadOptions{Filter: filter, AfterSeq: after, Ordered: true})
	if err != nil {
		return nil, nil, err
	}
	msgs := make(chan bus.Message)
	go func() {
		defer close(msgs)
		for {
			m, err := r.Next()
			if err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, r.Stop, nil
}

// send writes one event to the client once the store has applied it (what /api shows
// must not lag behind an event the client was sent); false: the client is gone.
func (s *Server) send(ctx context.Context, w io.Writer, m bus.Message) bool {
	seq := m.Seq
	if seq == 0 {
		return true
	}
	if err := s.store.WaitSeq(ctx, seq); err != nil {
		return false
	}
	data, err := streamEvent(seq, m.Subject, m.Data)
	if err != nil {
		s.log.Warn("event not sent", "seq", seq, "subject", m.Subject, "err", err)
		return true
	}
	fmt.Fprintf(w, "id: %d\ndata: %s\n\n", seq, data)
	s.sent.Add(1)
	return true
}

// streamEvent encodes one event for /events.
func streamEvent(seq uint64, subject string, data []byte) ([]byte, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, err
	}
	e := StreamEvent{Seq: seq, Subject: subject, Kind: Kind(subject), RunID: h.RunID, TestID: h.TestID, Event: data}
	if e.Kind == "batch" {
		var b events.BatchOf[json.RawMessage]
		if err := json.Unmarshal(data, &b); err != nil {
			return nil, err
		}
		var err error
		for i, raw := range b.Jobs {
			var j events.JobSpec
			if err := json.Unmarshal(raw, &j); err != nil {
				return nil, err
			}
			j.Files, j.Request = nil, scheduler.JobRequest{} // the files and the sbatch request are the submitter's business
			if b.Jobs[i], err = json.Marshal(j); err != nil {
				return nil, err
			}
		}
		if e.Event, err = json.Marshal(b); err != nil {
			return nil, err
		}
	}
	return json.Marshal(e)
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dashboard: listen on %s: %w", addr, err)
	}
	return ln, nil
}
