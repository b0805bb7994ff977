package fake_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
	"github.com/disaggbench/disaggbench/pkg/scheduler/schedulertest"
)

// The fake the stage tests use keeps the same contract as SLURM and the local scheduler.
func TestFakeConformance(t *testing.T) {
	schedulertest.Run(t, schedulertest.Harness{
		New: func(*testing.T) scheduler.Scheduler {
			f := fake.New(0)
			// Args are "sleep exit", as the real schedulers' job script reads them.
			f.Outcome = func(req scheduler.JobRequest) (time.Duration, string) {
				sleep, _ := strconv.Atoi(req.Args[0])
				if req.Args[1] != "0" {
					return time.Duration(sleep) * time.Second, scheduler.Failed
				}
				return time.Duration(sleep) * time.Second, scheduler.Completed
			}
			return f
		},
		Request: func(t *testing.T, name, comment string, sleep, exit int) scheduler.JobRequest {
			return scheduler.JobRequest{Name: name, Comment: comment, Script: "job.sh", LogDir: t.TempDir(),
				Args: []string{fmt.Sprint(sleep), fmt.Sprint(exit)}}
		},
		Wait: 5 * time.Second,
	})
}
