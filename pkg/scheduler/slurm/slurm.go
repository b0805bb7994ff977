// Package slurm is the real SLURM behind the scheduler.Scheduler interface: sbatch,
// squeue, sacct and scancel, each run as argv with the job's explicit environment.
package slurm

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of Options.
const (
	DefaultCommandTimeout = 30 * time.Second
	// DefaultMaxIDsPerCall keeps one sacct call per poll cycle up to a thousand tracked jobs
	// while keeping the -j argument (11 bytes per id) far below Linux's 128 KiB per argument.
	DefaultMaxIDsPerCall = 1000
)

// Options configures the SLURM scheduler. The zero value runs sbatch, sacct, squeue and
// scancel from PATH with the caller's environment.
type Options struct {
	// Sbatch, Sacct, Squeue and Scancel are the commands to run; empty means the bare name,
	// looked up in PATH.
	Sbatch, Sacct, Squeue, Scancel string
	// Conf, when set, is given to every command as SLURM_CONF. When empty the commands
	// inherit the caller's SLURM_CONF (or SLURM's compiled-in default).
	Conf string
	// Timeout bounds each command; 0 means DefaultCommandTimeout. A timed-out sbatch is a
	// transient error: the job may have been submitted all the same, so a caller retrying
	// should look for it with FindByName first.
	Timeout time.Duration
	// MaxIDsPerCall bounds the job ids in one sacct or squeue call; 0 means
	// DefaultMaxIDsPerCall. Status makes one call per this many ids.
	MaxIDsPerCall int
	// Run runs one command (argv[0] is the program) with env as its whole environment,
	// and returns what it printed. Nil means os/exec; tests put fakes here.
	Run func(ctx context.Context, argv, env []string) (stdout, stderr []byte, err error)
}

// SLURM is the Scheduler for a real SLURM cluster. Every call runs one SLURM command as an
// argument vector (never through a shell) with a timeout. It is safe for concurrent use.
type Scheduler struct {
	opts Options

	mu    sync.Mutex
	calls map[string]int64
}

var (
	_ scheduler.Scheduler       = (*Scheduler)(nil)
	_ scheduler.PendingReasoner = (*Scheduler)(nil)
	_ scheduler.QueueLister     = (*Scheduler)(nil)
	_ scheduler.Commenter       = (*Scheduler)(nil)
	_ scheduler.Dependent       = (*Scheduler)(nil)
)

// AfterAny returns "afterany:A?afterany:B...": SLURM releases the job when any of the
// given jobs ends. Invalid ids are left out.
func (s *Scheduler) AfterAny(ids []string) string {
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		if validJobID(id) {
			parts = append(parts, "afterany:"+id)
		}
	}
	return strings.Join(parts, "?")
}

// New returns a SLURM scheduler with the options' defaults applied.
func New(opts Options) *Scheduler {
	opts.Sbatch = cmp.Or(opts.Sbatch, "sbatch")
	opts.Sacct = cmp.Or(opts.Sacct, "sacct")
	opts.Squeue = cmp.Or(opts.Squeue, "squeue")
	opts.Scancel = cmp.Or(opts.Scancel, "scancel")
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultCommandTimeout
	}
	if opts.MaxIDsPerCall <= 0 {
		opts.MaxIDsPerCall = DefaultMaxIDsPerCall
	}
	if opts.Run == nil {
		opts.Run = execCommand
	}
	return &Scheduler{opts: opts, calls: map[string]int64{}}
}

// Name returns "slurm".
func (s *Scheduler) Name() string { return "slurm" }

// Calls returns how many times each command ("sbatch", "sacct", "squeue", "scancel") has
// run, failed runs included.
func (s *Scheduler) Calls() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// CommandError is a SLURM command that failed: it could not start, timed out, or exited
// non-zero. Stderr is what the command printed.
type CommandError struct {
	Command string // sbatch, sacct, squeue or scancel
	Err     error
	Stderr  string
}

func (e *CommandError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("%s: %v", e.Command, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Command, e.Err, e.Stderr)
}

func (e *CommandError) Unwrap() error { return e.Err }

// run runs one SLURM command with the caller's environment plus env. name is the
// logical command, bin its path.
func (s *Scheduler) run(ctx context.Context, name, bin string, args, env []string) ([]byte, error) {
	return s.runIn(ctx, name, bin, args, append(os.Environ(), env...))
}

// runIn runs one SLURM command with exactly the environment env (and SLURM_CONF).
func (s *Scheduler) runIn(ctx context.Context, name, bin string, args, env []string) ([]byte, error) {
	s.mu.Lock()
	s.calls[name]++
	s.mu.Unlock()
	if s.opts.Conf != "" {
		env = append(env, "SLURM_CONF="+s.opts.Conf)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	stdout, stderr, err := s.opts.Run(ctx, append([]string{bin}, args...), env)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (after %v)", ctxErr, s.opts.Timeout)
		}
		return stdout, &CommandError{Command: name, Err: err, Stderr: strings.TrimSpace(string(stderr))}
	}
	return stdout, nil
}

func execCommand(ctx context.Context, argv, env []string) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A command killed on timeout may leave children holding the pipes open.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	return stdout.Bytes(), stderr.Bytes(), err
}

// Submit creates the request's log folder (SLURM fails a job whose output folder is
// missing), runs `sbatch --parsable ...` and returns the job id. Its errors are
// *SubmitError wrapping ErrTransient (quota limits, an unreachable or busy controller, a
// timeout) or ErrPermanent (an invalid partition, account or option, a bad request).
func (s *Scheduler) Submit(ctx context.Context, req scheduler.JobRequest) (string, error) {
	if req.Script == "" {
		return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: "job request has no script"}
	}
	for _, dir := range []string{req.LogDir, outputDir(req.Output), outputDir(req.Error)} {
		if dir == "" {
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: "create log folder: " + err.Error()}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		if err := scheduler.CheckJobEnv(k, req.Env[k]); err != nil {
			return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: err.Error()}
		}
	}
	// sbatch runs with the job's environment only (JobEnviron: without the bus's
	// credentials and the project's own secrets) and passes all of it (--export=ALL).
	// Not a list of names: with one, sbatch has slurmd load the user's login
	// environment (as --get-user-env does) before the job starts, 3 to 4 s a job here.
	args := SbatchArgs(req)
	args = slices.Insert(args, 1, "--export=ALL")
	out, err := s.runIn(ctx, "sbatch", s.opts.Sbatch, args, scheduler.JobEnviron(os.Environ(), req.Env))
	if err != nil {
		return "", classifySbatchError(err)
	}
	id, ok := parseSbatchID(out)
	if !ok {
		// The job may exist: never call this transient, a retry could submit it twice.
		return "", &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: fmt.Sprintf("sbatch printed no job id: %q", strings.TrimSpace(string(out)))}
	}
	return id, nil
}

// outputDir is the folder of an --output/--error pattern, or "" when it is unknown
// (empty, or the folder itself holds a % pattern).
func outputDir(pattern string) string {
	if pattern == "" {
		return ""
	}
	dir := filepath.Dir(pattern)
	if strings.Contains(dir, "%") {
		return ""
	}
	return dir
}

// parseSbatchID reads `sbatch --parsable` output: "JOBID" or "JOBID;CLUSTER".
func parseSbatchID(out []byte) (string, bool) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	id, _, _ := strings.Cut(strings.TrimSpace(lines[len(lines)-1]), ";")
	return id, validJobID(id)
}

// quotaSbatch are fragments (lower case) of sbatch errors for per-user and per-account
// submit limits: they clear as the user's jobs end.
var quotaSbatch = []string{
	"maxsubmitjob", // QOSMaxSubmitJobPerUserLimit, QOSMaxSubmitJobPerAccountLimit, AssocMaxSubmitJobLimit
	"grpsubmitjob", // AssocGrpSubmitJobsLimit, QOSGrpSubmitJobsLimit
	"submit limit", // "Job violates accounting/QOS policy (job submit limit, ...)"
	"job violates accounting/qos policy",
}

// transientSbatch are fragments (lower case) of sbatch errors that a later retry may not
// meet: an unreachable or busy controller.
var transientSbatch = []string{
	"socket timed out",
	"unable to contact slurm controller",
	"resource temporarily unavailable",
	"temporarily unable to accept job",
	"zero bytes were transmitted or received",
	"communication connection failure",
	"connection refused",
	"connection reset",
	"in standby mode",
	"slurmctld is busy",
}

// classifySbatchError turns a failed sbatch into a *SubmitError carrying its stderr.
func classifySbatchError(err error) error {
	msg := err.Error()
	var ce *CommandError
	if errors.As(err, &ce) && ce.Stderr != "" {
		msg = ce.Stderr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: "sbatch timed out; the job may exist: " + err.Error()}
	}
	if errors.Is(err, context.Canceled) {
		return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: "sbatch interrupted; the job may exist: " + err.Error()}
	}
	lower := strings.ToLower(msg)
	for _, frag := range quotaSbatch {
		if strings.Contains(lower, frag) {
			return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Quota: true, Msg: msg}
		}
	}
	for _, frag := range transientSbatch {
		if strings.Contains(lower, frag) {
			return &scheduler.SubmitError{Kind: scheduler.ErrTransient, Msg: msg}
		}
	}
	return &scheduler.SubmitError{Kind: scheduler.ErrPermanent, Msg: msg}
}

// sacctFields is the -o list Status and FindByName ask for. JobName comes last because a
// job name may hold the "|" separator; nothing after it can then be misread.
const sacctFields = "JobIDRaw,JobID,State,ExitCode,Submit,Start,End,Elapsed,NodeList,Reason,NNodes,JobName"

var sacctFieldCount = strings.Count(sacctFields, ",") + 1

// sacctTimeLayout is SLURM's "standard" time format, in the local time zone.
const sacctTimeLayout = "2006-01-02T15:04:05"

// Status runs one `sacct -X -P -n -S <since> -j <ids> -o ...` for the given jobs (one call
// per MaxIDsPerCall ids) and returns their states keyed by job id. Each row appears under
// its raw id (JobIDRaw) and, for array tasks, also under "ARRAYID_TASK". A job sacct does
// not report is absent; a failing sacct is an error and never an answer.
func (s *Scheduler) Status(ctx context.Context, since time.Time, ids []string) (map[string]scheduler.JobStatus, error) {
	ids, err := uniqueJobIDs(ids)
	if err != nil {
		return nil, err
	}
	result := make(map[string]scheduler.JobStatus, len(ids))
	for chunk := range slices.Chunk(ids, s.opts.MaxIDsPerCall) {
		args := []string{"-X", "-P", "-n", "-S", formatSacctTime(since), "-j", strings.Join(chunk, ","), "-o", sacctFields}
		if err := s.sacct(ctx, args, func(st scheduler.JobStatus, jobID string) {
			result[st.ID] = st
			if jobID != st.ID {
				result[jobID] = st
			}
		}); err != nil {
			return nil, err
		}
	}
	return result, nil
}

// FindByName returns the jobs named name submitted since the given time, as sacct lists
// them (a requeued job appears once, in its last state), and the jobs of that name the
// controller still holds: the accounting database lists a job by name only seconds
// after its submission, and a submitter repairing a crash must not miss it.
func (s *Scheduler) FindByName(ctx context.Context, since time.Time, name string) ([]scheduler.JobStatus, error) {
	if name == "" || strings.ContainsAny(name, ",\n") {
		// sacct --name and squeue --name take a comma-separated list.
		return nil, fmt.Errorf("slurm: cannot search for job name %q", name)
	}
	var found []scheduler.JobStatus
	index := map[string]int{}
	args := []string{"-X", "-P", "-n", "-S", formatSacctTime(since), "--name", name, "-o", sacctFields}
	err := s.sacct(ctx, args, func(st scheduler.JobStatus, _ string) {
		if i, ok := index[st.ID]; ok {
			found[i] = st
			return
		}
		index[st.ID] = len(found)
		found = append(found, st)
	})
	if err != nil {
		return nil, err
	}
	queued, err := s.queueByName(ctx, name)
	if err != nil {
		return nil, err
	}
	for _, st := range queued {
		if _, ok := index[st.ID]; !ok {
			index[st.ID] = len(found)
			found = append(found, st)
		}
	}
	return found, nil
}

// queueByName lists the jobs of a name the controller holds, recently ended ones
// included (until MinJobAge).
func (s *Scheduler) queueByName(ctx context.Context, name string) ([]scheduler.JobStatus, error) {
	out, err := s.run(ctx, "squeue", s.opts.Squeue, []string{"-h", "--states=all", "--name", name, "-o", "%A|%T|%j"}, nil)
	if err != nil {
		return nil, err
	}
	var found []scheduler.JobStatus
	for n, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(strings.TrimSpace(line), "|", 3)
		if len(f) != 3 || !validJobID(f[0]) {
			return nil, fmt.Errorf("squeue output line %d: want JOBID|STATE|NAME, got %q", n+1, line)
		}
		if f[2] != name {
			continue
		}
		found = append(found, scheduler.JobStatus{ID: f[0], State: scheduler.BaseState(f[1]), Detail: f[1], Name: f[2]})
	}
	return found, nil
}

func (s *Scheduler) sacct(ctx context.Context, args []string, row func(st scheduler.JobStatus, jobID string)) error {
	// SLURM_TIME_FORMAT from the caller's environment would change how times print.
	out, err := s.run(ctx, "sacct", s.opts.Sacct, args, []string{"SLURM_TIME_FORMAT=standard"})
	if err != nil {
		return err
	}
	return parseSacct(out, row)
}

// parseSacct reads `sacct -P -n -o sacctFields` output and calls row for each job in order.
func parseSacct(out []byte, row func(st scheduler.JobStatus, jobID string)) error {
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.SplitN(line, "|", sacctFieldCount)
		if len(f) != sacctFieldCount || !validJobID(f[0]) {
			return fmt.Errorf("sacct output line %d: want %d fields %s, got %q", n+1, sacctFieldCount, sacctFields, line)
		}
		code, sig := parseExitCode(f[3])
		st := scheduler.JobStatus{
			ID:       f[0],
			State:    scheduler.BaseState(f[2]),
			Detail:   strings.TrimSpace(f[2]),
			ExitCode: code,
			Signal:   sig,
			Submit:   parseSacctTime(f[4]),
			Start:    parseSacctTime(f[5]),
			End:      parseSacctTime(f[6]),
			Elapsed:  parseElapsed(f[7]),
			NodeList: noneToEmpty(f[8]),
			Reason:   noneToEmpty(f[9]),
			Name:     f[11],
		}
		if st.State == "" {
			st.State = scheduler.UnknownState
		}
		// Right after a multi-node job ends, sacct can report its final state with only
		// the batch host in NodeList; the full list follows a few seconds later. Until
		// then the job is reported as completing, so its record is whole.
		if nn, err := strconv.Atoi(strings.TrimSpace(f[10])); err == nil && scheduler.IsTerminal(st.State) && nn > 1 && countHosts(st.NodeList) < nn {
			st.Detail = st.Detail + " (accounting incomplete: " + st.NodeList + ")"
			st.State = scheduler.Completing
		}
		row(st, strings.TrimSpace(f[1]))
	}
	return nil
}

func noneToEmpty(s string) string {
	s = strings.TrimSpace(s)
	switch s {
	case "None", "None assigned", "(null)", "Unknown":
		return ""
	}
	return s
}

// parseExitCode reads sacct's "CODE:SIGNAL".
func parseExitCode(s string) (code, signal int) {
	c, sig, _ := strings.Cut(strings.TrimSpace(s), ":")
	code, _ = strconv.Atoi(c)
	signal, _ = strconv.Atoi(sig)
	return code, signal
}

// parseSacctTime reads a sacct time; "Unknown", "None" and anything else unreadable are
// the zero time.
func parseSacctTime(s string) time.Time {
	t, err := time.ParseInLocation(sacctTimeLayout, strings.TrimSpace(s), time.Local)
	if err != nil {
		return time.Time{}
	}
	return t
}

func formatSacctTime(t time.Time) string {
	if t.IsZero() {
		// sacct's own default would be today's midnight, which misses older jobs.
		t = time.Unix(0, 0)
	}
	return t.In(time.Local).Format(sacctTimeLayout)
}

// parseElapsed reads SLURM's [DD-[HH:]]MM:SS (with optional .mmm); unreadable is 0.
func parseElapsed(s string) time.Duration {
	s = strings.TrimSpace(s)
	var days int
	if d, rest, ok := strings.Cut(s, "-"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0
		}
		days, s = n, rest
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0
	}
	var total time.Duration
	for i, p := range parts {
		unit := time.Minute
		if len(parts) == 3 && i == 0 {
			unit = time.Hour
		}
		if i == len(parts)-1 {
			sec, err := strconv.ParseFloat(p, 64)
			if err != nil || sec < 0 || sec >= 60 {
				return 0
			}
			total += time.Duration(sec * float64(time.Second))
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return 0
		}
		total += time.Duration(n) * unit
	}
	return total + time.Duration(days)*24*time.Hour
}

// Queue runs one `squeue -h -j <ids> -o %A|%T|%r` (per MaxIDsPerCall ids): the
// controller's own view, answered from memory without slurmdbd, cheap enough to ask every
// second. A job absent from the answer has left the queue (squeue lists no finished job
// unless asked); whether it ended, and how, is then sacct's to say.
func (s *Scheduler) Queue(ctx context.Context, ids []string) (map[string]scheduler.QueueEntry, error) {
	ids, err := uniqueJobIDs(ids)
	if err != nil {
		return nil, err
	}
	queued := make(map[string]scheduler.QueueEntry, len(ids))
	for chunk := range slices.Chunk(ids, s.opts.MaxIDsPerCall) {
		out, err := s.run(ctx, "squeue", s.opts.Squeue, []string{"-h", "-j", strings.Join(chunk, ","), "-o", "%A|%T|%r"}, nil)
		if err != nil {
			var ce *CommandError
			// squeue fails when none of the ids is still known: all of them have left the queue.
			if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id specified") {
				continue
			}
			return nil, err
		}
		for n, line := range strings.Split(string(out), "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			f := strings.SplitN(strings.TrimSpace(line), "|", 3)
			if len(f) != 3 || !validJobID(f[0]) {
				return nil, fmt.Errorf("squeue output line %d: want JOBID|STATE|REASON, got %q", n+1, line)
			}
			queued[f[0]] = scheduler.QueueEntry{State: scheduler.BaseState(f[1]), Detail: f[1], Reason: noneToEmpty(f[2])}
		}
	}
	return queued, nil
}

// PendingReasons returns why each pending job waits (Priority, Resources, JobHeldUser,
// ...), from one Queue call. Jobs that are not pending, or no longer known to squeue,
// are absent.
func (s *Scheduler) PendingReasons(ctx context.Context, ids []string) (map[string]string, error) {
	q, err := s.Queue(ctx, ids)
	if err != nil {
		return nil, err
	}
	reasons := map[string]string{}
	for id, e := range q {
		if e.State == scheduler.Pending {
			reasons[id] = e.Reason
		}
	}
	return reasons, nil
}

// Comment runs `squeue -h -j ID -o %k` and returns the job's comment. A job that left
// the queue is an error.
func (s *Scheduler) Comment(ctx context.Context, id string) (string, error) {
	if !validJobID(id) {
		return "", fmt.Errorf("slurm: invalid job id %q", id)
	}
	out, err := s.run(ctx, "squeue", s.opts.Squeue, []string{"-h", "-j", id, "-o", "%k"}, nil)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 1 || lines[0] == "" {
		return "", fmt.Errorf("squeue -j %s: want one line, got %q", id, out)
	}
	return strings.TrimSpace(lines[0]), nil
}

// Cancel runs `scancel ID`. Cancelling a job that is already ending is not an error.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	if !validJobID(id) {
		return fmt.Errorf("slurm: invalid job id %q", id)
	}
	_, err := s.run(ctx, "scancel", s.opts.Scancel, []string{id}, nil)
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "already completing or completed") {
		return nil
	}
	return err
}

// validJobID accepts SLURM job ids: 123, array tasks 123_4 and het components 123+1.
func validJobID(id string) bool {
	digits := func(s string) bool {
		if s == "" || len(s) > 20 {
			return false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if base, task, ok := strings.Cut(id, "_"); ok {
		return digits(base) && digits(task)
	}
	if base, comp, ok := strings.Cut(id, "+"); ok {
		return digits(base) && digits(comp)
	}
	return digits(id)
}

func uniqueJobIDs(ids []string) ([]string, error) {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		id = strings.TrimSpace(id)
		if !validJobID(id) {
			return nil, fmt.Errorf("slurm: invalid job id %q", id)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// countHosts counts the hosts of a SLURM host list such as "gb200-[001-004,007],login1".
func countHosts(list string) int {
	n, depth, item := 0, 0, ""
	flush := func() {
		if item == "" {
			return
		}
		c := 1
		for rest := item; ; {
			i := strings.IndexByte(rest, '[')
			if i < 0 {
				break
			}
			j := strings.IndexByte(rest[i:], ']')
			if j < 0 {
				break
			}
			k := 0
			for _, r := range strings.Split(rest[i+1:i+j], ",") {
				lo, hi, ok := strings.Cut(r, "-")
				a, err1 := strconv.Atoi(lo)
				b, err2 := strconv.Atoi(hi)
				if ok && err1 == nil && err2 == nil && b >= a {
					k += b - a + 1
				} else {
					k++
				}
			}
			c *= max(k, 1)
			rest = rest[i+j+1:]
		}
		n += c
		item = ""
	}
	for _, r := range list {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == ',' && depth == 0:
			flush()
			continue
		}
		item += string(r)
	}
	flush()
	return n
}
