// Package progress follows a run through its events: each test's state and problems,
// the counts, the summary and the JUnit report, and the run's cancellation. It reads the
// bus and the ledger and never needs the stages in the same process.
package progress

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Progress is what a run's events say so far.
type Progress struct {
	RunID    string
	Started  *events.RunStarted
	Finished *events.RunFinished
	Tests    map[string]*TestProgress
	First    time.Time
	Last     time.Time
	// Kind is the kind of the event applied last (events.Subject.Kind): "run.started",
	// "run.finished", "batch", "job.submitted", "job.state", ..., "result".
	Kind string
}

// TestProgress is one test's story.
type TestProgress struct {
	TestID  string
	JobID   string
	State   string          // scheduler state, or QUEUED before submission
	Running time.Time       // when the job was first seen running
	Ended   bool            // the job is over (or never ran); its result may still be pending
	Problem *events.Problem // a stage cannot make progress on it (until its result)
	Result  *events.Result
}

// Tally counts a run's tests; every test is in exactly one of Queued, Running,
// Collecting and Done.
type Tally struct {
	Queued     int // not submitted yet
	Running    int // submitted, not over
	Collecting int // over, its result not collected yet
	Done       int // with a result
	Failed     int // of Done, failed
}

// Counts places every test of the run in one bucket.
func (p *Progress) Counts() Tally {
	var c Tally
	for _, t := range p.Tests {
		switch {
		case t.Result != nil:
			c.Done++
			if !t.Result.Passed {
				c.Failed++
			}
		case t.Ended || scheduler.IsTerminal(t.State):
			c.Collecting++
		case t.JobID != "":
			c.Running++
		default:
			c.Queued++
		}
	}
	return c
}

// Line is the one-line progress: the counts, then the running tests with their time.
func (c Tally) String() string {
	s := fmt.Sprintf("queued %d  running %d  collecting %d  done %d  failed %d", c.Queued, c.Running, c.Collecting, c.Done, c.Failed)
	return s
}

// Problems are the tests a stage cannot make progress on now, by test id.
func (p *Progress) Problems() []*TestProgress {
	var out []*TestProgress
	for _, t := range p.sortedTests() {
		if t.Result == nil && t.Problem != nil {
			out = append(out, t)
		}
	}
	return out
}

// RunningTests are the tests running now, the longest running first.
func (p *Progress) RunningTests() []*TestProgress {
	var out []*TestProgress
	for _, t := range p.Tests {
		if t.Result == nil && !t.Ended && t.JobID != "" && !scheduler.IsTerminal(t.State) && !t.Running.IsZero() {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Running.Equal(out[j].Running) {
			return out[i].Running.Before(out[j].Running)
		}
		return out[i].TestID < out[j].TestID
	})
	return out
}

func (p *Progress) test(id string) *TestProgress {
	t, ok := p.Tests[id]
	if !ok {
		t = &TestProgress{TestID: id, State: "QUEUED"}
		p.Tests[id] = t
	}
	return t
}

// apply folds one event into the progress; it returns a one-line description.
func (p *Progress) apply(subject string, data []byte) (string, error) {
	sub, ok := events.ParseSubject(subject)
	p.Kind = sub.Kind
	if !ok {
		return "", nil
	}
	switch sub.Kind {
	case "run.started":
		var ev events.RunStarted
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		p.Started = &ev
		for _, id := range ev.TestIDs {
			p.test(id)
		}
		return fmt.Sprintf("run %s started: %s, batch size %d, policy %s", ev.RunID, Count(ev.Tests, "test"), ev.BatchSize, ev.Policy), nil
	case "run.finished":
		var ev events.RunFinished
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		p.Finished = &ev
		return fmt.Sprintf("run %s finished: %d passed, %d failed", ev.RunID, ev.Passed, ev.Failed), nil
	case "batch":
		var ev events.Batch
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		return fmt.Sprintf("batch %d/%d published (%d jobs)", ev.Index+1, ev.Total, len(ev.Jobs)), nil
	case "result":
		return p.applyResult(data)
	}
	return p.applyJob(sub, data)
}

// applyJob folds a job event (submitted, state, problem, completed) into its test.
func (p *Progress) applyJob(sub events.Subject, data []byte) (string, error) {
	test := sub.Test
	t := p.test(test)
	switch strings.TrimPrefix(sub.Kind, "job.") {
	case events.KindSubmitted:
		var ev events.JobSubmitted
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		t.JobID = ev.JobID
		if t.Problem != nil && t.Problem.Stage == "submitter" {
			t.Problem = nil // submitted after all
		}
		if t.State == "QUEUED" || t.State == events.StateRetry {
			t.State = scheduler.Pending
		}
		if a := events.AttemptOf(ev.Attempt); a > 1 {
			return fmt.Sprintf("job %s <- %s submitted (attempt %d, excluding %s)", ev.JobID, test, a, strings.Join(ev.Exclude, ",")), nil
		}
		return fmt.Sprintf("job %s <- %s submitted", ev.JobID, test), nil
	case events.KindState:
		var ev events.JobState
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		if !scheduler.IsTerminal(t.State) {
			t.State = ev.State
		}
		if ev.State == scheduler.Running && t.Running.IsZero() {
			t.Running = ev.Time
		}
		if ev.JobID == "" {
			return fmt.Sprintf("%s waits: %s (%s)", test, strings.ToLower(strings.ReplaceAll(ev.State, "_", " ")), ev.Reason), nil
		}
		msg := fmt.Sprintf("%s %s", jobLabel(ev.JobID, test), ev.Detail)
		if ev.Reason != "" && ev.Reason != "None" {
			msg += " (" + ev.Reason + ")"
		}
		return msg, nil
	case events.KindProblem:
		var ev events.Problem
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		return t.problem(&ev), nil
	case events.KindCompleted:
		var ev events.JobCompleted
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		t.State, t.Ended = ev.State, true
		if ev.JobID != "" {
			t.JobID = ev.JobID
		}
		return fmt.Sprintf("%s completed: %s", jobLabel(ev.JobID, test), cmp.Or(ev.Detail, ev.State)), nil
	}
	return "", nil
}

// problem records a stage's problem with the test, or its end.
func (t *TestProgress) problem(ev *events.Problem) string {
	if ev.Resolved {
		if t.Problem != nil && t.Problem.Stage == ev.Stage {
			t.Problem = nil
		}
		return fmt.Sprintf("RESOLVED %s: %s makes progress again", t.TestID, ev.Stage)
	}
	t.Problem = ev
	if ev.GiveUp.IsZero() {
		return fmt.Sprintf("PROBLEM %s: %s cannot make progress: %s (waits until it recovers)", t.TestID, ev.Stage, ev.Reason)
	}
	return fmt.Sprintf("PROBLEM %s: %s cannot make progress: %s (fails at %s unless it recovers)",
		t.TestID, ev.Stage, ev.Reason, ev.GiveUp.Local().Format("15:04:05"))
}

func (p *Progress) applyResult(data []byte) (string, error) {
	var ev events.Result
	if err := json.Unmarshal(data, &ev); err != nil {
		return "", err
	}
	t := p.test(ev.TestID)
	t.Result, t.Problem = &ev, nil
	if ev.State != "" {
		t.State = ev.State
	}
	line := fmt.Sprintf("%s %s", ev.Verdict(), ev.TestID)
	if len(ev.Reasons) > 0 {
		line += ": " + strings.Join(ev.Reasons, "; ")
	}
	return line, nil
}

// ErrUnknownRun is returned for a run id that the store has no record of.
var ErrUnknownRun = errors.New("unknown run")

// Lookup reads a run's record; a run the store does not know is ErrUnknownRun, named.
func Lookup(ctx context.Context, b *bus.Bus, run string) (*events.RunRecord, error) {
	if run == "" {
		return nil, fmt.Errorf("%w: empty run id", ErrUnknownRun)
	}
	l := ledger.New(b)
	rec, err := l.Run(ctx, run)
	// A cluster replacing a server answers again within seconds.
	for began := time.Now(); err != nil && bus.IsTransient(err) && ctx.Err() == nil && time.Since(began) < 30*time.Second; {
		time.Sleep(500 * time.Millisecond)
		rec, err = l.Run(ctx, run)
	}
	if err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return nil, fmt.Errorf("%w %q: no such run in this store", ErrUnknownRun, run)
		}
		return nil, fmt.Errorf("read run %s: %w", run, err)
	}
	return &rec, nil
}

// Follow reads a run's events from its start. With untilCaughtUp it returns once every
// stored event is read; otherwise when the run finishes or ctx ends. onEvent (may be nil)
// sees every event's one-line description. The consumer it reads with is removed from
// the server when it returns.
func Follow(ctx context.Context, b *bus.Bus, run string, untilCaughtUp bool, onEvent func(line string, p *Progress)) (*Progress, error) {
	p := &Progress{RunID: run, Tests: map[string]*TestProgress{}}
	var seq uint64 // the stream sequence of the last event applied
	var trouble time.Time
	for {
		before := seq
		done, err := p.follow(ctx, b, run, untilCaughtUp, onEvent, &seq)
		if done || err == nil {
			return p, err
		}
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		if !followAgain(err) {
			return p, err
		}
		// A cluster replacing the stream's leader (or a server) refuses or drops the
		// follower's consumer for a few seconds: follow on from the last event.
		if trouble.IsZero() || seq != before {
			trouble = time.Now()
		}
		if time.Since(trouble) > followRetryFor {
			return p, err
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// followAgain says whether following on may help: the cluster was busy replacing a
// leader (a timeout, no responders, 503) or the follower's consumer was lost with it.
func followAgain(err error) bool {
	var bad *badEvent
	if errors.As(err, &bad) {
		return false
	}
	return bus.IsTransient(err) || errors.Is(err, bus.ErrReadLost)
}

// followRetryFor is how long a follower keeps trying without any event getting through.
const followRetryFor = time.Minute

// badEvent is an event of the run that does not decode: following again cannot help.
type badEvent struct{ err error }

func (e *badEvent) Error() string { return e.err.Error() }
func (e *badEvent) Unwrap() error { return e.err }

// follow reads the run's events after *seq with an ephemeral consumer; done is true when
// the run finished (or, with untilCaughtUp, every event so far was read).
func (p *Progress) follow(ctx context.Context, b *bus.Bus, run string, untilCaughtUp bool, onEvent func(line string, p *Progress), seq *uint64) (bool, error) {
	r, err := b.Read(ctx, bus.ReadOptions{Filter: events.RunFilter(run), AfterSeq: *seq, Description: "follow run " + run})
	if err != nil {
		return false, fmt.Errorf("follow run %s: %w", run, err)
	}
	defer r.Stop()
	if untilCaughtUp && r.Pending() == 0 {
		return true, nil
	}
	stop := context.AfterFunc(ctx, r.Stop)
	defer stop()
	for {
		msg, err := r.Next()
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, err
		}
		line, err := p.apply(msg.Subject, msg.Data)
		if err != nil {
			return false, &badEvent{fmt.Errorf("%s: %w", msg.Subject, err)}
		}
		if msg.Seq != 0 {
			*seq = msg.Seq
			if p.First.IsZero() {
				p.First = msg.Time
			}
			p.Last = msg.Time
			if onEvent != nil && line != "" {
				onEvent(line, p)
			}
			if untilCaughtUp && msg.Pending == 0 {
				return true, nil
			}
		} else if onEvent != nil && line != "" {
			onEvent(line, p)
		}
		if p.Finished != nil && !untilCaughtUp {
			return true, nil
		}
	}
}

// Summary renders the end-of-run table with full ids: test, state, key metrics, verdict.
func (p *Progress) Summary() string { return p.SummaryFit(0) }

// SummaryFit renders the summary so that its lines fit width columns (0: no limit):
// long test ids are shortened in the middle and the metrics cut at the edge.
func (p *Progress) SummaryFit(width int) string {
	ids := make([]string, 0, len(p.Tests))
	for id := range p.Tests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w := len("TEST")
	for _, id := range ids {
		w = max(w, len(id))
	}
	const rest = 2 + 13 + 2 + 9 + 2 // the state and verdict columns
	if width > 0 && w+rest+20 > width {
		w = max(16, width-rest-12)
	}
	var sb strings.Builder
	line := func(id, state, verdict, metrics string) {
		l := fmt.Sprintf("%-*s  %-13s  %-9s  %s", w, ShortenMiddle(id, w), state, verdict, metrics)
		if width > 0 && len(l) > width {
			l = l[:width-3] + "..."
		}
		sb.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	line("TEST", "STATE", "VERDICT", "KEY METRICS")
	passed := 0
	for _, id := range ids {
		t := p.Tests[id]
		verdict, metrics := "-", ""
		if t.Result != nil {
			verdict = t.Result.Verdict()
			switch {
			case t.Result.RefVerdict == refs.Regression:
				verdict = "REGRESSED" // a reference broken (the reasons say which)
			case t.Result.Passed && t.Result.RefVerdict == refs.Improvement:
				verdict = "IMPROVED" // passed, better than a reference by more than its tolerance
			}
			if t.Result.Passed {
				passed++
			}
			metrics = keyMetrics(t.Result)
		} else if t.Problem != nil {
			metrics = t.Problem.Stage + " stalled: " + t.Problem.Reason
		} else if t.Ended {
			metrics = "ended; result not collected yet"
		}
		line(id, t.State, verdict, metrics)
	}
	c := p.Counts()
	fmt.Fprintf(&sb, "\n%s: %d passed, %d failed", Count(len(ids), "test"), passed, c.Failed)
	if left := len(ids) - c.Done; left > 0 {
		fmt.Fprintf(&sb, "\n%d unfinished: %d queued, %d running, %d waiting for collection", left, c.Queued, c.Running, c.Collecting)
	}
	sb.WriteString("\n")
	return sb.String()
}

// ShortenMiddle cuts s to at most n characters by replacing its middle with "...".
func ShortenMiddle(s string, n int) string {
	if len(s) <= n || n < 5 {
		return s
	}
	head := (n - 3 + 1) / 2
	tail := n - 3 - head
	return s[:head] + "..." + s[len(s)-tail:]
}

// keyMetrics shows the rows at the highest concurrency (perf) or every accuracy row.
func keyMetrics(r *events.Result) string {
	top := 0
	for _, row := range r.Rows {
		top = max(top, row.Concurrency)
	}
	var parts []string
	for _, row := range r.Rows {
		switch {
		case !row.Judged && row.Dataset == "":
			continue // the rest of what the client printed: in the dataset and the dashboard
		case row.Dataset != "":
			parts = append(parts, fmt.Sprintf("%s/%s=%.4g", row.Dataset, row.Filter, row.Value))
		case row.Concurrency == top:
			parts = append(parts, fmt.Sprintf("%s=%.4g", strings.TrimPrefix(row.Metric, "SERVER_"), row.Value))
		}
	}
	if len(parts) > 0 && top > 0 {
		return fmt.Sprintf("@c%d ", top) + strings.Join(parts, " ")
	}
	if len(parts) == 0 && !r.Passed && len(r.Reasons) > 0 {
		// An invalid test's reason is FILE:LINE:COL: field: message; the file is the
		// test's own, so the summary shows the error.
		s := problemPrefix.ReplaceAllString(r.Reasons[0], "")
		if len(s) > 80 {
			s = s[:77] + "..."
		}
		return s
	}
	return strings.Join(parts, " ")
}

// problemPrefix is the FILE:LINE[:COL]: lead of a config problem.
var problemPrefix = regexp.MustCompile(`^[^\s:]+:\d+(?::\d+)?: `)

// jobLabel names a job in an event line: "job ID (test)", or "test TEST" when the test
// never got a job (invalid, not submitted).
func jobLabel(jobID, test string) string {
	if jobID == "" {
		return "test " + test
	}
	return "job " + jobID + " (" + test + ")"
}

// Count writes n and the noun, in the plural unless n is 1: "1 test", "3 tests".
func Count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func sortTests(ts []*TestProgress) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].TestID < ts[j].TestID })
}

// FailedTests are the tests of the run that failed, were invalid, failed to submit or
// were cancelled, sorted (what planner rerun --failed runs again).
func (p *Progress) FailedTests() []string {
	var ids []string
	for _, t := range p.sortedTests() {
		if t.Result != nil && !t.Result.Passed {
			ids = append(ids, t.TestID)
		}
	}
	return ids
}
