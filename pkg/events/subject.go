package events

import (
	"strconv"
	"strings"
)

// Subject is an event's subject, parsed: the one place subjects are read.
type Subject struct {
	// Kind names the event: "run.started", "run.finished", "batch", "job.<kind>" (a job
	// event's kind: submitted, state, problem, completed) or "result".
	Kind  string
	Run   string
	Test  string // job events and results
	Batch int    // batches
}

// ParseSubject reads a subject of the contract; ok is false for any other subject.
func ParseSubject(subject string) (s Subject, ok bool) {
	t := strings.Split(subject, ".")
	if len(t) < 4 || t[0] != "bench" {
		return s, false
	}
	s.Run = Untoken(t[2])
	switch {
	case t[1] == "runs" && len(t) == 4 && (t[3] == "started" || t[3] == "finished"):
		s.Kind = "run." + t[3]
	case t[1] == "batches" && len(t) == 4:
		n, err := strconv.Atoi(t[3])
		if err != nil || n < 0 {
			return Subject{}, false
		}
		s.Kind, s.Batch = "batch", n
	case t[1] == "jobs" && len(t) == 5 && t[4] != "":
		s.Kind, s.Test = "job."+t[4], Untoken(t[3])
	case t[1] == "results" && len(t) == 4:
		s.Kind, s.Test = "result", Untoken(t[3])
	default:
		return Subject{}, false
	}
	return s, true
}
