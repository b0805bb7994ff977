// Package local is a scheduler.Scheduler for one machine: each job script runs as a
// child process with the variables a SLURM job sees, its record kept in files so that any
// process can query or cancel it.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The local scheduler runs each job script as a child process of the process that
// submitted it (its supervisor), in its own process group, with the variables a SLURM job
// sees. Everything about a job lives in files under the state folder, so any process can
// ask for its status, find it by name or cancel it:
//
//	<state>/.lock          flock guarding every change below
//	<state>/next_id        the next job id (ids never repeat, across restarts too)
//	<state>/jobs/<id>.json one job's record, replaced atomically on every change
//
// A job whose record says PENDING or RUNNING while its supervisor is gone will never be
// finished by anyone: the next Status or FindByName marks it NODE_FAIL (as SLURM does for
// a job whose node died) and kills what is left of its process group.

// Options configures the local scheduler. The zero value is usable.
type Options struct {
	// MaxParallel caps how many of this instance's jobs run at once; the others wait
	// PENDING with reason "Resources". 0 means no cap.
	MaxParallel int
	// KillGrace is how long a cancelled or timed-out job has between SIGTERM and SIGKILL
	// (SLURM's KillWait). Default 10 s.
	KillGrace time.Duration
	// Shell runs the job scripts. Default "bash".
	Shell string
	// Logger receives job starts and ends. Default: discarded.
	Logger *slog.Logger
}

// Local is the Scheduler that runs jobs on this machine.
type Scheduler struct {
	dir  string
	opts Options
	self localProc // this process: every job it starts names it as supervisor
	uid  string

	mu      sync.Mutex
	closed  bool
	running map[string]*localJob // jobs this instance has started or is starting
	queue   []*localJob          // jobs waiting for a slot (MaxParallel)
	wg      sync.WaitGroup       // supervisors and kill timers
	lockSem chan struct{}        // holds one token while this instance holds the state lock
}

var _ scheduler.Scheduler = (*Scheduler)(nil)

// localJob is a job this instance supervises.
type localJob struct {
	id     string
	req    scheduler.JobRequest
	cancel chan struct{} // signalled (buffered) when a cancel was recorded
}

// localRecord is a job's state file.
type localRecord struct {
	ID        string        `json:"id"`
	Name      string        `json:"name"`
	Comment   string        `json:"comment,omitempty"`
	State     string        `json:"state"`
	Detail    string        `json:"detail"`
	Reason    string        `json:"reason,omitempty"`
	ExitCode  int           `json:"exit_code"`
	Signal    int           `json:"signal"`
	Submit    time.Time     `json:"submit"`
	Start     time.Time     `json:"start,omitzero"`
	End       time.Time     `json:"end,omitzero"`
	NodeList  string        `json:"node_list,omitempty"`
	TimeLimit time.Duration `json:"time_limit,omitempty"`
	Output    string        `json:"output"`
	Error     string        `json:"error"`
	// Pid is the job script's process, also its process group; PidStart tells it apart
	// from a later process that reuses the pid.
	Pid      int    `json:"pid,omitempty"`
	PidStart uint64 `json:"pid_start,omitempty"`
	// Supervisor is the process that started the job and records its end.
	Supervisor      int    `json:"supervisor"`
	SupervisorStart uint64 `json:"supervisor_start,omitempty"`
	// CancelBy is the uid that asked to cancel the job.
	CancelBy string `json:"cancel_by,omitempty"`
}

// New returns a local scheduler keeping its state under stateDir (created if
// missing). Several instances, in one process or several, may share a stateDir.
func New(stateDir string, opts Options) (*Scheduler, error) {
	if stateDir == "" {
		return nil, errors.New("local scheduler: empty state folder")
	}
	dir, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o755); err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	if opts.KillGrace <= 0 {
		opts.KillGrace = 10 * time.Second
	}
	if opts.Shell == "" {
		opts.Shell = "bash"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	pid := os.Getpid()
	return &Scheduler{
		dir:     dir,
		opts:    opts,
		self:    localProc{pid, localProcStart(pid)},
		uid:     strconv.Itoa(os.Getuid()),
		running: map[string]*localJob{},
		lockSem: make(chan struct{}, 1),
	}, nil
}

// Name is "local".
func (l *Scheduler) Name() string { return "local" }

// Submit records the job and starts it (or queues it when MaxParallel jobs run). The job
// runs until it ends, is cancelled or exceeds its time limit, whatever happens to ctx,
// which only bounds the submission itself.
func (l *Scheduler) Submit(ctx context.Context, req scheduler.JobRequest) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if req.Script == "" {
		return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: "local: no job script"}
	}
	if st, err := os.Stat(req.Script); err != nil || st.IsDir() {
		msg := fmt.Sprintf("local: job script %s is not a file", req.Script)
		if err != nil {
			msg = "local: " + err.Error()
		}
		return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: msg}
	}
	for k, v := range req.Env {
		if err := scheduler.CheckJobEnv(k, v); err != nil {
			return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: "local: " + err.Error()}
		}
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return "", &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: "local: scheduler closed"}
	}

	var rec localRecord
	err := l.locked(ctx, func() error {
		id, err := l.nextIDLocked()
		if err != nil {
			return err
		}
		rec = localRecord{
			ID: id, Name: req.Name, Comment: req.Comment,
			State: scheduler.Pending, Detail: scheduler.Pending,
			Submit:     time.Now().UTC(),
			TimeLimit:  req.TimeLimit,
			Output:     localExpand(localLogPath(req.Output, req, l.dir, "out"), id, req.Name),
			Error:      localExpand(localLogPath(req.Error, req, l.dir, "err"), id, req.Name),
			Supervisor: l.self.pid, SupervisorStart: l.self.start,
		}
		return l.writeLocked(&rec)
	})
	if err != nil {
		return "", &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: err.Error()}
	}

	job := &localJob{id: rec.ID, req: req, cancel: make(chan struct{}, 1)}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		l.cancelPending(rec.ID, "the local scheduler closed before the job started")
		return rec.ID, nil
	case l.opts.MaxParallel <= 0 || len(l.running) < l.opts.MaxParallel:
		l.running[rec.ID] = job
		l.wg.Add(1)
		go l.run(job)
		l.mu.Unlock()
	default:
		l.queue = append(l.queue, job)
		l.mu.Unlock()
		_ = l.update(context.Background(), rec.ID, func(r *localRecord) bool {
			if r.State != scheduler.Pending {
				return false
			}
			r.Reason = "Resources"
			return true
		})
	}
	return rec.ID, nil
}

// run supervises one job, then hands its slot to the next queued job.
func (l *Scheduler) run(job *localJob) {
	defer l.wg.Done()
	defer l.next(job)
	l.supervise(job)
}

// next frees a finished job's slot and starts queued jobs while slots are free.
func (l *Scheduler) next(done *localJob) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.running, done.id)
	for !l.closed && len(l.queue) > 0 && (l.opts.MaxParallel <= 0 || len(l.running) < l.opts.MaxParallel) {
		j := l.queue[0]
		l.queue = l.queue[1:]
		l.running[j.id] = j
		l.wg.Add(1)
		go l.run(j)
	}
}

// supervise starts the job's process, enforces its time limit and cancellation, and
// records how it ended.
func (l *Scheduler) supervise(job *localJob) {
	ctx := context.Background() // a job's records must be written whatever its submitter does
	req := job.req
	var cmd *exec.Cmd
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var rec localRecord
	err := l.update(ctx, job.id, func(r *localRecord) bool {
		if r.State != scheduler.Pending {
			return false // cancelled while queued
		}
		r.Start = time.Now().UTC()
		r.Reason = ""
		var err error
		cmd, files, err = l.command(r, req)
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			cmd = nil
			r.State, r.Detail, r.ExitCode, r.End = scheduler.Failed, scheduler.Failed, 1, r.Start
			r.Reason = "cannot start the job: " + err.Error()
			l.opts.Logger.Error("local job failed to start", "job", r.ID, "name", r.Name, "err", err)
		} else {
			r.State, r.Detail, r.NodeList = scheduler.Running, scheduler.Running, "localhost"
			r.Pid, r.PidStart = cmd.Process.Pid, localProcStart(cmd.Process.Pid)
			l.opts.Logger.Info("local job started", "job", r.ID, "name", r.Name, "pid", r.Pid)
		}
		rec = *r
		return true
	})
	if err != nil {
		l.opts.Logger.Error("local job record", "job", job.id, "err", err)
		if cmd != nil {
			localKillGroup(cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
		}
		return
	}
	if cmd == nil {
		return
	}

	timedOut := l.wait(job, cmd, rec)
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	err = l.update(ctx, job.id, func(r *localRecord) bool {
		ended(r, ws, timedOut)
		rec = *r
		return true
	})
	if err != nil {
		l.opts.Logger.Error("local job record", "job", job.id, "err", err)
		return
	}
	l.opts.Logger.Info("local job ended", "job", rec.ID, "name", rec.Name, "state", rec.Detail,
		"exit_code", rec.ExitCode, "signal", rec.Signal, "elapsed", rec.End.Sub(rec.Start).Round(time.Millisecond))
}

// command builds the job's process: the shell running the script with its arguments in
// its own process group, its working folder, output files and environment.
func (l *Scheduler) command(r *localRecord, req scheduler.JobRequest) (*exec.Cmd, []*os.File, error) {
	var files []*os.File
	open := func(path string) (*os.File, error) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			files = append(files, f)
		}
		return f, err
	}
	stdout, err := open(r.Output)
	if err != nil {
		return nil, files, err
	}
	stderr := stdout
	if r.Error != r.Output {
		if stderr, err = open(r.Error); err != nil {
			return nil, files, err
		}
	}
	cmd := exec.Command(l.opts.Shell, append([]string{req.Script}, req.Args...)...)
	cmd.Dir = localFirst(req.WorkDir, req.LogDir)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = l.environ(r, req)
	return cmd, files, nil
}

// environ is the job's environment: this process's without its secrets and the
// request's (JobEnviron), then the variables SLURM sets for a batch job (which win).
func (l *Scheduler) environ(r *localRecord, req scheduler.JobRequest) []string {
	env := scheduler.JobEnviron(os.Environ(), req.Env)
	nodes, ntasks := max(req.Nodes, 1), req.NTasks
	if ntasks <= 0 {
		ntasks = max(req.PerNode, 1) * nodes
	}
	submitDir, _ := os.Getwd()
	host, _ := os.Hostname()
	set := func(k, v string) { env = append(env, k+"="+v) }
	set("SLURM_JOB_ID", r.ID)
	set("SLURM_JOBID", r.ID)
	set("SLURM_JOB_NAME", r.Name)
	set("SLURM_JOB_NUM_NODES", strconv.Itoa(nodes))
	set("SLURM_NNODES", strconv.Itoa(nodes))
	set("SLURM_NTASKS", strconv.Itoa(ntasks))
	set("SLURM_NPROCS", strconv.Itoa(ntasks))
	if req.PerNode > 0 {
		set("SLURM_NTASKS_PER_NODE", strconv.Itoa(req.PerNode))
	}
	set("SLURM_JOB_NODELIST", "localhost")
	set("SLURM_NODELIST", "localhost")
	set("SLURMD_NODENAME", "localhost")
	set("SLURM_NODEID", "0")
	set("SLURM_PROCID", "0")
	set("SLURM_LOCALID", "0")
	set("SLURM_CPUS_ON_NODE", strconv.Itoa(runtime.NumCPU()))
	set("SLURM_SUBMIT_DIR", submitDir)
	set("SLURM_SUBMIT_HOST", host)
	set("SLURM_JOB_PARTITION", localFirst(req.Partition, "local"))
	if req.Account != "" {
		set("SLURM_JOB_ACCOUNT", req.Account)
	}
	set("SLURM_CLUSTER_NAME", "local")
	// Tells a job script that no SLURM is around (no srun, no scontrol).
	set("DISAGGBENCH_SCHEDULER", "local")
	set("SLURM_JOB_START_TIME", strconv.FormatInt(r.Start.Unix(), 10))
	if r.TimeLimit > 0 {
		set("SLURM_JOB_END_TIME", strconv.FormatInt(r.Start.Add(r.TimeLimit).Unix(), 10))
	}
	return env
}

// Status returns the recorded state of each known job; unknown ids are absent. since is
// not needed: local jobs are looked up by id.
func (l *Scheduler) Status(ctx context.Context, since time.Time, ids []string) (map[string]scheduler.JobStatus, error) {
	out := make(map[string]scheduler.JobStatus, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, ok, err := l.read(id)
		if err != nil {
			// One unreadable record must not hide the other jobs: it stays absent.
			l.opts.Logger.Error("local job record unreadable", "job", id, "err", err)
			continue
		}
		if !ok {
			continue
		}
		if rec, err = l.reap(ctx, rec); err != nil {
			return nil, err
		}
		out[id] = rec.status()
	}
	return out, nil
}

// FindByName returns the jobs named name submitted at or after since (all when since is
// zero), in id order.
func (l *Scheduler) FindByName(ctx context.Context, since time.Time, name string) ([]scheduler.JobStatus, error) {
	entries, err := os.ReadDir(filepath.Join(l.dir, "jobs"))
	if err != nil {
		return nil, fmt.Errorf("local scheduler: %w", err)
	}
	var ids []int
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if id, err := strconv.Atoi(n); err == nil {
			ids = append(ids, id)
		}
	}
	sort.Ints(ids)
	var out []scheduler.JobStatus
	for _, n := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, ok, err := l.read(strconv.Itoa(n))
		if err != nil {
			l.opts.Logger.Error("local job record unreadable", "job", n, "err", err)
			continue
		}
		if !ok || rec.Name != name || (!since.IsZero() && rec.Submit.Before(since)) {
			continue
		}
		if rec, err = l.reap(ctx, rec); err != nil {
			return nil, err
		}
		out = append(out, rec.status())
	}
	return out, nil
}

// Comment returns the comment the job was submitted with.
func (l *Scheduler) Comment(ctx context.Context, id string) (string, error) {
	rec, ok, err := l.read(id)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("local scheduler: no job %s", id)
	}
	return rec.Comment, nil
}

// Cancel stops a job: a pending job is cancelled at once; a running one gets SIGTERM on
// its process group and SIGKILL after KillGrace, and ends CANCELLED. Cancelling a finished
// job does nothing. Any instance sharing the state folder may cancel any job.
func (l *Scheduler) Cancel(ctx context.Context, id string) error {
	rec, ok, err := l.read(id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("local scheduler: cancel %s: %w", id, errLocalUnknownJob)
	}
	if scheduler.IsTerminal(rec.State) {
		return nil
	}
	var signal bool
	err = l.update(ctx, id, func(r *localRecord) bool {
		switch {
		case scheduler.IsTerminal(r.State) || r.CancelBy != "":
			return false
		case r.State == scheduler.Pending:
			r.CancelBy = l.uid
			r.State, r.Detail, r.End = scheduler.Cancelled, scheduler.Cancelled+" by "+l.uid, time.Now().UTC()
			r.Reason = ""
		default:
			r.CancelBy = l.uid
			signal = true
		}
		rec = *r
		return true
	})
	if err != nil || !signal {
		return err
	}
	l.mu.Lock()
	job := l.running[id]
	l.mu.Unlock()
	if job != nil {
		select {
		case job.cancel <- struct{}{}:
		default:
		}
		return nil
	}
	// Another instance supervises the job: signal its group from here; that instance
	// records the end (as CANCELLED, since the record now names the canceller).
	p := localProc{rec.Pid, rec.PidStart}
	if !p.alive() {
		return nil
	}
	localKillGroup(p.pid, syscall.SIGTERM)
	escalate := func() { l.escalate(p) }
	l.mu.Lock()
	if l.closed { // Close may be waiting already: no new goroutine to wait for
		l.mu.Unlock()
		escalate()
		return nil
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		escalate()
	}()
	return nil
}

// errLocalUnknownJob is returned for a job id the local scheduler has no record of.
var errLocalUnknownJob = errors.New("unknown job")

// Close stops starting jobs: queued jobs are cancelled, and Close waits for the running
// ones (and pending kill timers) to end. Cancel running jobs first to end them early.
func (l *Scheduler) Close() error {
	l.mu.Lock()
	l.closed = true
	queued := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, j := range queued {
		l.cancelPending(j.id, "the local scheduler closed before the job started")
	}
	l.wg.Wait()
	return nil
}

// cancelPending records a job that never started as cancelled.
func (l *Scheduler) cancelPending(id, reason string) {
	_ = l.update(context.Background(), id, func(r *localRecord) bool {
		if r.State != scheduler.Pending {
			return false
		}
		r.CancelBy = l.uid
		r.State, r.Detail, r.End, r.Reason = scheduler.Cancelled, scheduler.Cancelled+" by "+l.uid, time.Now().UTC(), reason
		return true
	})
}

// reap ends a job whose supervisor is gone: it can no longer be finished by anyone. It is
// recorded NODE_FAIL (CANCELLED if a cancel was asked) and its process group is killed.
func (l *Scheduler) reap(ctx context.Context, rec localRecord) (localRecord, error) {
	if scheduler.IsTerminal(rec.State) || (localProc{rec.Supervisor, rec.SupervisorStart}).alive() {
		return rec, nil
	}
	err := l.update(ctx, rec.ID, func(r *localRecord) bool {
		if scheduler.IsTerminal(r.State) || (localProc{r.Supervisor, r.SupervisorStart}).alive() {
			rec = *r
			return false
		}
		if p := (localProc{r.Pid, r.PidStart}); r.Pid > 0 && p.alive() {
			localKillGroup(r.Pid, syscall.SIGKILL)
		}
		r.End = time.Now().UTC()
		if r.CancelBy != "" {
			r.State, r.Detail = scheduler.Cancelled, scheduler.Cancelled+" by "+r.CancelBy
		} else {
			r.State, r.Detail = scheduler.NodeFail, scheduler.NodeFail
		}
		r.Reason = fmt.Sprintf("supervising process %d is gone; the job's end was never recorded", r.Supervisor)
		rec = *r
		return true
	})
	return rec, err
}

func (r localRecord) status() scheduler.JobStatus {
	s := scheduler.JobStatus{
		ID: r.ID, State: r.State, Detail: r.Detail, Reason: r.Reason,
		ExitCode: r.ExitCode, Signal: r.Signal,
		Submit: r.Submit, Start: r.Start, End: r.End,
		NodeList: r.NodeList, Name: r.Name,
	}
	switch {
	case r.Start.IsZero():
	case r.End.IsZero():
		s.Elapsed = time.Since(r.Start)
	default:
		s.Elapsed = r.End.Sub(r.Start)
	}
	return s
}

// read returns a job's record; ok is false when there is none.
func (l *Scheduler) read(id string) (localRecord, bool, error) {
	var rec localRecord
	if !localValidID(id) {
		return rec, false, nil
	}
	data, err := os.ReadFile(l.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("local scheduler: %w", err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, false, fmt.Errorf("local scheduler: %s: %w", l.recordPath(id), err)
	}
	return rec, true, nil
}

// update applies fn to a job's record under the state lock and writes it back when fn
// returns true.
func (l *Scheduler) update(ctx context.Context, id string, fn func(*localRecord) bool) error {
	return l.locked(ctx, func() error {
		rec, ok, err := l.read(id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("local scheduler: job %s: %w", id, errLocalUnknownJob)
		}
		if !fn(&rec) {
			return nil
		}
		return l.writeLocked(&rec)
	})
}

// writeLocked replaces a job's record atomically. The caller holds the state lock.
func (l *Scheduler) writeLocked(rec *localRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return localWriteFile(l.recordPath(rec.ID), append(data, '\n'))
}

// nextIDLocked takes the next job id. The caller holds the state lock.
func (l *Scheduler) nextIDLocked() (string, error) {
	path := filepath.Join(l.dir, "next_id")
	next := 0
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if next, err = strconv.Atoi(string(bytes.TrimSpace(data))); err != nil || next < 1 {
			return "", fmt.Errorf("local scheduler: %s: bad id counter %q", path, data)
		}
	case errors.Is(err, os.ErrNotExist):
		// A fresh (or lost) counter starts after the highest recorded job.
		next = 1
		entries, _ := os.ReadDir(filepath.Join(l.dir, "jobs"))
		for _, e := range entries {
			if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
				if id, err := strconv.Atoi(n); err == nil && id >= next {
					next = id + 1
				}
			}
		}
	default:
		return "", fmt.Errorf("local scheduler: %w", err)
	}
	if err := localWriteFile(path, []byte(strconv.Itoa(next+1)+"\n")); err != nil {
		return "", err
	}
	return strconv.Itoa(next), nil
}

// locked runs fn holding the state folder's exclusive lock, waiting for it as long as
// ctx allows. Goroutines of one instance queue on a mutex first, so the file lock is only
// contended between instances.
func (l *Scheduler) locked(ctx context.Context, fn func() error) error {
	select { // a buffered channel as a mutex that a waiter can give up on
	case l.lockSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.lockSem }()
	f, err := os.OpenFile(filepath.Join(l.dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("local scheduler: %w", err)
	}
	if err := localFlock(ctx, f); err != nil {
		return fmt.Errorf("local scheduler: lock %s: %w", f.Name(), err)
	}
	defer f.Close() // closing releases the lock
	return fn()
}

// localFlock takes an exclusive flock on f, waiting as long as ctx allows. On success the
// caller owns f (closing it releases the lock); on failure f is closed, at once or, when
// ctx ended the wait, as soon as the abandoned wait returns.
func localFlock(ctx context.Context, f *os.File) error {
	lock := func(how int) error {
		for {
			err := syscall.Flock(int(f.Fd()), how)
			if !errors.Is(err, syscall.EINTR) {
				return err
			}
		}
	}
	err := lock(syscall.LOCK_EX | syscall.LOCK_NB)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return err
	}
	got := make(chan error, 1)
	go func() { got <- lock(syscall.LOCK_EX) }()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
		}
		return err
	case <-ctx.Done():
		go func() {
			<-got
			f.Close()
		}()
		return ctx.Err()
	}
}

func (l *Scheduler) recordPath(id string) string {
	return filepath.Join(l.dir, "jobs", id+".json")
}

// localValidID reports whether id is a local job id (a positive integer), so that no id can
// name a path outside the state folder.
func localValidID(id string) bool {
	n, err := strconv.Atoi(id)
	return err == nil && n > 0 && strconv.Itoa(n) == id
}

// localLogPath is the job's output or error path before %-expansion: the request's, or
// slurm-%j.<ext> in the log folder (else the working folder, else the state folder).
func localLogPath(p string, req scheduler.JobRequest, stateDir, ext string) string {
	if p != "" {
		return p
	}
	return filepath.Join(localFirst(req.LogDir, req.WorkDir, filepath.Join(stateDir, "logs")), "slurm-%j."+ext)
}

// localExpand replaces sbatch's %j (job id), %x (job name) and %% in a file name.
func localExpand(p, id, name string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+1 == len(p) {
			b.WriteByte(p[i])
			continue
		}
		switch p[i+1] {
		case 'j':
			b.WriteString(id)
		case 'x':
			b.WriteString(name)
		case '%':
			b.WriteByte('%')
		default:
			b.WriteString(p[i : i+2])
		}
		i++
	}
	return b.String()
}

// localWriteFile writes data beside path and renames it over path.
func localWriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("local scheduler: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("local scheduler: write %s: %w", path, err)
	}
	return nil
}

// localKillGroup sends sig to the process group led by pid.
func localKillGroup(pid int, sig syscall.Signal) {
	if pid > 1 {
		_ = syscall.Kill(-pid, sig)
	}
}

// localProc names a process: its pid and, where /proc tells it, its start time, which tells
// it apart from a later process with the same pid.
type localProc struct {
	pid   int
	start uint64
}

// alive reports whether the process still runs (a zombie does not count).
func (p localProc) alive() bool {
	if p.pid <= 0 {
		return false
	}
	if err := syscall.Kill(p.pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	state, start, ok := localProcStat(p.pid)
	if !ok {
		return true // no /proc: the signal check is all there is
	}
	return state != 'Z' && state != 'X' && (p.start == 0 || start == p.start)
}

// localProcStart is the process's start time in clock ticks since boot, 0 when unknown.
func localProcStart(pid int) uint64 {
	_, start, _ := localProcStat(pid)
	return start
}

// localProcStat reads a process's state letter and start time from /proc/<pid>/stat.
func localProcStat(pid int) (state byte, start uint64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name (field 2) may hold spaces and parentheses: fields resume after
	// the last ')'. Field 3 is the state, field 22 the start time.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], start, true
}

// localFirst returns the first non-empty string.
func localFirst(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// wait waits for a started job's script to end, stopping it (SIGTERM, then SIGKILL after
// the grace) at its time limit or when cancelled; it reports a time-out.
func (l *Scheduler) wait(job *localJob, cmd *exec.Cmd, rec localRecord) bool {
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var limit, kill <-chan time.Time
	if rec.TimeLimit > 0 {
		t := time.NewTimer(time.Until(rec.Start.Add(rec.TimeLimit)))
		defer t.Stop()
		limit = t.C
	}
	timedOut := false
	stop := func() {
		if kill != nil {
			return // already stopping
		}
		localKillGroup(rec.Pid, syscall.SIGTERM)
		t := time.NewTimer(l.opts.KillGrace)
		kill = t.C
	}
wait:
	for {
		select {
		case <-exited:
			break wait
		case <-limit:
			timedOut = true
			limit = nil
			stop()
		case <-job.cancel:
			stop()
		case <-kill:
			localKillGroup(rec.Pid, syscall.SIGKILL)
			kill = nil
		}
	}
	// Whatever the script left running in its group ends with it, as under SLURM.
	localKillGroup(rec.Pid, syscall.SIGKILL)
	return timedOut

}

// ended records how a job's script ended: cancelled, timed out, completed or failed.
func ended(r *localRecord, ws syscall.WaitStatus, timedOut bool) {
	r.End = time.Now().UTC()
	r.ExitCode, r.Signal = 0, 0
	switch {
	case ws.Signaled():
		r.Signal = int(ws.Signal())
	default:
		r.ExitCode = ws.ExitStatus()
	}
	switch {
	case r.CancelBy != "":
		r.State, r.Detail = scheduler.Cancelled, scheduler.Cancelled+" by "+r.CancelBy
	case timedOut:
		r.State, r.Detail = scheduler.Timeout, scheduler.Timeout
		r.Reason = fmt.Sprintf("time limit of %s exceeded", r.TimeLimit)
	case r.Signal == 0 && r.ExitCode == 0:
		r.State, r.Detail = scheduler.Completed, scheduler.Completed
	default:
		r.State, r.Detail = scheduler.Failed, scheduler.Failed
	}
}

// escalate sends SIGKILL to a cancelled job's group that is still alive after the grace.
func (l *Scheduler) escalate(p localProc) {
	t := time.NewTimer(l.opts.KillGrace)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			if p.alive() {
				localKillGroup(p.pid, syscall.SIGKILL)
			}
			return
		case <-tick.C:
			if !p.alive() {
				return
			}
		}
	}
}
