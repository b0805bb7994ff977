// Package fake has an in-memory Scheduler for unit tests and benchmarks of the
// stages. It is never the only proof: the pipeline's tests also run on the local
// scheduler and on a real SLURM.
package fake

import (
	"cmp"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Fake runs no code: a job is RUNNING from submission until its Duration passes (or it
// is cancelled), then it ends in FinalState.
type Fake struct {
	// Duration of every job; 0 completes jobs at once.
	Duration time.Duration
	// FinalState of a job that runs out its duration (default COMPLETED).
	FinalState string
	// Outcome, when set, gives each job its own duration and final state from its
	// request, instead of Duration and FinalState.
	Outcome func(req scheduler.JobRequest) (time.Duration, string)
	// SubmitErr, when set, is returned (and cleared when it was transient) by Submit.
	SubmitErr func(req scheduler.JobRequest) error
	// StatusErr, when set, fails Status calls.
	StatusErr func() error
	// Hidden makes a job absent from Status answers until this long after submission.
	Hidden time.Duration
	// AccountingLag keeps an ended job RUNNING in Status answers this long after its end,
	// as slurmdbd may lag behind the controller.
	AccountingLag time.Duration
	// States, when set, gives the states the n-th submission (from 1) of a job name goes
	// through: each but the last for an equal share of its duration, the last (even a
	// state SLURM does not call final, PREEMPTED) from then on. Nil or empty: as
	// without it.
	States func(req scheduler.JobRequest, n int) []string
	// NodeList, when set, is the node list Status reports for the n-th submission of a
	// job name (default "fake-node").
	NodeList func(req scheduler.JobRequest, n int) string

	mu           sync.Mutex
	next         int
	jobs         map[string]*job
	submits      map[string]int // by job name
	statusCalls  int
	queueCalls   int
	maxActive    int
	startedOrder []string
}

type job struct {
	req       scheduler.JobRequest
	deps      []string // job ids of an afterany dependency: PENDING until one ends
	states    []string
	nodes     string
	id        string
	submitted time.Time
	ended     time.Time
	state     string
	own       bool // dur and final are the job's own (Outcome)
	dur       time.Duration
	final     string
}

// New returns a Fake whose jobs take d.
func New(d time.Duration) *Fake { return &Fake{Duration: d} }

func (f *Fake) Name() string { return "fake" }

func (f *Fake) Submit(ctx context.Context, req scheduler.JobRequest) (string, error) {
	if f.SubmitErr != nil {
		if err := f.SubmitErr(req); err != nil {
			return "", err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.jobs == nil {
		f.jobs, f.submits = map[string]*job{}, map[string]int{}
	}
	f.next++
	id := strconv.Itoa(1000 + f.next)
	f.submits[req.Name]++
	j := &job{req: req, id: id, submitted: time.Now(), nodes: "fake-node"}
	if f.Outcome != nil {
		j.own = true
		j.dur, j.final = f.Outcome(req)
	}
	if f.States != nil {
		j.states = f.States(req, f.submits[req.Name])
	}
	if f.NodeList != nil {
		j.nodes = f.NodeList(req, f.submits[req.Name])
	}
	for _, d := range strings.Split(req.Dependency, "?") {
		if dep, ok := strings.CutPrefix(d, "afterany:"); ok {
			j.deps = append(j.deps, dep)
		}
	}
	f.jobs[id] = j
	f.startedOrder = append(f.startedOrder, req.Name)
	if f.Duration > 0 || f.FinalState != "" {
		f.maxActive = max(f.maxActive, f.activeLocked(time.Now()))
	}
	return id, nil
}

// startLocked is when the job started running: at submission, or when the first of the
// jobs it depends on ended; ok is false while it waits.
func (f *Fake) startLocked(j *job, now time.Time) (time.Time, bool) {
	if len(j.deps) == 0 {
		return j.submitted, true
	}
	var first time.Time
	for _, id := range j.deps {
		d, ok := f.jobs[id]
		if !ok || !f.endedLocked(d, now) {
			continue
		}
		if _, end := f.stateLocked(d, now); first.IsZero() || end.Before(first) {
			first = end
		}
	}
	if first.IsZero() {
		return first, false
	}
	if first.Before(j.submitted) {
		first = j.submitted
	}
	return first, true
}

func (f *Fake) durationLocked(j *job) (time.Duration, string) {
	if j.own {
		return j.dur, j.final
	}
	return f.Duration, f.FinalState
}

func (f *Fake) stateLocked(j *job, now time.Time) (string, time.Time) {
	if j.state != "" {
		return j.state, j.ended
	}
	start, ok := f.startLocked(j, now)
	if !ok {
		return scheduler.Pending, time.Time{}
	}
	dur, final := f.durationLocked(j)
	end := start.Add(dur)
	if n := len(j.states); n > 0 {
		if now.Before(end) {
			if n == 1 {
				return scheduler.Running, time.Time{}
			}
			k := int(now.Sub(start) * time.Duration(n-1) / dur)
			return j.states[min(k, n-2)], time.Time{}
		}
		return j.states[n-1], end
	}
	if now.Before(end) {
		return scheduler.Running, time.Time{}
	}
	return cmp.Or(final, scheduler.Completed), end
}

// endedLocked reports whether the job has left the queue: cancelled, or past its
// duration.
func (f *Fake) endedLocked(j *job, now time.Time) bool {
	if j.state != "" {
		return true
	}
	start, ok := f.startLocked(j, now)
	dur, _ := f.durationLocked(j)
	return ok && !now.Before(start.Add(dur))
}

// AfterAny makes the Fake a scheduler.Dependent: "afterany:A?afterany:B".
func (f *Fake) AfterAny(ids []string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = "afterany:" + id
	}
	return strings.Join(parts, "?")
}

func (f *Fake) activeLocked(now time.Time) int {
	n := 0
	for _, j := range f.jobs {
		if !f.endedLocked(j, now) {
			n++
		}
	}
	return n
}

func (f *Fake) Status(ctx context.Context, since time.Time, ids []string) (map[string]scheduler.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	if f.StatusErr != nil {
		if err := f.StatusErr(); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	out := make(map[string]scheduler.JobStatus, len(ids))
	for _, id := range ids {
		j, ok := f.jobs[id]
		if !ok || now.Sub(j.submitted) < f.Hidden {
			continue
		}
		st, end := f.stateLocked(j, now)
		if scheduler.IsTerminal(st) && now.Before(end.Add(f.AccountingLag)) {
			st, end = scheduler.Running, time.Time{}
		}
		code := 0
		if st == scheduler.Failed {
			code = 1
		}
		out[id] = scheduler.JobStatus{ID: id, State: scheduler.BaseState(st), Detail: st, Start: j.submitted, End: end,
			ExitCode: code, NodeList: j.nodes, Name: j.req.Name}
	}
	return out, nil
}

func (f *Fake) Cancel(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return errors.New("no such job " + id)
	}
	if !f.endedLocked(j, time.Now()) {
		j.state, j.ended = "CANCELLED by 0", time.Now()
	}
	return nil
}

// Comment returns the comment a job was submitted with.
func (f *Fake) Comment(ctx context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return "", errors.New("fake: no job " + id)
	}
	return j.req.Comment, nil
}

func (f *Fake) FindByName(ctx context.Context, since time.Time, name string) ([]scheduler.JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []scheduler.JobStatus
	for id, j := range f.jobs {
		if j.req.Name == name {
			st, _ := f.stateLocked(j, time.Now())
			out = append(out, scheduler.JobStatus{ID: id, State: scheduler.BaseState(st), Name: name})
		}
	}
	return out, nil
}

// Submits returns how many times a job name was submitted.
func (f *Fake) Submits(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.submits[name]
}

// TotalSubmits counts every submission.
func (f *Fake) TotalSubmits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next
}

// MaxActive is the most jobs seen queued or running at once, measured at submissions.
func (f *Fake) MaxActive() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

// StatusCalls counts Status queries.
func (f *Fake) StatusCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusCalls
}

// Order is the job names in submission order.
func (f *Fake) Order() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.startedOrder...)
}

// JobInfo is what a test may check of a fake job.
type JobInfo struct {
	ID, Name  string
	Req       scheduler.JobRequest
	Submitted time.Time
	Start     time.Time // zero while it waits on its dependency
	End       time.Time // zero while it runs
	State     string
}

// Jobs lists every job in submission order.
func (f *Fake) Jobs() []JobInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	out := make([]JobInfo, 0, len(f.jobs))
	for i := 1; i <= f.next; i++ {
		j := f.jobs[strconv.Itoa(1000+i)]
		st, end := f.stateLocked(j, now)
		start, _ := f.startLocked(j, now)
		out = append(out, JobInfo{ID: j.id, Name: j.req.Name, Req: j.req, Submitted: j.submitted, Start: start, End: end, State: st})
	}
	return out
}

// Queued is a Fake with a queue view (scheduler.QueueLister), as SLURM's squeue: jobs that
// have not ended, answered at once and never lagging.
type Queued struct{ *Fake }

// Queue lists the given jobs that have not ended.
func (q Queued) Queue(ctx context.Context, ids []string) (map[string]scheduler.QueueEntry, error) {
	f := q.Fake
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queueCalls++
	now := time.Now()
	out := map[string]scheduler.QueueEntry{}
	for _, id := range ids {
		if j, ok := f.jobs[id]; ok {
			if !f.endedLocked(j, now) {
				st, _ := f.stateLocked(j, now)
				out[id] = scheduler.QueueEntry{State: scheduler.BaseState(st), Detail: st}
			}
		}
	}
	return out, nil
}

// QueueCalls counts Queue queries.
func (f *Fake) QueueCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queueCalls
}

// Request is a job request the submitter accepts for a run's test whose files are in
// logDir: the job name and comment carry run and test, and the script is the job file
// named script.
func Request(run, test, logDir, script string) scheduler.JobRequest {
	return scheduler.JobRequest{Name: "disaggbench." + run + "." + test, Comment: events.JobComment(run, test),
		Script: filepath.Join(logDir, script), LogDir: logDir}
}
