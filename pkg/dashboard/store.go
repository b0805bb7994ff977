// Package dashboard follows the pipeline's events (and nothing else) and serves what a
// person wants to see of them: the runs and their progress, each test's state, verdict
// and numbers, the Pareto, latency and comparison views, a server-sent event stream that
// a browser resumes without a gap, and a self-contained HTML report.
//
// A dashboard reads the BENCH stream through ordered consumers only: they are ephemeral,
// never acknowledge, and leave the stages' durable consumers alone, so any number of
// dashboards can follow one NATS server.
package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// Test phases, as the runs page counts them.
const (
	PhasePending = "pending" // published, not yet taken by the scheduler
	PhaseQueued  = "queued"  // submitted, waiting for nodes
	PhaseRunning = "running"
	PhaseEnded   = "ended" // the job is over; the verdict is not in yet
	PhaseDone    = "done"  // the verdict is in
)

// Counts is a run's progress.
type Counts struct {
	Pending int `json:"pending"`
	Queued  int `json:"queued"`
	Running int `json:"running"`
	Ended   int `json:"ended"`
	Done    int `json:"done"`
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
}

// Run is one run as its events tell it.
type Run struct {
	ID        string        `json:"id"`
	State     string        `json:"state"` // running or finished
	Started   time.Time     `json:"started,omitzero"`
	Finished  time.Time     `json:"finished,omitzero"`
	Duration  float64       `json:"duration_s"` // to Finished, or to the last event while running
	LastEvent time.Time     `json:"last_event,omitzero"`
	Tests     int           `json:"tests"`
	Invalid   int           `json:"invalid,omitempty"`
	Skipped   []events.Skip `json:"skipped,omitempty"`
	BatchSize int           `json:"batch_size"`
	Policy    string        `json:"policy,omitempty"`
	Scheduler string        `json:"scheduler,omitempty"`
	GPUType   string        `json:"gpu_type,omitempty"`
	Selection string        `json:"selection,omitempty"`
	Host      string        `json:"host,omitempty"`
	Counts    Counts        `json:"counts"`

	tests map[string]*Test
	order []string
}

// Test is one test of a run: what it is (from its batch), where its job is, its verdict
// and its numbers.
type Test struct {
	ID            string   `json:"id"`
	Index         int      `json:"index"`
	TestType      string   `json:"test_type,omitempty"`
	Category      string   `json:"category,omitempty"`
	Model         string   `json:"model,omitempty"`
	Precision     string   `json:"precision,omitempty"`
	GPUType       string   `json:"gpu_type,omitempty"`
	ISL           int      `json:"isl,omitempty"`
	OSL           int      `json:"osl,omitempty"`
	Backend       string   `json:"backend,omitempty"`
	CtxGPUs       int      `json:"ctx_gpus"`
	GenGPUs       int      `json:"gen_gpus"`
	NumCtxServers int      `json:"num_ctx_servers,omitempty"`
	NumGenServers int      `json:"num_gen_servers,omitempty"`
	Topology      string   `json:"topology,omitempty"`
	Concurrencies []int    `json:"concurrencies,omitempty"`
	Phase         string   `json:"phase"`
	State         string   `json:"state,omitempty"` // the scheduler's last word
	Detail        string   `json:"detail,omitempty"`
	JobID         string   `json:"job_id,omitempty"`
	Nodes         string   `json:"nodes,omitempty"`
	ExitCode      *int     `json:"exit_code,omitempty"`
	Verdict       string   `json:"verdict,omitempty"` // PASSED or FAILED
	Partial       bool     `json:"partial,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
	LogDir        string   `json:"log_dir,omitempty"`

	Submitted time.Time `json:"submitted,omitzero"`
	Start     time.Time `json:"start,omitzero"`
	End       time.Time `json:"end,omitzero"`
	Duration  float64   `json:"duration_s,omitempty"`

	Rows   []events.ResultRow `json:"rows,omitempty"`
	Points []Point            `json:"points,omitempty"`
}

// Point is one concurrency of a perf test: every number the client printed for it, and
// the Pareto chart's coordinates.
type Point struct {
	Concurrency int                `json:"concurrency"`
	Metrics     map[string]float64 `json:"metrics"`
	// OutputPerGPU, InputPerGPU and TotalPerGPU are output, input (input tokens over the
	// benchmark duration) and total token throughput divided by all GPUs (ctx + gen);
	// PerUser is the client's user throughput. Null when the numbers are missing.
	OutputPerGPU *float64 `json:"output_tok_s_per_gpu"`
	InputPerGPU  *float64 `json:"input_tok_s_per_gpu"`
	TotalPerGPU  *float64 `json:"total_tok_s_per_gpu"`
	PerUser      *float64 `json:"tok_s_per_user"`
}

// RunDetail is a run with its tests, in run order.
type RunDetail struct {
	Run
	TestList []*Test `json:"test_list"`
}

// Store is the dashboard's picture of every run, built from the events in stream order.
type Store struct {
	mu      sync.RWMutex
	runs    map[string]*Run
	seq     uint64 // last stream sequence applied
	applied uint64 // events applied
	bad     uint64 // events that did not decode
	advance chan struct{}
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{runs: map[string]*Run{}, advance: make(chan struct{})}
}

// Seq is the stream sequence of the last event applied.
func (s *Store) Seq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.seq
}

// WaitSeq returns once the event at stream sequence seq (or a later one) was applied, so
// that what the API shows is never behind an event a client was just sent.
func (s *Store) WaitSeq(ctx context.Context, seq uint64) error {
	for {
		s.mu.RLock()
		done, ch := s.seq >= seq, s.advance
		s.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// header is what every event carries.
type header struct {
	RunID  string    `json:"run_id"`
	Time   time.Time `json:"time"`
	TestID string    `json:"test_id"`
}

// Kind names an event by its subject: run.started, run.finished, batch, job.submitted,
// job.state, job.completed, result; "" for a subject outside the contract.
func Kind(subject string) string {
	sub, _ := events.ParseSubject(subject)
	return sub.Kind
}

// Apply folds one event into the store. An event that does not decode is counted and
// reported, and changes nothing.
func (s *Store) Apply(seq uint64, subject string, data []byte) error {
	s.mu.Lock()
	defer func() {
		if seq > s.seq {
			s.seq = seq
			close(s.advance)
			s.advance = make(chan struct{})
		}
		s.mu.Unlock()
	}()
	err := s.apply(subject, data)
	if err != nil {
		s.bad++
		return fmt.Errorf("event %d on %s: %w", seq, subject, err)
	}
	s.applied++
	return nil
}

func (s *Store) apply(subject string, data []byte) error {
	kind := Kind(subject)
	if kind == "" {
		return nil // not ours to read
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return err
	}
	if h.RunID == "" {
		return fmt.Errorf("no run_id")
	}
	r := s.run(h.RunID)
	if h.Time.After(r.LastEvent) {
		r.LastEvent = h.Time
	}
	if err := r.apply(kind, data); err != nil {
		return err
	}
	r.count()
	return nil
}

// apply folds one decoded-header event of the run into it.
func (r *Run) apply(kind string, data []byte) error {
	switch kind {
	case "run.started":
		return r.started(data)
	case "run.finished":
		return r.finished(data)
	case "batch":
		return r.batch(data)
	case "job.submitted":
		return r.submitted(data)
	case "job.state":
		return r.state(data)
	case "job.completed":
		return r.completed(data)
	case "result":
		return r.result(data)
	}
	return nil
}

// started records the run's selection and its tests.
func (r *Run) started(data []byte) error {
	var e events.RunStarted
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	r.Started, r.Tests, r.Invalid, r.Skipped = e.Time, e.Tests, e.Invalid, e.Skipped
	r.BatchSize, r.Policy, r.Scheduler, r.GPUType = e.BatchSize, e.Policy, e.Scheduler, e.GPUType
	r.Selection, r.Host = e.Selection, e.Host
	for i, id := range e.TestIDs {
		t := r.test(id)
		if t.Index == 0 {
			t.Index = i
		}
	}
	return nil
}

// finished closes the run.
func (r *Run) finished(data []byte) error {
	var e events.RunFinished
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	r.State, r.Finished = "finished", e.Time
	if r.Tests == 0 {
		r.Tests = e.Tests
	}
	return nil
}

// batch records the specs of a batch's tests.
func (r *Run) batch(data []byte) error {
	var e events.Batch
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	if r.Tests == 0 {
		r.Tests = e.Tests
	}
	for i := range e.Jobs {
		r.test(e.Jobs[i].TestID).spec(&e.Jobs[i])
	}
	return nil
}

// submitted records a test's job.
func (r *Run) submitted(data []byte) error {
	var e events.JobSubmitted
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	t := r.test(e.TestID)
	t.JobID, t.Submitted, t.LogDir = e.JobID, e.Submitted, e.LogDir
	if t.Phase == PhasePending {
		t.Phase = PhaseQueued
	}
	return nil
}

// state moves a test along its phases as the scheduler reports it.
func (r *Run) state(data []byte) error {
	var e events.JobState
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	t := r.test(e.TestID)
	t.State, t.Detail, t.JobID = e.State, e.Detail, cmpOr(e.JobID, t.JobID)
	if t.Phase == PhaseDone || t.Phase == PhaseEnded {
		return nil
	}
	switch e.State {
	case "PENDING", "REQUEUED", "CONFIGURING", events.StateQuotaWait, events.StateRetry:
		t.Phase = PhaseQueued
	case "RUNNING", "COMPLETING":
		if t.Phase != PhaseRunning {
			t.Phase = PhaseRunning
			if t.Start.IsZero() {
				t.Start = e.Time // seen running; the completion brings the exact start
			}
		}
	}
	return nil
}

// completed records a job's end as the scheduler tells it.
func (r *Run) completed(data []byte) error {
	var e events.JobCompleted
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	t := r.test(e.TestID)
	if e.Spec != nil {
		t.spec(e.Spec)
	}
	t.State, t.Detail, t.JobID, t.Nodes = e.State, e.Detail, cmpOr(e.JobID, t.JobID), e.NodeList
	code := e.ExitCode
	t.ExitCode = &code
	if !e.Start.IsZero() {
		t.Start = e.Start
	}
	if !e.End.IsZero() {
		t.End = e.End
	}
	if !e.Submit.IsZero() && t.Submitted.IsZero() {
		t.Submitted = e.Submit
	}
	if t.Phase != PhaseDone {
		t.Phase = PhaseEnded
	}
	if len(e.Reasons) > 0 && len(t.Reasons) == 0 {
		t.Reasons = e.Reasons
	}
	return nil
}

// result records the collector's verdict and values.
func (r *Run) result(data []byte) error {
	var e events.Result
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	t := r.test(e.TestID)
	t.Phase, t.Verdict, t.Partial, t.Reasons, t.Rows = PhaseDone, e.Verdict(), e.Partial, e.Reasons, e.Rows
	t.State, t.JobID, t.Duration = cmpOr(e.State, t.State), cmpOr(e.JobID, t.JobID), e.Duration
	if !e.Start.IsZero() {
		t.Start = e.Start
	}
	if !e.End.IsZero() {
		t.End = e.End
	}
	t.points()
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Store) run(id string) *Run {
	r := s.runs[id]
	if r == nil {
		r = &Run{ID: id, State: "running", tests: map[string]*Test{}}
		s.runs[id] = r
	}
	return r
}

func (r *Run) test(id string) *Test {
	t := r.tests[id]
	if t == nil {
		t = &Test{ID: id, Index: len(r.order), Phase: PhasePending}
		r.tests[id] = t
		r.order = append(r.order, id)
	}
	return t
}

func (t *Test) spec(j *events.JobSpec) {
	t.Index, t.TestType, t.Category, t.Model, t.Precision = j.Index, j.TestType, j.Category, j.Model, j.Precision
	t.GPUType, t.ISL, t.OSL, t.Backend = j.GPUType, j.ISL, j.OSL, j.Backend
	t.CtxGPUs, t.GenGPUs, t.NumCtxServers, t.NumGenServers = j.CtxGPUs, j.GenGPUs, j.NumCtxServers, j.NumGenServers
	t.Concurrencies = j.Concurrencies
	t.Topology = Topology(j.NumCtxServers, j.CtxGPUs, j.NumGenServers, j.GenGPUs)
	if t.Rows != nil {
		t.points() // the result came first
	}
}

// Topology labels a test's layout: "ctx 1x2 gen 4x8" is one ctx server of 2 GPUs and four
// gen servers of 8; without server counts, the GPU totals ("ctx 2 gen 32 GPUs").
func Topology(ctxServers, ctxGPUs, genServers, genGPUs int) string {
	if ctxGPUs == 0 && genGPUs == 0 {
		return ""
	}
	if ctxServers > 0 && genServers > 0 {
		return fmt.Sprintf("ctx %dx%d gen %dx%d", ctxServers, ctxGPUs/ctxServers, genServers, genGPUs/genServers)
	}
	return fmt.Sprintf("ctx %d gen %d GPUs", ctxGPUs, genGPUs)
}

// points groups a perf result's rows by concurrency and works out the per-GPU numbers.
func (t *Test) points() {
	byC := map[int]*Point{}
	var order []int
	for _, row := range t.Rows {
		if row.Concurrency == 0 || row.Dataset != "" {
			continue
		}
		p := byC[row.Concurrency]
		if p == nil {
			p = &Point{Concurrency: row.Concurrency, Metrics: map[string]float64{}}
			byC[row.Concurrency] = p
			order = append(order, row.Concurrency)
		}
		if !math.IsNaN(row.Value) && !math.IsInf(row.Value, 0) {
			p.Metrics[row.Metric] = row.Value
		}
	}
	sort.Ints(order)
	gpus := float64(t.CtxGPUs + t.GenGPUs)
	t.Points = nil // a new slice: copies handed out keep the old one
	for _, c := range order {
		p := byC[c]
		m := p.Metrics
		if gpus > 0 {
			if v, ok := m["OUTPUT_THROUGHPUT"]; ok {
				p.OutputPerGPU = ptr(v / gpus)
			}
			if v, ok := m["TOTAL_THROUGHPUT"]; ok {
				p.TotalPerGPU = ptr(v / gpus)
			}
			if in, ok := m["TOTAL_INPUT_TOKENS"]; ok {
				if d := m["BENCHMARK_DURATION"]; d > 0 {
					p.InputPerGPU = ptr(in / d / gpus)
				}
			}
		}
		if v, ok := m["USER_THROUGHPUT"]; ok {
			p.PerUser = ptr(v)
		}
		t.Points = append(t.Points, *p)
	}
}

func ptr(v float64) *float64 { return &v }

// count recomputes a run's progress from its tests.
func (r *Run) count() {
	var c Counts
	for _, t := range r.tests {
		switch t.Phase {
		case PhasePending:
			c.Pending++
		case PhaseQueued:
			c.Queued++
		case PhaseRunning:
			c.Running++
		case PhaseEnded:
			c.Ended++
		case PhaseDone:
			c.Done++
			if t.Verdict == "PASSED" {
				c.Passed++
			} else {
				c.Failed++
			}
		}
	}
	// Tests announced by count but not yet seen by id are pending too.
	if n := r.Tests - len(r.tests); n > 0 {
		c.Pending += n
	}
	r.Counts = c
	end := r.LastEvent
	if !r.Finished.IsZero() {
		end = r.Finished
	}
	if !r.Started.IsZero() && end.After(r.Started) {
		r.Duration = end.Sub(r.Started).Seconds()
	}
}

// Runs lists every run, newest first.
func (s *Store) Runs() []Run {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Run, 0, len(s.runs))
	for _, r := range s.runs {
		c := *r
		c.tests, c.order = nil, nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.After(out[j].Started)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Run returns one run with its tests in run order (copies), or nil.
func (s *Store) Run(id string) *RunDetail {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.runs[id]
	if r == nil {
		return nil
	}
	d := &RunDetail{Run: *r}
	d.tests, d.order = nil, nil
	for _, id := range r.order {
		t := *r.tests[id]
		d.TestList = append(d.TestList, &t)
	}
	sort.SliceStable(d.TestList, func(i, j int) bool { return d.TestList[i].Index < d.TestList[j].Index })
	return d
}

// Stats is what /metrics reports.
type Stats struct {
	Seq, Applied, Bad uint64
	Runs              int
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Stats{Seq: s.seq, Applied: s.applied, Bad: s.bad, Runs: len(s.runs)}
}
