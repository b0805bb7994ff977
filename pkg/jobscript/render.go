package jobscript

import (
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/slurm"
)

// SbatchCommand is the sbatch command line of a request, as `planner render` prints
// it: "sbatch" and slurm.SbatchArgs, each argument shell-quoted.
func SbatchCommand(req scheduler.JobRequest) (string, error) {
	return QuoteArgs(append([]string{"sbatch"}, slurm.SbatchArgs(req)...))
}
