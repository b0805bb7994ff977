package progress

import (
	"encoding/json"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

func feed(t *testing.T, p *Progress, subject string, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	if _, err := p.apply(subject, data); err != nil {
		t.Fatal(err)
	}
}

const longID = "disagg_perf_deepseek-r1-fp4_8k1k_ctx1_gen1_dep32_bs32_eplb288_mtp3_ccb-NIXL"

func sampleRun(t *testing.T) *Progress {
	run := "r1"
	p := &Progress{RunID: run, Tests: map[string]*TestProgress{}}
	feed(t, p, events.RunStartedSubject(run), events.RunStarted{Header: events.NewHeader(run), Tests: 5,
		TestIDs: []string{"a", "b", "c", "d", longID}, Skipped: []events.Skip{{TestID: "s", Reason: "not supported on GB200"}}})
	// a: passed; b: failed; c: ended, result not collected; d: running; long: queued.
	feed(t, p, events.JobSubject(run, "a", events.KindSubmitted), events.JobSubmitted{JobID: "1"})
	feed(t, p, events.ResultSubject(run, "a"), events.Result{TestID: "a", State: scheduler.Completed, Passed: true, Duration: 12.5})
	feed(t, p, events.JobSubject(run, "b", events.KindSubmitted), events.JobSubmitted{JobID: "2"})
	feed(t, p, events.ResultSubject(run, "b"), events.Result{TestID: "b", State: scheduler.Failed, Reasons: []string{"job 2 ended FAILED (exit code 1)"}})
	feed(t, p, events.JobSubject(run, "c", events.KindSubmitted), events.JobSubmitted{JobID: "3"})
	feed(t, p, events.JobSubject(run, "c", events.KindCompleted), events.JobCompleted{JobID: "3", State: scheduler.Completed})
	feed(t, p, events.JobSubject(run, "d", events.KindSubmitted), events.JobSubmitted{JobID: "4"})
	feed(t, p, events.JobSubject(run, "d", events.KindState), events.JobState{Header: events.Header{Time: time.Now().Add(-90 * time.Second)}, JobID: "4", State: scheduler.Running})
	return p
}

func TestCountsAccountForEveryTest(t *testing.T) {
	p := sampleRun(t)
	c := p.Counts()
	want := Tally{Queued: 1, Running: 1, Collecting: 1, Done: 2, Failed: 1}
	if c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	if c.Queued+c.Running+c.Collecting+c.Done != len(p.Tests) {
		t.Fatal("a test is in no bucket")
	}
	if !strings.Contains(c.String(), "collecting 1") {
		t.Fatalf("progress line %q does not show the job waiting for collection", c)
	}
	if r := p.RunningTests(); len(r) != 1 || r[0].TestID != "d" || time.Since(r[0].Running) < 80*time.Second {
		t.Fatalf("running tests %+v", r)
	}
	s := p.Summary()
	if !strings.Contains(s, "result not collected yet") || !strings.Contains(s, "1 waiting for collection") {
		t.Fatalf("summary hides the uncollected job:\n%s", s)
	}
	if got := p.FailedTests(); len(got) != 1 || got[0] != "b" {
		t.Fatalf("failed tests %v", got)
	}
}

func TestSummaryFitsTheTerminal(t *testing.T) {
	p := sampleRun(t)
	for _, width := range []int{60, 80, 100} {
		s := p.SummaryFit(width)
		for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if len(line) > width {
				t.Errorf("width %d: line of %d: %q", width, len(line), line)
			}
		}
		if strings.Contains(s, longID) || !regexp.MustCompile(`disagg_pe\S*\.\.\.\S*ccb-NIXL`).MatchString(s) {
			t.Errorf("width %d: long id not shortened in the middle:\n%s", width, s)
		}
	}
	if wide := p.SummaryFit(0); !strings.Contains(wide, longID) {
		t.Errorf("--wide lost the full id:\n%s", wide)
	}
	if got := ShortenMiddle("abcdefghij", 7); got != "ab...ij" {
		t.Errorf("ShortenMiddle = %q", got)
	}
}

func TestJUnitListsEverySelectedTest(t *testing.T) {
	p := sampleRun(t)
	var sb strings.Builder
	if err := p.WriteJUnit(&sb); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal([]byte(sb.String()), &doc); err != nil {
		t.Fatalf("%v\n%s", err, sb.String())
	}
	s := doc.Suites[0]
	if s.Tests != 6 || len(s.Cases) != 6 || s.Failures != 1 || s.Skipped != 1 || s.Errors != 3 {
		t.Fatalf("suite tests=%d failures=%d skipped=%d errors=%d\n%s", s.Tests, s.Failures, s.Skipped, s.Errors, sb.String())
	}
	byName := map[string]junitCase{}
	for _, c := range s.Cases {
		byName[c.Name] = c
	}
	if c := byName["test_benchmark[b]"]; c.Failure == nil || !strings.Contains(c.Failure.Text, "exit code 1") {
		t.Errorf("failed test: %+v", c)
	}
	if c := byName["test_benchmark[a]"]; c.Failure != nil || c.Time != "12.500" {
		t.Errorf("passed test: %+v", c)
	}
	if c := byName["test_benchmark[s]"]; c.Skipped == nil || !strings.Contains(c.Skipped.Message, "GB200") {
		t.Errorf("skipped test: %+v", c)
	}
	if c := byName["test_benchmark[c]"]; c.Error == nil || !strings.Contains(c.Error.Message, "not collected") {
		t.Errorf("uncollected test: %+v", c)
	}
}

// Problems of the submitter and the watcher reach the progress line, and leave it when
// the stage makes progress again.
func TestStageProblemsComeAndGo(t *testing.T) {
	run := "r1"
	p := &Progress{RunID: run, Tests: map[string]*TestProgress{}}
	feed(t, p, events.RunStartedSubject(run), events.RunStarted{Header: events.NewHeader(run), Tests: 2, TestIDs: []string{"a", "b"}})
	ids := func() []string {
		var out []string
		for _, t := range p.Problems() {
			out = append(out, t.TestID+":"+t.Problem.Stage)
		}
		return out
	}
	feed(t, p, events.JobSubject(run, "a", events.KindProblem), events.Problem{TestID: "a", Stage: "submitter", Reason: "sbatch: slurmctld down", GiveUp: time.Now().Add(time.Hour)})
	feed(t, p, events.JobSubject(run, "b", events.KindSubmitted), events.JobSubmitted{JobID: "7"})
	line, _ := p.apply(events.JobSubject(run, "b", events.KindProblem), mustJSON(events.Problem{TestID: "b", Stage: "watcher", Reason: "sacct: Connection refused"}))
	if !strings.Contains(line, "waits until it recovers") {
		t.Errorf("a watcher problem without a give-up time says %q", line)
	}
	if got := strings.Join(ids(), " "); got != "a:submitter b:watcher" {
		t.Fatalf("problems %q, want both stages'", got)
	}
	feed(t, p, events.JobSubject(run, "a", events.KindSubmitted), events.JobSubmitted{JobID: "8"})
	feed(t, p, events.JobSubject(run, "b", events.KindProblem), events.Problem{TestID: "b", Stage: "watcher", Resolved: true})
	if got := ids(); len(got) != 0 {
		t.Fatalf("problems %q after the stages recovered", got)
	}
}

func mustJSON(v any) []byte { data, _ := json.Marshal(v); return data }
