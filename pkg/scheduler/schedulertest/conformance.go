// Package schedulertest is the conformance suite every scheduler.Scheduler passes: the
// real SLURM, the local scheduler and the fake the stage tests use. It checks the
// contract the submitter and the watcher rely on, not how a job is run.
package schedulertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Harness adapts one implementation to the suite.
type Harness struct {
	// New returns the scheduler under test.
	New func(t *testing.T) scheduler.Scheduler
	// Request returns a job named name that runs about sleep seconds, then exits with
	// exit, carrying comment.
	Request func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest
	// Wait bounds how long a job may take to reach a state (SLURM's accounting lags).
	Wait time.Duration
}

// Run runs the suite as subtests.
func Run(t *testing.T, h Harness) {
	if h.Wait == 0 {
		h.Wait = 30 * time.Second
	}
	s := h.New(t)
	t.Run("Name", func(t *testing.T) { testName(t, s, h) })
	t.Run("CompletedJob", func(t *testing.T) { testCompletedJob(t, s, h) })
	t.Run("FailedJob", func(t *testing.T) { testFailedJob(t, s, h) })
	t.Run("UnknownJobIsAbsent", func(t *testing.T) { testUnknownJobIsAbsent(t, s, h) })
	t.Run("OneQueryForManyJobs", func(t *testing.T) { testOneQueryForManyJobs(t, s, h) })
	t.Run("FindByName", func(t *testing.T) { testFindByName(t, s, h) })
	t.Run("CancelRunningJob", func(t *testing.T) { testCancelRunningJob(t, s, h) })
}

func testName(t *testing.T, s scheduler.Scheduler, h Harness) {
	if s.Name() == "" {
		t.Fatal("Name() is empty")
	}
}

func testCompletedJob(t *testing.T, s scheduler.Scheduler, h Harness) {
	start := time.Now()
	id := submit(t, s, h.Request(t, name(t), "conformance", 0, 0))
	st := waitTerminal(t, s, h.Wait, start, id)
	if st.State != scheduler.Completed || st.ExitCode != 0 || st.ID != id {
		t.Fatalf("a job that exits 0: %+v, want COMPLETED, exit code 0, id %s", st, id)
	}
	if st.End.IsZero() || (!st.Start.IsZero() && st.End.Before(st.Start)) {
		t.Fatalf("a finished job's times: start %v, end %v", st.Start, st.End)
	}
}

func testFailedJob(t *testing.T, s scheduler.Scheduler, h Harness) {
	start := time.Now()
	id := submit(t, s, h.Request(t, name(t), "conformance", 0, 3))
	st := waitTerminal(t, s, h.Wait, start, id)
	if st.State != scheduler.Failed || st.ExitCode == 0 {
		t.Fatalf("a job that exits 3: %+v, want FAILED with a non-zero exit code", st)
	}
}

func testUnknownJobIsAbsent(t *testing.T, s scheduler.Scheduler, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), h.Wait)
	defer cancel()
	got, err := s.Status(ctx, time.Now().Add(-time.Hour), []string{"987654321"})
	if err != nil {
		t.Fatalf("Status of a job never submitted: %v, want no answer for it and no error", err)
	}
	if st, ok := got["987654321"]; ok {
		t.Fatalf("Status of a job never submitted: %+v, want it absent (absent never means finished)", st)
	}
}

func testOneQueryForManyJobs(t *testing.T, s scheduler.Scheduler, h Harness) {
	start := time.Now()
	var ids []string
	for range 3 {
		ids = append(ids, submit(t, s, h.Request(t, name(t), "conformance", 0, 0)))
	}
	deadline := time.Now().Add(h.Wait)
	for {
		got, err := s.Status(context.Background(), start.Add(-time.Minute), ids)
		done := 0
		for _, id := range ids {
			if st, ok := got[id]; ok && scheduler.IsTerminal(st.State) {
				done++
			}
		}
		if err == nil && done == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("one Status query for %v: %v (%d ended), err %v", ids, got, done, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The submitter finds a job by name after a crash between sbatch and its ledger: at
// once (another instance takes over within seconds), and after the job ended.
func testFindByName(t *testing.T, s scheduler.Scheduler, h Harness) {
	start := time.Now()
	n := name(t)
	id := submit(t, s, h.Request(t, n, "conformance", 1, 0))
	find := func(when string) {
		found, err := s.FindByName(context.Background(), start.Add(-time.Minute), n)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(found, func(st scheduler.JobStatus) bool { return st.ID == id }) {
			t.Fatalf("FindByName(%q) %s = %+v, want job %s", n, when, found, id)
		}
	}
	find("right after Submit")
	waitTerminal(t, s, h.Wait, start, id)
	find("after the job ended")
}

func testCancelRunningJob(t *testing.T, s scheduler.Scheduler, h Harness) {
	start := time.Now()
	comment := "conformance " + name(t)
	id := submit(t, s, h.Request(t, name(t), comment, 120, 0))
	if c, ok := s.(scheduler.Commenter); ok {
		got, err := c.Comment(context.Background(), id)
		if err != nil || got != comment {
			t.Fatalf("Comment(%s) = %q, %v; want %q", id, got, err, comment)
		}
	}
	if err := s.Cancel(context.Background(), id); err != nil {
		t.Fatalf("Cancel(%s): %v", id, err)
	}
	st := waitTerminal(t, s, h.Wait, start, id)
	if st.State != scheduler.Cancelled {
		t.Fatalf("a cancelled job: %+v, want CANCELLED", st)
	}
}

func name(t *testing.T) string {
	return fmt.Sprintf("conformance-%d", time.Now().UnixNano())
}

// submit retries transient refusals for a while, as the submitter does.
func submit(t *testing.T, s scheduler.Scheduler, req scheduler.JobRequest) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		id, err := s.Submit(context.Background(), req)
		if err == nil {
			if id == "" {
				t.Fatal("Submit returned an empty id")
			}
			return id
		}
		if !errors.Is(err, scheduler.ErrTransient) || time.Now().After(deadline) {
			t.Fatalf("Submit(%s): %v", req.Name, err)
		}
		time.Sleep(time.Second)
	}
}

// waitTerminal polls Status until the job has ended.
func waitTerminal(t *testing.T, s scheduler.Scheduler, wait time.Duration, since time.Time, id string) scheduler.JobStatus {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got, err := s.Status(context.Background(), since.Add(-time.Minute), []string{id})
		if st, ok := got[id]; err == nil && ok && scheduler.IsTerminal(st.State) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s did not end within %v: %+v (err %v)", id, wait, got[id], err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// JobScript writes a job script: wait for the file $4 when given, sleep $1 seconds,
// touch $3 when given, exit $2.
func JobScript(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.sh")
	body := `#!/bin/bash
echo "job $SLURM_JOB_ID on $(hostname)"
if [ -n "$4" ]; then
	for _ in $(seq 1 1500); do [ -e "$4" ] && break; sleep 0.2; done
fi
sleep "$1"
if [ -n "$3" ]; then touch "$3"; fi
echo finished
exit "$2"
`
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ScriptRequest returns a Harness.Request for a JobScript: the job sleeps, then exits.
func ScriptRequest(script string) func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest {
	return func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest {
		return scheduler.JobRequest{
			Name: name, Comment: comment, Script: script,
			Args:   []string{fmt.Sprint(sleep), fmt.Sprint(exit)},
			LogDir: filepath.Join(t.TempDir(), "logs", name),
			NTasks: 1,
		}
	}
}
