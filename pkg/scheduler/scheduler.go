// Package scheduler holds what every scheduler shares, with no implementation: the
// Scheduler interface, a job's request and status, SLURM's state names (the local
// scheduler reports the same) and the submission errors. The event contract imports it;
// the implementations live below it: slurm (sbatch, squeue, sacct, scancel), local (job
// scripts as child processes on one machine) and fake (in memory, for the stages' unit
// tests); schedulertest is the conformance suite all three pass.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SLURM's job state names. Local jobs report the same names.
const (
	Pending      = "PENDING"
	Running      = "RUNNING"
	Completing   = "COMPLETING"
	Suspended    = "SUSPENDED"
	Requeued     = "REQUEUED"
	Preempted    = "PREEMPTED"
	Completed    = "COMPLETED"
	Failed       = "FAILED"
	Timeout      = "TIMEOUT"
	Cancelled    = "CANCELLED"
	NodeFail     = "NODE_FAIL"
	OutOfMemory  = "OUT_OF_MEMORY"
	BootFail     = "BOOT_FAIL"
	Deadline     = "DEADLINE"
	Revoked      = "REVOKED"
	SpecialExit  = "SPECIAL_EXIT"
	Resizing     = "RESIZING"
	StageOut     = "STAGE_OUT"
	Signaling    = "SIGNALING"
	RequeueHold  = "REQUEUE_HOLD"
	RequeueFed   = "REQUEUE_FED"
	ResvDelHold  = "RESV_DEL_HOLD"
	Stopped      = "STOPPED"
	Configuring  = "CONFIGURING"
	UnknownState = "UNKNOWN"
)

// BaseState strips what SLURM appends to a state ("CANCELLED by 1000", "COMPLETED+").
func BaseState(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " +"); i >= 0 {
		s = s[:i]
	}
	return strings.ToUpper(s)
}

// IsTerminal reports whether a job in this state will not run again on its own.
// PREEMPTED is not terminal: SLURM may requeue the job.
func IsTerminal(state string) bool {
	switch BaseState(state) {
	case Completed, Failed, Timeout, Cancelled, NodeFail, OutOfMemory, BootFail, Deadline, Revoked, SpecialExit:
		return true
	}
	return false
}

// JobRequest is everything a scheduler needs to start one job.
type JobRequest struct {
	Name       string            // --job-name; carries the run and test id
	Comment    string            // --comment
	Script     string            // the job script's path
	Args       []string          // the script's arguments
	WorkDir    string            // --chdir
	LogDir     string            // the test's log folder; created before submitting
	Output     string            // --output (may use %j); defaults to LogDir/slurm-%j.out
	Error      string            // --error; defaults to LogDir/slurm-%j.err
	Nodes      int               // --nodes
	NTasks     int               // --ntasks
	PerNode    int               // --ntasks-per-node
	Segment    int               // --segment, 0 = none
	TimeLimit  time.Duration     // --time, rounded up to whole minutes; 0 = none
	Partition  string            // --partition
	Account    string            // --account
	Resources  []string          // the GPU type's arguments, e.g. --gres=gpu:4
	ExtraArgs  []string          // the test's own sbatch arguments, already split and checked
	Dependency string            // --dependency, e.g. afterany:12?afterany:13; empty: none
	Env        map[string]string // extra environment for the job
}

// JobStatus is what the scheduler knows of one job.
type JobStatus struct {
	ID       string        `json:"id"`
	State    string        `json:"state"`  // base state name, e.g. CANCELLED
	Detail   string        `json:"detail"` // the raw state text, e.g. "CANCELLED by 0"
	Reason   string        `json:"reason,omitempty"`
	ExitCode int           `json:"exit_code"`
	Signal   int           `json:"signal"`
	Submit   time.Time     `json:"submit,omitzero"`
	Start    time.Time     `json:"start,omitzero"`
	End      time.Time     `json:"end,omitzero"`
	Elapsed  time.Duration `json:"elapsed"`
	NodeList string        `json:"node_list,omitempty"`
	Name     string        `json:"name,omitempty"`
}

// Scheduler runs jobs. Every method may be called from several goroutines.
type Scheduler interface {
	// Name is "slurm" or "local".
	Name() string
	// Submit starts a job and returns its id. Errors wrap ErrTransient when a retry may
	// succeed (timeouts, quota limits) and ErrPermanent when it never will.
	Submit(ctx context.Context, req JobRequest) (string, error)
	// Status returns what is known of the given jobs in one query. A job the scheduler
	// does not report (yet) is absent from the map; absent never means finished.
	Status(ctx context.Context, since time.Time, ids []string) (map[string]JobStatus, error)
	// Cancel asks the scheduler to stop a job.
	Cancel(ctx context.Context, id string) error
	// FindByName returns the jobs submitted since the given time with this job name.
	FindByName(ctx context.Context, since time.Time, name string) ([]JobStatus, error)
}

// QueueLister is implemented by schedulers with a cheap view of the jobs they still hold
// (SLURM's squeue, answered by the controller without the accounting database). The
// watcher asks it every second and asks Status only about jobs that left the queue.
type QueueLister interface {
	// Queue returns the given jobs the scheduler still holds (pending, running,
	// completing, ...). A job absent from the map has left the queue: it ended, or was
	// never known. Absent is not an answer about how it ended.
	Queue(ctx context.Context, ids []string) (map[string]QueueEntry, error)
}

// QueueEntry is one job in the scheduler's queue.
type QueueEntry struct {
	State  string // base state name, e.g. RUNNING
	Detail string // the raw state text
	Reason string // why it waits; empty when none
}

// Commenter is implemented by schedulers that report a queued or running job's comment
// (SLURM's --comment), so a caller can check a job is its own before cancelling it.
type Commenter interface {
	Comment(ctx context.Context, id string) (string, error)
}

// Dependent is implemented by schedulers that can hold a job until others end (SLURM's
// --dependency): AfterAny is the JobRequest.Dependency that releases a job when any of
// the given jobs ends, however it ends.
type Dependent interface {
	AfterAny(ids []string) string
}

// PendingReasoner is implemented by schedulers that can say why jobs wait.
type PendingReasoner interface {
	PendingReasons(ctx context.Context, ids []string) (map[string]string, error)
}

var (
	// ErrTransient marks a failure worth retrying later.
	ErrTransient = errors.New("transient scheduler error")
	// ErrQuota marks a submission refused for a per-user or per-account limit
	// (QOSMaxSubmitJobPerUserLimit, AssocMaxSubmitJobLimit, ...): transient, and never a
	// reason to fail a test, since the limit frees up as jobs end.
	ErrQuota = errors.New("scheduler quota reached")
	// ErrPermanent marks a failure that no retry will fix.
	ErrPermanent = errors.New("permanent scheduler error")
)

// SubmitError carries the scheduler's own message.
type SubmitError struct {
	Kind  error  // ErrTransient or ErrPermanent
	Quota bool   // a per-user or per-account limit refused it (a transient error)
	Msg   string // what the scheduler said
}

func (e *SubmitError) Error() string { return fmt.Sprintf("%v: %s", e.Kind, e.Msg) }
func (e *SubmitError) Unwrap() error { return e.Kind }

// Is makes errors.Is(err, ErrQuota) hold for a quota refusal.
func (e *SubmitError) Is(target error) bool { return target == ErrQuota && e.Quota }
