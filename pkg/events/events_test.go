package events

import (
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, s := range []string{"disagg_perf_llama-3.1-8b_1k1k", "a.b*c>d e", "", "x=41", "日本"} {
		tok := Token(s)
		if strings.ContainsAny(tok, ".*> \t") {
			t.Errorf("Token(%q) = %q: not one subject token", s, tok)
		}
		if got := Untoken(tok); got != s {
			t.Errorf("Untoken(Token(%q)) = %q", s, got)
		}
	}
	if Token("a.b") == Token("a_b") {
		t.Error("Token is not one to one")
	}
}

func TestSubjectsMatchFilters(t *testing.T) {
	run, test := "20261127-010203-abcdef", "disagg_perf_m.v1"
	cases := map[string]string{
		JobSubject(run, test, KindSubmitted): SubmittedFilter,
		JobSubject(run, test, KindCompleted): CompletedFilter,
		BatchSubject(run, 3):                 BatchFilter,
		ResultSubject(run, test):             ResultFilter,
		RunStartedSubject(run):               RunFilter(run),
		JobSubject(run, test, KindState):     RunFilter(run),
		JobSubject(run, test, KindProblem):   RunFilter(run),
	}
	// The patterns over every run match what their builders give for any run.
	for _, c := range []struct{ subject, pattern string }{
		{JobSubject(run, test, KindCompleted), RunJobsFilter(run, KindCompleted)},
		{JobSubject(run, test, KindCompleted), JobKindFilter(KindCompleted)},
		{JobSubject(run, test, KindProblem), JobKindFilter(KindProblem)},
		{JobSubject(run, test, KindState), EveryEventFilter},
		{JobSubject(run, test, KindState), AnyRunFilter},
		{ResultSubject(run, test), AnyRunResultsFilter},
		{ResultSubject(run, test), AnyRunResultsPrefix},
		{RunStartedSubject(run), AnyRunStartedSubject},
		{RunFinishedSubject(run), AnyRunFinishedSubject},
	} {
		if !match(c.pattern, c.subject) {
			t.Errorf("%s does not match %s", c.subject, c.pattern)
		}
	}
	for _, c := range []struct{ filter, anyRun string }{
		{RunResultsFilter(run), AnyRunResultsFilter},
		{RunJobsFilter(run, KindCompleted), JobKindFilter(KindCompleted)},
	} {
		// a run's filter is its any-run pattern with the run's token in place
		if strings.Replace(c.anyRun, "*", Token(run), 1) != c.filter {
			t.Errorf("filter %s is not %s for run %s", c.filter, c.anyRun, run)
		}
	}
	if match(RunJobsFilter(run, KindCompleted), JobSubject(run+"x", test, KindCompleted)) {
		t.Error("a run's jobs filter matches another run's job")
	}
	for subj, filter := range cases {
		if !match(filter, subj) {
			t.Errorf("%s does not match %s", subj, filter)
		}
	}
	if match(CompletedFilter, JobSubject(run, test, KindSubmitted)) {
		t.Error("completed filter matches a submitted subject")
	}
}

// match is NATS subject matching: * one token, > the rest.
func match(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// Every subject the builders make parses back to its parts; others do not parse.
func TestParseSubjectRoundTrip(t *testing.T) {
	run, test := "20261202-073908-35bf63", "disagg_perf_a.b c"
	for subject, want := range map[string]Subject{
		RunStartedSubject(run):               {Kind: "run.started", Run: run},
		RunFinishedSubject(run):              {Kind: "run.finished", Run: run},
		BatchSubject(run, 7):                 {Kind: "batch", Run: run, Batch: 7},
		JobSubject(run, test, KindProblem):   {Kind: "job.problem", Run: run, Test: test},
		JobSubject(run, test, KindSubmitted): {Kind: "job.submitted", Run: run, Test: test},
		ResultSubject(run, test):             {Kind: "result", Run: run, Test: test},
	} {
		got, ok := ParseSubject(subject)
		if !ok || got != want {
			t.Errorf("ParseSubject(%q) = %+v, %v; want %+v", subject, got, ok, want)
		}
	}
	for _, s := range []string{"", "bench", "bench.runs.r", "bench.runs.r.paused", "other.runs.r.started",
		"bench.batches.r.x", "bench.batches.r.-1", "bench.jobs.r.t", "bench.results.r.t.extra", "bench.cmd.r.x"} {
		if got, ok := ParseSubject(s); ok {
			t.Errorf("ParseSubject(%q) = %+v, want not ok", s, got)
		}
	}
}

// A completion's final state is read without what SLURM appends to it.
func TestJobCompletedFinalState(t *testing.T) {
	for state, want := range map[string]bool{"COMPLETED": true, "COMPLETED+": true, "CANCELLED by 1000": false,
		"FAILED": false, "NODE_FAIL": false, "": false} {
		ev := &JobCompleted{State: state}
		if got := ev.RanToEnd(); got != want {
			t.Errorf("RanToEnd() of %q = %v, want %v", state, got, want)
		}
		r := &Result{State: state}
		if got := r.RanToEnd(); got != want {
			t.Errorf("Result.RanToEnd() of %q = %v, want %v", state, got, want)
		}
	}
	if got := (&JobCompleted{State: "CANCELLED by 1000"}).FinalState(); got != "CANCELLED" {
		t.Errorf("FinalState() = %q, want CANCELLED", got)
	}
}
