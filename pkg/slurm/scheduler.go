// Package slurm owns the implementations of the scheduler.Scheduler interface that the
// submitter and the watcher use: the real SLURM (sbatch, sacct, squeue, scancel, all run
// as argv) and a local scheduler that runs job scripts as child processes on one machine.
package slurm

import (
	"fmt"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// The shared types, under the names the implementations and their callers use.
type (
	JobRequest      = scheduler.JobRequest
	JobStatus       = scheduler.JobStatus
	Scheduler       = scheduler.Scheduler
	QueueLister     = scheduler.QueueLister
	QueueEntry      = scheduler.QueueEntry
	Commenter       = scheduler.Commenter
	PendingReasoner = scheduler.PendingReasoner
	Dependent       = scheduler.Dependent
	SubmitError     = scheduler.SubmitError
)

// SLURM's job state names.
const (
	Pending      = scheduler.Pending
	Running      = scheduler.Running
	Completing   = scheduler.Completing
	Suspended    = scheduler.Suspended
	Requeued     = scheduler.Requeued
	Preempted    = scheduler.Preempted
	Completed    = scheduler.Completed
	Failed       = scheduler.Failed
	Timeout      = scheduler.Timeout
	Cancelled    = scheduler.Cancelled
	NodeFail     = scheduler.NodeFail
	OutOfMemory  = scheduler.OutOfMemory
	BootFail     = scheduler.BootFail
	Deadline     = scheduler.Deadline
	Revoked      = scheduler.Revoked
	SpecialExit  = scheduler.SpecialExit
	Resizing     = scheduler.Resizing
	StageOut     = scheduler.StageOut
	Signaling    = scheduler.Signaling
	RequeueHold  = scheduler.RequeueHold
	RequeueFed   = scheduler.RequeueFed
	ResvDelHold  = scheduler.ResvDelHold
	Stopped      = scheduler.Stopped
	Configuring  = scheduler.Configuring
	UnknownState = scheduler.UnknownState
)

// The submission errors: the same values as the scheduler package's.
var (
	ErrTransient = scheduler.ErrTransient
	ErrQuota     = scheduler.ErrQuota
	ErrPermanent = scheduler.ErrPermanent
)

// BaseState strips what SLURM appends to a state ("CANCELLED by 1000", "COMPLETED+").
func BaseState(s string) string { return scheduler.BaseState(s) }

// IsTerminal reports whether a job in this state will not run again on its own.
func IsTerminal(state string) bool { return scheduler.IsTerminal(state) }

// SbatchArgs is the sbatch argument list (without "sbatch") for a request, as the slurm
// scheduler runs it and as `planner render` prints it.
func SbatchArgs(req JobRequest) []string {
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

// The job environment's rules, as the scheduler package states them.
var (
	JobEnviron  = scheduler.JobEnviron
	CheckJobEnv = scheduler.CheckJobEnv
	SecretEnv   = scheduler.SecretEnv
)
