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
