package slurm

import (
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/schedulertest"
)

// The real SLURM passes the scheduler conformance suite.
func TestSLURMConformance(t *testing.T) {
	s := realSLURM(t)
	controllerOutage.RLock()
	defer controllerOutage.RUnlock()
	script := schedulertest.JobScript(t)
	schedulertest.Run(t, schedulertest.Harness{
		New:     func(*testing.T) scheduler.Scheduler { return s },
		Request: schedulertest.ScriptRequest(script),
		Wait:    90 * time.Second,
	})
}
