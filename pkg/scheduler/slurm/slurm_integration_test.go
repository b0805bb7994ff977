package slurm

// Integration tests against a real SLURM: the cluster deploy/slurm-dev/start.sh runs, or any
// cluster the SLURM commands in PATH reach. They skip when sbatch is absent (or under -short)
// and fail instead when DISAGGBENCH_REQUIRE_SLURM=1. The controller restart test also stops
// and starts slurmctld through deploy/slurm-dev, so it runs only with
// DISAGGBENCH_REQUIRE_SLURM=1 or DISAGGBENCH_SLURM_RESTART=1, as root.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/schedulertest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	requireSLURMEnv = "DISAGGBENCH_REQUIRE_SLURM"
	restartSLURMEnv = "DISAGGBENCH_SLURM_RESTART"
)

var (
	integrationOnce   sync.Once
	integrationConf   string // the SLURM_CONF the tests use ("" = SLURM's default)
	integrationReason string // why the tests cannot run, "" when they can

	// controllerOutage keeps the pending-jobs measurement and the controller restart apart.
	controllerOutage sync.RWMutex
)

func realRequired() bool { return os.Getenv(requireSLURMEnv) == "1" }

// realDevBase is deploy/slurm-dev's state folder.
func realDevBase() string { return cmp.Or(os.Getenv("SLURM_DEV_BASE"), "/var/lib/disaggbench-slurm") }

// realSkipOrFail skips, or fails when SLURM is required.
func realSkipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if realRequired() {
		t.Fatalf(format+" (and %s=1)", append(args, requireSLURMEnv)...)
	}
	t.Skipf(format, args...)
}

// realSLURM returns a SLURM scheduler for the reachable cluster or skips the test.
func realSLURM(t *testing.T) *Scheduler {
	t.Helper()
	if testing.Short() && !realRequired() {
		t.Skip("integration test skipped with -short")
	}
	integrationOnce.Do(func() {
		if _, err := exec.LookPath("sbatch"); err != nil {
			integrationReason = "sbatch is not in PATH"
			return
		}
		integrationConf = os.Getenv("SLURM_CONF")
		if dev := filepath.Join(realDevBase(), "etc", "slurm.conf"); integrationConf == "" && realFileExists(dev) {
			integrationConf = dev
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sinfo", "-h", "-o", "%P %a %D %T")
		if integrationConf != "" {
			cmd.Env = append(os.Environ(), "SLURM_CONF="+integrationConf)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			integrationReason = fmt.Sprintf("no SLURM cluster answers (SLURM_CONF=%q): %v: %s", integrationConf, err, out)
		}
	})
	if integrationReason != "" {
		realSkipOrFail(t, "%s", integrationReason)
	}
	return New(Options{Conf: integrationConf, Timeout: 40 * time.Second})
}

func realFileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func realJobRequest(t *testing.T, script, name string, sleep, exit int, extra ...string) scheduler.JobRequest {
	return scheduler.JobRequest{
		Name:      name,
		Comment:   "disaggbench integration test " + t.Name(),
		Script:    script,
		Args:      []string{fmt.Sprint(sleep), fmt.Sprint(exit)},
		LogDir:    filepath.Join(t.TempDir(), "logs", name), // does not exist yet: Submit creates it
		NTasks:    1,
		ExtraArgs: extra,
	}
}

func realName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
}

// realSubmit retries transient failures, as the submitter does (another test may have the
// controller stopped for a while).
func realSubmit(t *testing.T, s *Scheduler, req scheduler.JobRequest) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		id, err := s.Submit(context.Background(), req)
		if err == nil {
			return id
		}
		if !errors.Is(err, scheduler.ErrTransient) || time.Now().After(deadline) {
			t.Fatalf("submit %s: %v", req.Name, err)
		}
		t.Logf("submit %s: %v; retrying", req.Name, err)
		time.Sleep(2 * time.Second)
	}
}

func realCancel(t *testing.T, s *Scheduler, id string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := s.Cancel(context.Background(), id)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cancel %s: %v", id, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// realWait polls Status every half second until done says so, tolerating failed calls
// (they are logged). check sees every answer and may fail the test.
func realWait(t *testing.T, s *Scheduler, since time.Time, ids []string, timeout time.Duration,
	check func(map[string]scheduler.JobStatus), done func(map[string]scheduler.JobStatus) bool,
) map[string]scheduler.JobStatus {
	t.Helper()
	got, _ := realWaitCounting(t, s, since, ids, timeout, check, done)
	return got
}

// realWaitCounting is realWait that also returns how many Status calls it made.
func realWaitCounting(t *testing.T, s *Scheduler, since time.Time, ids []string, timeout time.Duration,
	check func(map[string]scheduler.JobStatus), done func(map[string]scheduler.JobStatus) bool,
) (map[string]scheduler.JobStatus, int64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]scheduler.JobStatus
	var calls int64
	for {
		calls++
		got, err := s.Status(context.Background(), since, ids)
		switch {
		case err != nil:
			t.Logf("status: %v (tolerated)", err)
		default:
			last = got
			if check != nil {
				check(got)
			}
			if done(got) {
				return got, calls
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: jobs %v still not done; last answer %+v", timeout, ids, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func realAllTerminal(ids []string) func(map[string]scheduler.JobStatus) bool {
	return func(m map[string]scheduler.JobStatus) bool {
		for _, id := range ids {
			if st, ok := m[id]; !ok || !scheduler.IsTerminal(st.State) {
				return false
			}
		}
		return true
	}
}

func realAllIn(state string, ids []string) func(map[string]scheduler.JobStatus) bool {
	return func(m map[string]scheduler.JobStatus) bool {
		for _, id := range ids {
			if m[id].State != state {
				return false
			}
		}
		return true
	}
}

// TestIntegrationTimeout comes first: its job takes 60 to 90 s, the others run meanwhile.
func TestIntegrationTimeout(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	since := time.Now().Add(-5 * time.Second)
	req := realJobRequest(t, schedulertest.JobScript(t), realName("timeout"), 600, 0)
	req.TimeLimit = time.Minute
	id := realSubmit(t, s, req)
	got := realWait(t, s, since, []string{id}, 4*time.Minute, nil, realAllTerminal([]string{id}))[id]
	if got.State != scheduler.Timeout {
		t.Fatalf("job with a one-minute limit ended %+v, want TIMEOUT", got)
	}
	// SLURM kills it 60 to 90 s in; a controller restart by another test may delay that.
	if got.Elapsed < time.Minute || got.Elapsed > 3*time.Minute {
		t.Errorf("TIMEOUT after %v", got.Elapsed)
	}
	t.Logf("TIMEOUT after %v", got.Elapsed)
}

func TestIntegrationCompletedFailedCancelled(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	since := time.Now().Add(-5 * time.Second)
	script := schedulertest.JobScript(t)
	okReq := realJobRequest(t, script, realName("ok"), 1, 0)
	failReq := realJobRequest(t, script, realName("fail"), 1, 3)
	longReq := realJobRequest(t, script, realName("long"), 600, 0)
	okID, failID, longID := realSubmit(t, s, okReq), realSubmit(t, s, failReq), realSubmit(t, s, longReq)
	ids := []string{okID, failID, longID}

	realWait(t, s, since, []string{longID}, 2*time.Minute, nil, realAllIn(scheduler.Running, []string{longID}))
	if r, err := s.PendingReasons(context.Background(), ids); err == nil && r[longID] != "" {
		t.Errorf("running job %s has a pending reason %q", longID, r[longID])
	}
	realCancel(t, s, longID)

	got := realWait(t, s, since, ids, 2*time.Minute, nil, realAllTerminal(ids))
	ok, fail, long := got[okID], got[failID], got[longID]
	if ok.State != scheduler.Completed || ok.ExitCode != 0 || ok.Name != okReq.Name || ok.NodeList == "" ||
		ok.Start.IsZero() || ok.End.Before(ok.Start) || ok.Submit.Before(since) {
		t.Errorf("completed job: %+v", ok)
	}
	if fail.State != scheduler.Failed || fail.ExitCode != 3 || fail.Signal != 0 {
		t.Errorf("failed job: %+v, want FAILED with exit code 3", fail)
	}
	if long.State != scheduler.Cancelled || !strings.HasPrefix(long.Detail, "CANCELLED by ") {
		t.Errorf("cancelled job: %+v, want CANCELLED by <uid>", long)
	}
	out, err := os.ReadFile(filepath.Join(okReq.LogDir, "slurm-"+okID+".out"))
	if err != nil || !strings.Contains(string(out), "finished") {
		t.Errorf("job output in the created log folder: %q, %v", out, err)
	}
	if err := s.Cancel(context.Background(), okID); err != nil {
		t.Logf("cancelling a finished job: %v", err)
	}
}

func TestIntegrationTwelveJobs(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	since := time.Now().Add(-5 * time.Second)
	script := schedulertest.JobScript(t)
	var ids []string
	for i := range 12 {
		ids = append(ids, realSubmit(t, s, realJobRequest(t, script, realName(fmt.Sprintf("twelve%02d", i)), 1+i%3, 0)))
	}
	got, polls := realWaitCounting(t, s, since, ids, 3*time.Minute, nil, realAllTerminal(ids))
	for _, id := range ids {
		if got[id].State != scheduler.Completed {
			t.Errorf("job %s: %+v", id, got[id])
		}
	}
	// One sacct per Status call, whatever the number of jobs.
	if c := s.Calls(); c["sacct"] != polls {
		t.Errorf("%d Status calls made %d sacct calls", polls, c["sacct"])
	}
	t.Logf("12 jobs: %d polls, calls %v", polls, s.Calls())
}

func TestIntegrationFindByName(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	since := time.Now().Add(-5 * time.Second)
	script := schedulertest.JobScript(t)
	name := realName("findme")
	want := []string{realSubmit(t, s, realJobRequest(t, script, name, 1, 0)), realSubmit(t, s, realJobRequest(t, script, name, 1, 0))}
	other := realSubmit(t, s, realJobRequest(t, script, realName("other"), 1, 0))
	slices.Sort(want) // sorted as the ids found are: as strings, "12" before "9"
	deadline := time.Now().Add(time.Minute)
	for {
		found, err := s.FindByName(context.Background(), since, name)
		var ids []string
		for _, j := range found {
			ids = append(ids, j.ID)
			if j.Name != name {
				t.Errorf("FindByName(%q) returned %+v", name, j)
			}
		}
		slices.Sort(ids)
		if err == nil && slices.Equal(ids, want) {
			break
		}
		if slices.Contains(ids, other) {
			t.Fatalf("FindByName(%q) returned the other job %s", name, other)
		}
		if time.Now().After(deadline) {
			t.Fatalf("FindByName(%q) = %v, %v; want %v", name, ids, err, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	realWait(t, s, since, append(want, other), 2*time.Minute, nil, realAllTerminal(append(want, other)))
}

// TestIntegrationHeldJobs holds 200 jobs pending and polls them like the watcher (Status
// every 1.5 s, PendingReasons every 5th cycle) for 30 s, counting SLURM calls.
func TestIntegrationHeldJobs(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	controllerOutage.RLock()
	defer controllerOutage.RUnlock()
	const n = 200
	since := time.Now().Add(-5 * time.Second)
	script := schedulertest.JobScript(t)
	ids := make([]string, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				id, err := s.Submit(context.Background(), realJobRequest(t, script, realName("held"), 1, 0, "--hold"))
				if err != nil {
					t.Errorf("submit held job: %v", err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	submitted := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	t.Cleanup(func() { realScancelAll(t, s, since, submitted) })
	if t.Failed() {
		return
	}
	t.Logf("%d sbatch --hold calls in %v", n, time.Since(t0).Round(time.Millisecond))

	before := s.Calls()
	const interval, duration = 1500 * time.Millisecond, 30 * time.Second
	var cycles, failures, visible int
	var sacctTime time.Duration
	var reasons map[string]string
	start := time.Now()
	for time.Since(start) < duration {
		cycles++
		c0 := time.Now()
		got, err := s.Status(context.Background(), since, ids)
		sacctTime += time.Since(c0)
		if err != nil {
			failures++
			t.Logf("status: %v", err)
		} else {
			visible = 0
			for _, id := range ids {
				if st, ok := got[id]; ok {
					visible++
					if st.State != scheduler.Pending {
						t.Errorf("held job %s is %+v", id, st)
					}
				}
			}
		}
		if cycles%5 == 1 {
			if r, err := s.PendingReasons(context.Background(), ids); err == nil {
				reasons = r
			} else {
				t.Logf("squeue: %v", err)
			}
		}
		time.Sleep(interval - time.Since(c0)%interval)
	}
	elapsed := time.Since(start)
	after := s.Calls()
	sacctCalls, squeueCalls := after["sacct"]-before["sacct"], after["squeue"]-before["squeue"]
	if sacctCalls != int64(cycles) {
		t.Errorf("%d poll cycles made %d sacct calls, want one per cycle", cycles, sacctCalls)
	}
	if visible != n {
		t.Errorf("sacct reported %d of %d held jobs in the last cycle", visible, n)
	}
	held := 0
	for _, r := range reasons {
		if r == "JobHeldUser" {
			held++
		}
	}
	if held != n {
		t.Errorf("squeue gave JobHeldUser for %d of %d jobs: %v", held, n, reasons)
	}
	perMin := func(c int64) float64 { return float64(c) / elapsed.Minutes() }
	t.Logf("%d jobs held pending, %d cycles in %v: sacct %d calls (%.1f/min, %v per call, %d failed), squeue %d calls (%.1f/min)",
		n, cycles, elapsed.Round(time.Millisecond), sacctCalls, perMin(sacctCalls),
		(sacctTime / time.Duration(cycles)).Round(time.Millisecond), failures, squeueCalls, perMin(squeueCalls))
}

// realScancelAll cancels many jobs with one scancel and waits until sacct shows them cancelled.
func realScancelAll(t *testing.T, s *Scheduler, since time.Time, ids []string) {
	if len(ids) == 0 {
		return
	}
	cmd := exec.Command("scancel", ids...)
	if integrationConf != "" {
		cmd.Env = append(os.Environ(), "SLURM_CONF="+integrationConf)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("scancel %d jobs: %v: %s", len(ids), err, out)
		return
	}
	realWait(t, s, since, ids, time.Minute, nil, realAllIn(scheduler.Cancelled, ids))
}

// TestIntegrationControllerRestart stops slurmctld while jobs run, through the dev
// cluster's own scripts, and starts it again: no job may be reported finished falsely or
// lost, and the true final states must arrive after the restart.
func TestIntegrationControllerRestart(t *testing.T) {
	t.Parallel()
	s := realSLURM(t)
	if !realRequired() && os.Getenv(restartSLURMEnv) != "1" {
		t.Skipf("stopping slurmctld disturbs everyone using the cluster: set %s=1 or %s=1", restartSLURMEnv, requireSLURMEnv)
	}
	if os.Geteuid() != 0 || !realFileExists(filepath.Join(realDevBase(), "pids", "slurmctld.pid")) {
		realSkipOrFail(t, "needs root and a cluster started by deploy/slurm-dev/start.sh (no %s/pids/slurmctld.pid)", realDevBase())
	}
	startSh, _ := filepath.Abs("../../../deploy/slurm-dev/start.sh")
	stopSh, _ := filepath.Abs("../../../deploy/slurm-dev/stop.sh")

	controllerOutage.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			controllerOutage.Unlock()
		}
	}
	defer unlock()
	restarted := false
	defer func() {
		if !restarted { // never leave the cluster without its controller
			_ = exec.Command(startSh).Run()
		}
	}()

	since := time.Now().Add(-5 * time.Second)
	script := schedulertest.JobScript(t)
	markers := t.TempDir()
	// long ends after the outage, short during it (each waits for its gate file), later
	// becomes eligible during it.
	gateLong, gateShort := filepath.Join(markers, "gate-long"), filepath.Join(markers, "gate-short")
	long := realJobRequest(t, script, realName("outage-long"), 2, 0)
	long.Args = append(long.Args, filepath.Join(markers, "long"), gateLong)
	short := realJobRequest(t, script, realName("outage-short"), 0, 3)
	short.Args = append(short.Args, filepath.Join(markers, "short"), gateShort)
	later := realJobRequest(t, script, realName("outage-later"), 1, 0, "--begin=now+15")
	longID, shortID, laterID := realSubmit(t, s, long), realSubmit(t, s, short), realSubmit(t, s, later)
	ids := []string{longID, shortID, laterID}
	want := map[string]scheduler.JobStatus{longID: {State: scheduler.Completed}, shortID: {State: scheduler.Failed, ExitCode: 3}, laterID: {State: scheduler.Completed}}

	// No answer may ever call a job finished unless it is, in its true final state.
	var outageAnswers, outageErrors, absent int
	inOutage := false
	check := func(m map[string]scheduler.JobStatus) {
		if inOutage {
			outageAnswers++
		}
		for _, id := range ids {
			st, ok := m[id]
			if !ok {
				if inOutage {
					absent++
				}
				continue
			}
			if !scheduler.IsTerminal(st.State) {
				continue
			}
			if st.State != want[id].State || st.ExitCode != want[id].ExitCode {
				t.Errorf("job %s reported %s exit %d, but it ends %s exit %d", id, st.Detail, st.ExitCode, want[id].State, want[id].ExitCode)
			}
			if id == longID && !realFileExists(filepath.Join(markers, "long")) {
				t.Errorf("job %s reported %s before its script finished", id, st.Detail)
			}
		}
	}
	realWait(t, s, since, []string{longID, shortID}, time.Minute, check, realAllIn(scheduler.Running, []string{longID, shortID}))

	t0 := time.Now()
	if out, err := exec.Command(stopSh, "slurmctld").CombinedOutput(); err != nil {
		t.Fatalf("stop slurmctld: %v: %s", err, out)
	}
	inOutage = true
	t.Logf("slurmctld stopped in %v", time.Since(t0).Round(time.Millisecond))

	touch := func(p string) {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	touch(gateShort)
	for i := 0; i < 100 && !realFileExists(filepath.Join(markers, "short")); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	var staleShort int // answers calling the finished short job still running
	for t2 := time.Now(); time.Since(t2) < 8*time.Second; {
		m, err := s.Status(context.Background(), since, ids)
		if err != nil {
			outageErrors++
		} else {
			check(m)
			if realFileExists(filepath.Join(markers, "short")) && !scheduler.IsTerminal(m[shortID].State) {
				staleShort++
			}
		}
		time.Sleep(time.Second)
	}
	if !realFileExists(filepath.Join(markers, "short")) {
		t.Error("the short job did not finish during the outage; the test proves less than it should")
	}
	if _, err := s.PendingReasons(context.Background(), ids); err == nil {
		t.Error("squeue answered with slurmctld stopped")
	}
	if _, err := s.Submit(context.Background(), realJobRequest(t, script, realName("outage-refused"), 1, 0)); !errors.Is(err, scheduler.ErrTransient) {
		t.Errorf("sbatch with slurmctld stopped: %v, want a transient error", err)
	} else {
		t.Logf("sbatch with slurmctld stopped: %v", err)
	}

	t1 := time.Now()
	cmd := exec.Command(startSh)
	cmd.Env = append(os.Environ(), "SLURM_DEV_SMOKE=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start slurmctld again: %v: %s", err, out)
	}
	restarted = true
	inOutage = false
	touch(gateLong)
	outage := time.Since(t0)
	unlock()
	t.Logf("slurmctld back in %v; outage %v: %d sacct answers (%d job rows absent, %d calling the finished short job unfinished), %d sacct errors",
		time.Since(t1).Round(time.Millisecond), outage.Round(time.Millisecond), outageAnswers, absent, staleShort, outageErrors)
	if outageAnswers+outageErrors == 0 {
		t.Error("no Status call during the outage")
	}

	got := realWait(t, s, since, ids, 2*time.Minute, check, realAllTerminal(ids))
	for _, id := range ids {
		t.Logf("job %s: %s exit %d after %v", id, got[id].Detail, got[id].ExitCode, got[id].Elapsed)
	}
}

// On a real SLURM, a job's environment is sbatch's, which the scheduler builds: the
// submitter's variables without the bus's credentials and the project's own, so
// HF_TOKEN reaches the job and NATS_PASSWORD does not; squeue reports the job's comment
// for the watcher's ownership check.
func TestRealJobEnvironmentAndComment(t *testing.T) {
	s := realSLURM(t)
	t.Setenv("NATS_PASSWORD", "bus-secret-for-the-test")
	t.Setenv("DISAGGBENCH_TOKEN", "project-secret-for-the-test")
	t.Setenv("HF_TOKEN", "hf-value-for-the-test")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "env.txt")
	script := filepath.Join(dir, "env.sh")
	if err := os.WriteFile(script, []byte("#!/bin/bash\nsleep 2\nenv > "+out+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	req := realJobRequest(t, script, realName("env"), 0, 0)
	req.Args = nil
	req.Env = map[string]string{"JOB_VAR": "x"}
	since := time.Now().Add(-time.Minute)
	id := realSubmit(t, s, req)
	if c, err := s.Comment(context.Background(), id); err != nil || c != req.Comment {
		t.Errorf("Comment(%s) = %q, %v; want %q", id, c, err, req.Comment)
	}
	realWait(t, s, since, []string{id}, 2*time.Minute, nil, realAllTerminal([]string{id}))
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(data)
	for _, want := range []string{"HF_TOKEN=hf-value-for-the-test\n", "JOB_VAR=x\n", "SLURM_JOB_ID=" + id + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("job environment lacks %q", want)
		}
	}
	for _, secret := range []string{"bus-secret", "project-secret", "NATS_PASSWORD", "DISAGGBENCH_TOKEN"} {
		if strings.Contains(env, secret) {
			t.Errorf("job environment holds %q", secret)
		}
	}
}
