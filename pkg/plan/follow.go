package plan

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"github.com/disaggbench/disaggbench/pkg/slurm"
)

// Progress is what a run's events say so far.
type Progress struct {
	RunID    string
	Started  *events.RunStarted
	Finished *events.RunFinished
	Tests    map[string]*TestProgress
	First    time.Time
	Last     time.Time
}

// TestProgress is one test's story.
type TestProgress struct {
	TestID string
	JobID  string
	State  string // scheduler state, or QUEUED before submission
	Result *events.Result
}

// Counts returns queued, running (submitted, not over), done and failed.
func (p *Progress) Counts() (queued, running, done, failed int) {
	for _, t := range p.Tests {
		switch {
		case t.Result != nil:
			done++
			if !t.Result.Passed {
				failed++
			}
		case t.JobID != "" && !slurm.IsTerminal(t.State):
			running++
		case t.JobID == "":
			queued++
		}
	}
	return
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
	parts := strings.Split(subject, ".")
	if len(parts) < 4 {
		return "", nil
	}
	switch parts[1] {
	case "runs":
		if parts[3] == "started" {
			var ev events.RunStarted
			if err := json.Unmarshal(data, &ev); err != nil {
				return "", err
			}
			p.Started = &ev
			for _, id := range ev.TestIDs {
				p.test(id)
			}
			return fmt.Sprintf("run %s started: %s, batch size %d, policy %s", ev.RunID, Count(ev.Tests, "test"), ev.BatchSize, ev.Policy), nil
		}
		var ev events.RunFinished
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		p.Finished = &ev
		return fmt.Sprintf("run %s finished: %d passed, %d failed", ev.RunID, ev.Passed, ev.Failed), nil
	case "batches":
		var ev events.Batch
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		return fmt.Sprintf("batch %d/%d published (%d jobs)", ev.Index+1, ev.Total, len(ev.Jobs)), nil
	case "jobs":
		if len(parts) < 5 {
			return "", nil
		}
		test := events.Untoken(parts[3])
		t := p.test(test)
		switch parts[4] {
		case events.KindSubmitted:
			var ev events.JobSubmitted
			if err := json.Unmarshal(data, &ev); err != nil {
				return "", err
			}
			t.JobID = ev.JobID
			if t.State == "QUEUED" {
				t.State = slurm.Pending
			}
			return fmt.Sprintf("job %s <- %s submitted", ev.JobID, test), nil
		case events.KindState:
			var ev events.JobState
			if err := json.Unmarshal(data, &ev); err != nil {
				return "", err
			}
			if !slurm.IsTerminal(t.State) {
				t.State = ev.State
			}
			if ev.JobID == "" {
				return fmt.Sprintf("%s waits: %s (%s)", test, strings.ToLower(strings.ReplaceAll(ev.State, "_", " ")), ev.Reason), nil
			}
			msg := fmt.Sprintf("%s %s", jobLabel(ev.JobID, test), ev.Detail)
			if ev.Reason != "" && ev.Reason != "None" {
				msg += " (" + ev.Reason + ")"
			}
			return msg, nil
		case events.KindCompleted:
			var ev events.JobCompleted
			if err := json.Unmarshal(data, &ev); err != nil {
				return "", err
			}
			t.State = ev.State
			if ev.JobID != "" {
				t.JobID = ev.JobID
			}
			return fmt.Sprintf("%s completed: %s", jobLabel(ev.JobID, test), cmp.Or(ev.Detail, ev.State)), nil
		}
	case "results":
		var ev events.Result
		if err := json.Unmarshal(data, &ev); err != nil {
			return "", err
		}
		t := p.test(ev.TestID)
		t.Result = &ev
		if ev.State != "" {
			t.State = ev.State
		}
		line := fmt.Sprintf("%s %s", ev.Verdict(), ev.TestID)
		if len(ev.Reasons) > 0 {
			line += ": " + strings.Join(ev.Reasons, "; ")
		}
		return line, nil
	}
	return "", nil
}

// Follow reads a run's events from its start. With untilCaughtUp it returns once every
// stored event is read; otherwise when the run finishes or ctx ends. onEvent (may be nil)
// sees every event's one-line description.
func Follow(ctx context.Context, b *bus.Bus, run string, untilCaughtUp bool, onEvent func(line string, p *Progress)) (*Progress, error) {
	p := &Progress{RunID: run, Tests: map[string]*TestProgress{}}
	cons, err := b.JS.OrderedConsumer(ctx, events.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.RunFilter(run)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, err
	}
	if info := cons.CachedInfo(); untilCaughtUp && info != nil && info.NumPending == 0 {
		return p, nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return p, ctx.Err()
			}
			return p, err
		}
		line, err := p.apply(msg.Subject(), msg.Data())
		if err != nil {
			return p, fmt.Errorf("%s: %w", msg.Subject(), err)
		}
		if md, err := msg.Metadata(); err == nil {
			if p.First.IsZero() {
				p.First = md.Timestamp
			}
			p.Last = md.Timestamp
			if onEvent != nil && line != "" {
				onEvent(line, p)
			}
			if untilCaughtUp && md.NumPending == 0 {
				return p, nil
			}
		} else if onEvent != nil && line != "" {
			onEvent(line, p)
		}
		if p.Finished != nil && !untilCaughtUp {
			return p, nil
		}
	}
}

// Summary renders the end-of-run table: test, state, key metrics, verdict.
func (p *Progress) Summary() string {
	ids := make([]string, 0, len(p.Tests))
	for id := range p.Tests {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	w := len("TEST")
	for _, id := range ids {
		w = max(w, len(id))
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-*s  %-13s  %-9s  %s\n", w, "TEST", "STATE", "VERDICT", "KEY METRICS")
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
		}
		fmt.Fprintf(&sb, "%-*s  %-13s  %-9s  %s\n", w, id, t.State, verdict, metrics)
	}
	fmt.Fprintf(&sb, "\n%s: %d passed, %d failed or unfinished\n", Count(len(ids), "test"), passed, len(ids)-passed)
	return sb.String()
}

// keyMetrics shows the judged rows at the highest concurrency (perf) or every accuracy
// row.
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
