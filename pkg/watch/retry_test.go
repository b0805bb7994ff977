package watch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/watch"
)

// submitWithRequest submits one test's job to the scheduler, records it in the ledger
// and publishes its submitted event with the request, as the submitter does.
func submitWithRequest(t *testing.T, ctx context.Context, b *bus.Bus, s scheduler.Scheduler, run, test string) scheduler.JobRequest {
	t.Helper()
	logDir := "/out/slurm_logs/" + test + "/" + run
	req := fake.Request(run, test, logDir, "job.sh")
	id, err := s.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	rec := events.JobRecord{RunID: run, TestID: test, Phase: events.PhaseSubmitted, JobID: id, JobName: req.Name,
		LogDir: logDir, Submitted: time.Now().UTC(), Attempt: 1}
	data, _ := json.Marshal(rec)
	rev, err := b.Jobs.Create(ctx, events.Key(run, test), data)
	if err != nil {
		t.Fatal(err)
	}
	ev := events.JobSubmitted{Header: events.NewHeader(run), TestID: test, JobID: id, Submitted: rec.Submitted,
		JobName: req.Name, LogDir: logDir, LedgerRev: rev, Attempt: 1, Request: &req}
	if err := b.Publish(ctx, events.JobSubject(run, test, events.KindSubmitted), events.SubmittedID(run, test, id), ev); err != nil {
		t.Fatal(err)
	}
	return req
}

// TestRetriesByFinalState runs one job per case through a watcher (on the fake
// scheduler, with and without its queue view) whose submissions end as the case says,
// and checks what a retry policy must give: NODE_FAIL, BOOT_FAIL and PREEMPTED are
// submitted again excluding the failed nodes (accumulated), at most MaxRetries times;
// TIMEOUT, OUT_OF_MEMORY and FAILED are not; a REQUEUED job stays tracked under its id.
// Each test completes exactly once, with its last attempt's number.
func TestRetriesByFinalState(t *testing.T) {
	cases := []struct {
		name    string
		states  [][]string // by attempt; the last entry repeats
		attempt int        // of the completion
		final   string
		exclude []string // of the last submission
	}{
		{"node fail then completed", [][]string{{scheduler.Running, scheduler.NodeFail}, {scheduler.Running, scheduler.Completed}}, 2, scheduler.Completed, []string{"node1"}},
		{"boot fail then completed", [][]string{{scheduler.BootFail}, {scheduler.Running, scheduler.Completed}}, 2, scheduler.Completed, []string{"node1"}},
		{"preempted then completed", [][]string{{scheduler.Running, scheduler.Preempted}, {scheduler.Running, scheduler.Completed}}, 2, scheduler.Completed, []string{"node1"}},
		{"node fail every time", [][]string{{scheduler.Running, scheduler.NodeFail}}, 3, scheduler.NodeFail, []string{"node1", "node2"}},
		{"timeout", [][]string{{scheduler.Running, scheduler.Timeout}}, 1, scheduler.Timeout, nil},
		{"out of memory", [][]string{{scheduler.Running, scheduler.OutOfMemory}}, 1, scheduler.OutOfMemory, nil},
		{"failed", [][]string{{scheduler.Running, scheduler.Failed}}, 1, scheduler.Failed, nil},
		{"requeued", [][]string{{scheduler.Running, scheduler.Requeued, scheduler.Pending, scheduler.Running, scheduler.Completed}}, 1, scheduler.Completed, nil},
	}
	for _, queued := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/queue=%v", tc.name, queued), func(t *testing.T) {
				ctx, b := setup(t)
				f := fake.New(300 * time.Millisecond)
				f.States = func(_ scheduler.JobRequest, n int) []string { return tc.states[min(n, len(tc.states))-1] }
				f.NodeList = func(_ scheduler.JobRequest, n int) string { return fmt.Sprintf("node%d", n) }
				var s scheduler.Scheduler = f
				if queued {
					s = fake.Queued{Fake: f}
				}
				runID := "r"
				done, err := b.NC.SubscribeSync(events.RunJobsFilter(runID, events.KindCompleted))
				if err != nil {
					t.Fatal(err)
				}
				stateSub, err := b.NC.SubscribeSync(events.RunJobsFilter(runID, events.KindState))
				if err != nil {
					t.Fatal(err)
				}
				w, _ := watch.New(watch.Config{Bus: b, Scheduler: s, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond,
					QueuePoll: 20 * time.Millisecond, FullEvery: time.Hour})
				run(t, ctx, w)
				req := submitWithRequest(t, ctx, b, s, runID, "t1")
				m, err := done.NextMsg(30 * time.Second) // a few attempts of 300 ms; a loaded machine is slow
				if err != nil {
					t.Fatalf("no completion: %v", err)
				}
				var got events.JobCompleted
				_ = json.Unmarshal(m.Data, &got)
				if got.State != tc.final || got.Attempt != tc.attempt {
					t.Errorf("completed %s on attempt %d, want %s on attempt %d (%+v)", got.State, got.Attempt, tc.final, tc.attempt, got)
				}
				jobs := f.Jobs()
				if len(jobs) != tc.attempt {
					t.Fatalf("%d submissions, want %d", len(jobs), tc.attempt)
				}
				if last := jobs[len(jobs)-1]; got.JobID != last.ID {
					t.Errorf("completed job %s, the last submission is %s", got.JobID, last.ID)
				}
				for i, j := range jobs {
					var want []string
					if i > 0 {
						want = append(slices.Clone(req.ExtraArgs), "--exclude="+strings.Join(tc.exclude[:i], ","))
					}
					if !slices.Equal(j.Req.ExtraArgs, want) {
						t.Errorf("submission %d: extra args %q, want %q", i+1, j.Req.ExtraArgs, want)
					}
					if j.Req.Name != req.Name || j.Req.Script != req.Script || j.Req.Comment != req.Comment {
						t.Errorf("submission %d: request %+v, want the first's %+v", i+1, j.Req, req)
					}
				}
				// The ledger is marked right after the completed event goes out.
				var rec events.JobRecord
				for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if _, err := ledger.GetJSON(ctx, b.Jobs, events.Key(runID, "t1"), &rec); err != nil {
						t.Fatal(err)
					}
					if rec.Phase == events.PhaseCompleted {
						break
					}
				}
				if rec.Phase != events.PhaseCompleted || rec.JobID != got.JobID || events.AttemptOf(rec.Attempt) != tc.attempt {
					t.Errorf("ledger %+v, want completed job %s attempt %d", rec, got.JobID, tc.attempt)
				}
				retries := 0
				for {
					m, err := stateSub.NextMsg(100 * time.Millisecond)
					if err != nil {
						break
					}
					var st events.JobState
					_ = json.Unmarshal(m.Data, &st)
					if st.State == events.StateRetry {
						retries++
						if !strings.Contains(st.Detail, "excluding node") {
							t.Errorf("retry detail %q names no excluded node", st.Detail)
						}
					}
				}
				if retries != tc.attempt-1 {
					t.Errorf("%d RETRYING events, want %d", retries, tc.attempt-1)
				}
				if tc.final == scheduler.NodeFail && (len(got.Reasons) == 0 || !strings.Contains(got.Reasons[0], "no retry left")) {
					t.Errorf("reasons %q, want the retries spent", got.Reasons)
				}
				// Exactly one completion.
				if m, err := done.NextMsg(300 * time.Millisecond); err == nil {
					t.Errorf("a second completion: %s", m.Data)
				}
			})
		}
	}
}

// TestRetryRefusesARequestTheLedgerDoesNotBack: a submitted event whose request names
// another script than the ledger's folder holds is never submitted again.
func TestRetryRefusesARequestTheLedgerDoesNotBack(t *testing.T) {
	ctx, b := setup(t)
	f := fake.New(200 * time.Millisecond)
	f.States = func(scheduler.JobRequest, int) []string { return []string{scheduler.Running, scheduler.NodeFail} }
	next, stop := completions(t, b, "r")
	defer stop()
	w, _ := watch.New(watch.Config{Bus: b, Scheduler: f, Log: quiet, PollMin: 20 * time.Millisecond, PollMax: 40 * time.Millisecond})
	run(t, ctx, w)
	logDir := "/out/slurm_logs/t1/r"
	req := fake.Request("r", "t1", logDir, "job.sh")
	id, _ := f.Submit(ctx, req)
	rec := events.JobRecord{RunID: "r", TestID: "t1", Phase: events.PhaseSubmitted, JobID: id, JobName: req.Name, LogDir: logDir, Attempt: 1}
	data, _ := json.Marshal(rec)
	rev, _ := b.Jobs.Create(ctx, events.Key("r", "t1"), data)
	evil := req
	evil.Script = "/tmp/evil.sh"
	ev := events.JobSubmitted{Header: events.NewHeader("r"), TestID: "t1", JobID: id, Submitted: time.Now(), JobName: req.Name,
		LogDir: logDir, LedgerRev: rev, Attempt: 1, Request: &evil}
	if err := b.Publish(ctx, events.JobSubject("r", "t1", events.KindSubmitted), events.SubmittedID("r", "t1", id), ev); err != nil {
		t.Fatal(err)
	}
	got := next(1, 10*time.Second)[0]
	if got.State != scheduler.NodeFail || f.TotalSubmits() != 1 || len(got.Reasons) == 0 || !strings.Contains(got.Reasons[0], "not submitted again") {
		t.Fatalf("completed %s after %d submissions, reasons %q: want NODE_FAIL, 1, not submitted again", got.State, f.TotalSubmits(), got.Reasons)
	}
}
