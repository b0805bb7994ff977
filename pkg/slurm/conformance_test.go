package slurm

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/schedulertest"
)

// The local scheduler and the real SLURM pass the scheduler conformance suite.
func TestLocalConformance(t *testing.T) {
	script := realJobScript(t)
	schedulertest.Run(t, schedulertest.Harness{
		New: func(t *testing.T) scheduler.Scheduler {
			l, err := NewLocal(t.TempDir(), LocalOptions{KillGrace: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			return l
		},
		Request: conformanceRequest(script),
	})
}

func TestSLURMConformance(t *testing.T) {
	s := realSLURM(t)
	controllerOutage.RLock()
	defer controllerOutage.RUnlock()
	script := realJobScript(t)
	schedulertest.Run(t, schedulertest.Harness{
		New:     func(*testing.T) scheduler.Scheduler { return s },
		Request: conformanceRequest(script),
		Wait:    90 * time.Second,
	})
}

func conformanceRequest(script string) func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest {
	return func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest {
		return scheduler.JobRequest{
			Name: name, Comment: comment, Script: script,
			Args:   []string{fmt.Sprint(sleep), fmt.Sprint(exit)},
			LogDir: filepath.Join(t.TempDir(), "logs", name),
			NTasks: 1,
		}
	}
}
