package slurm

import (
	"fmt"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// SbatchArgs is the sbatch argument list (without "sbatch") for a request, as the slurm
// scheduler runs it and as `planner render` prints it.
func SbatchArgs(req scheduler.JobRequest) []string {
	args := []string{"--parsable"}
	add := func(flag, v string) {
		if v != "" {
			args = append(args, flag+"="+v)
		}
	}
	add("--job-name", req.Name)
	add("--comment", req.Comment)
	add("--partition", req.Partition)
	add("--account", req.Account)
	if req.TimeLimit > 0 {
		args = append(args, "--time="+FormatMinutes(req.TimeLimit))
	}
	if req.Nodes > 0 {
		args = append(args, fmt.Sprintf("--nodes=%d", req.Nodes))
	}
	if req.NTasks > 0 {
		args = append(args, fmt.Sprintf("--ntasks=%d", req.NTasks))
	}
	if req.PerNode > 0 {
		args = append(args, fmt.Sprintf("--ntasks-per-node=%d", req.PerNode))
	}
	if req.Segment > 0 {
		args = append(args, fmt.Sprintf("--segment=%d", req.Segment))
	}
	add("--dependency", req.Dependency)
	add("--chdir", req.WorkDir)
	out, errf := req.Output, req.Error
	if out == "" && req.LogDir != "" {
		out = req.LogDir + "/slurm-%j.out"
	}
	if errf == "" && req.LogDir != "" {
		errf = req.LogDir + "/slurm-%j.err"
	}
	add("--output", out)
	add("--error", errf)
	args = append(args, req.Resources...)
	args = append(args, req.ExtraArgs...)
	args = append(args, req.Script)
	return append(args, req.Args...)
}

// FormatMinutes renders a duration as SLURM's D-HH:MM:SS, rounded up to whole minutes
// (SLURM counts time limits in minutes).
func FormatMinutes(d time.Duration) string {
	m := int((d + time.Minute - 1) / time.Minute)
	days, h, mm := m/(24*60), (m/60)%24, m%60
	if days > 0 {
		return fmt.Sprintf("%d-%02d:%02d:00", days, h, mm)
	}
	return fmt.Sprintf("%02d:%02d:00", h, mm)
}
