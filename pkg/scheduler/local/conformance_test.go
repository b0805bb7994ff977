package local

import (
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/schedulertest"
)

// The local scheduler and the real SLURM pass the scheduler conformance suite.
func TestLocalConformance(t *testing.T) {
	script := schedulertest.JobScript(t)
	schedulertest.Run(t, schedulertest.Harness{
		New: func(t *testing.T) scheduler.Scheduler {
			l, err := New(t.TempDir(), Options{KillGrace: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
		Request: schedulertest.ScriptRequest(script),
	})
}
