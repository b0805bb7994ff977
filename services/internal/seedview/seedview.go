// Package seedview draws the submitter's notices as the seed framework's troubleshooting
// view: the batch manager's banner, each batch's range and each job id. The submitter
// service and `planner run` show it.
package seedview

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/disaggbench/disaggbench/pkg/submit"
)

var rule = strings.Repeat("=", 70)

// New returns a submit.Config.Notify that writes the view to w, one notice at a time.
func New(w io.Writer) func(submit.Notice) {
	var mu sync.Mutex
	return func(n submit.Notice) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, Text(n))
	}
}

// Text is one notice as the view shows it.
func Text(n submit.Notice) string {
	switch n := n.(type) {
	case submit.RunAccepted:
		size := "no limit"
		if n.BatchSize > 0 {
			size = fmt.Sprintf("%d jobs per batch", n.BatchSize)
		}
		return fmt.Sprintf("%s\nBatch Manager Initialized (run %s)\nBatch size: %s\nPolicy: %s\n%s\n\nTotal test configs: %d\nTotal batches: %d\n\n",
			rule, n.RunID, size, n.Policy, rule, n.Tests, n.Batches)
	case submit.BatchStarted:
		return fmt.Sprintf("%s\nSubmitting Batch %d\nRange: [%d:%d] (%d jobs)\n%s\n\n", rule, n.Batch, n.From, n.To, n.To-n.From, rule)
	case submit.JobSubmitted:
		return fmt.Sprintf("  [%3d/%d] Job %s <- %s\n", n.Pos, n.Of, n.JobID, n.TestID)
	case submit.NotSubmitted:
		return fmt.Sprintf("  [  x] %s not submitted: %s\n", n.TestID, n.Reason)
	}
	return ""
}
