package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// setupLocal returns a local scheduler on a fresh state folder, closed at the end of the
// test, and a folder for the test's scripts and logs.
func setupLocal(t *testing.T, opts Options) (*Scheduler, string) {
	t.Helper()
	if opts.KillGrace == 0 {
		opts.KillGrace = 300 * time.Millisecond
	}
	l, err := New(filepath.Join(t.TempDir(), "state"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, t.TempDir()
}

// script writes a job script and returns its path.
func script(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, fmt.Sprintf("job-%d.sh", time.Now().UnixNano()))
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkFor polls fn until it returns nil or the time is up.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEnd polls the job's status until it is terminal and returns it.
func waitEnd(t *testing.T, s scheduler.Scheduler, id string, total time.Duration) scheduler.JobStatus {
	t.Helper()
	var st scheduler.JobStatus
	checkFor(t, total, func() error {
		m, err := s.Status(context.Background(), time.Time{}, []string{id})
		if err != nil {
			return err
		}
		var ok bool
		if st, ok = m[id]; !ok {
			return fmt.Errorf("job %s absent", id)
		}
		if !scheduler.IsTerminal(st.State) {
			return fmt.Errorf("job %s still %s", id, st.State)
		}
		return nil
	})
	return st
}

func submit(t *testing.T, s scheduler.Scheduler, req scheduler.JobRequest) string {
	t.Helper()
	id, err := s.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLocalCompleted(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	if l.Name() != "local" {
		t.Errorf("Name() = %q", l.Name())
	}
	logs := filepath.Join(dir, "logs")
	id := submit(t, l, scheduler.JobRequest{
		Name: "run1:test1", Script: script(t, dir, "echo out $1 $2; echo err >&2"),
		Args: []string{"a", "b c"}, LogDir: logs,
	})
	st := waitEnd(t, l, id, 10*time.Second)
	if st.State != scheduler.Completed || st.Detail != scheduler.Completed || st.ExitCode != 0 || st.Signal != 0 {
		t.Fatalf("status %+v, want COMPLETED exit 0", st)
	}
	if st.Name != "run1:test1" || st.NodeList != "localhost" || st.ID != id {
		t.Errorf("status %+v", st)
	}
	if st.Submit.IsZero() || st.Start.Before(st.Submit) || st.End.Before(st.Start) || st.Elapsed != st.End.Sub(st.Start) {
		t.Errorf("times: submit %v start %v end %v elapsed %v", st.Submit, st.Start, st.End, st.Elapsed)
	}
	out, _ := os.ReadFile(filepath.Join(logs, "slurm-"+id+".out"))
	errOut, _ := os.ReadFile(filepath.Join(logs, "slurm-"+id+".err"))
	if string(out) != "out a b c\n" || string(errOut) != "err\n" {
		t.Errorf("stdout %q stderr %q", out, errOut)
	}
}

func TestLocalFailedExitCode(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	id := submit(t, l, scheduler.JobRequest{Name: "f", Script: script(t, dir, "exit 3"), LogDir: dir})
	st := waitEnd(t, l, id, 10*time.Second)
	if st.State != scheduler.Failed || st.ExitCode != 3 {
		t.Fatalf("status %+v, want FAILED exit 3", st)
	}
}

// groupGone reports an error while any process of the group led by pid remains.
func groupGone(pid int) error {
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("process group %d still exists (%v)", pid, err)
	}
	return nil
}

// recordPid reads the job's recorded process id.
func recordPid(t *testing.T, l *Scheduler, id string) int {
	t.Helper()
	rec, ok, err := l.read(id)
	if err != nil || !ok || rec.Pid == 0 {
		t.Fatalf("record of %s: %+v %v %v", id, rec, ok, err)
	}
	return rec.Pid
}

func waitRunning(t *testing.T, s scheduler.Scheduler, id string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		m, err := s.Status(context.Background(), time.Time{}, []string{id})
		if err != nil {
			return err
		}
		if m[id].State != scheduler.Running {
			return fmt.Errorf("job %s is %q", id, m[id].State)
		}
		return nil
	})
}

func TestLocalCancel(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	for _, tc := range []struct{ name, body string }{
		// A background child in the job's group must go too.
		{"polite", "sleep 60 & echo started; wait"},
		// SIGTERM ignored (and inherited by sleep): only SIGKILL after the grace ends it.
		{"stubborn", "trap '' TERM; sleep 60 & echo started; wait; sleep 60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".out")
			id := submit(t, l, scheduler.JobRequest{Name: tc.name, Script: script(t, dir, tc.body), Output: out, LogDir: dir})
			waitRunning(t, l, id)
			checkFor(t, 5*time.Second, func() error { // the background sleep has started
				if b, _ := os.ReadFile(out); !strings.Contains(string(b), "started") {
					return errors.New("script has not started its child")
				}
				return nil
			})
			pid := recordPid(t, l, id)
			if err := l.Cancel(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			st := waitEnd(t, l, id, 10*time.Second)
			if st.State != scheduler.Cancelled || st.Detail != "CANCELLED by "+strconv.Itoa(os.Getuid()) {
				t.Fatalf("status %+v, want CANCELLED by uid", st)
			}
			checkFor(t, 3*time.Second, func() error { return groupGone(pid) })
			// Cancelling a finished job does nothing.
			if err := l.Cancel(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if again := waitEnd(t, l, id, time.Second); again.State != scheduler.Cancelled || !again.End.Equal(st.End) {
				t.Errorf("second cancel changed the job: %+v", again)
			}
		})
	}
	if err := l.Cancel(context.Background(), "999999"); err == nil {
		t.Error("cancel of an unknown job succeeded")
	}
}

func TestLocalTimeout(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	start := time.Now()
	id := submit(t, l, scheduler.JobRequest{Name: "slow", Script: script(t, dir, "sleep 60"), LogDir: dir, TimeLimit: time.Second})
	st := waitEnd(t, l, id, 10*time.Second)
	if st.State != scheduler.Timeout || st.Reason == "" {
		t.Fatalf("status %+v, want TIMEOUT with a reason", st)
	}
	if took := time.Since(start); took < time.Second || took > 5*time.Second {
		t.Errorf("ended after %s with a 1 s limit", took)
	}
	checkFor(t, 3*time.Second, func() error { return groupGone(recordPid(t, l, id)) })
}

func TestLocalEnvironment(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	id := submit(t, l, scheduler.JobRequest{
		Name: "env-test", Script: script(t, dir, "env > env.txt; pwd > pwd.txt"),
		WorkDir: work, LogDir: filepath.Join(dir, "logs"), Nodes: 2, PerNode: 4,
		Partition: "batch", Env: map[string]string{"MY_VAR": "my value", "SLURM_JOB_ID": "spoofed"},
	})
	if st := waitEnd(t, l, id, 10*time.Second); st.State != scheduler.Completed {
		t.Fatalf("status %+v", st)
	}
	env := map[string]string{}
	f, err := os.Open(filepath.Join(work, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	cwd, _ := os.Getwd()
	for k, want := range map[string]string{
		"SLURM_JOB_ID": id, "SLURM_JOBID": id, "SLURM_JOB_NAME": "env-test",
		"SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2", "SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4",
		"SLURM_JOB_NODELIST": "localhost", "SLURM_SUBMIT_DIR": cwd, "SLURM_JOB_PARTITION": "batch",
		"MY_VAR": "my value", "PATH": os.Getenv("PATH"),
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	if pwd, _ := os.ReadFile(filepath.Join(work, "pwd.txt")); strings.TrimSpace(string(pwd)) != work {
		t.Errorf("working folder %q, want %s", pwd, work)
	}
}

func TestLocalOutputPatterns(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	id := submit(t, l, scheduler.JobRequest{Name: "pat", Script: script(t, dir, "echo o; echo e >&2"),
		Output: filepath.Join(dir, "%x-%j.log"), Error: filepath.Join(dir, "%x-%j.log")})
	waitEnd(t, l, id, 10*time.Second)
	b, err := os.ReadFile(filepath.Join(dir, "pat-"+id+".log"))
	if err != nil || string(b) != "o\ne\n" {
		t.Errorf("shared output file: %q %v", b, err)
	}
	if got := localExpand("a%%j-%j-%q", "7", "n"); got != "a%j-7-%q" {
		t.Errorf("localExpand = %q", got)
	}
}

func TestLocalSecondInstance(t *testing.T) {
	t.Parallel()
	l1, dir := setupLocal(t, Options{})
	l2, err := New(l1.dir, Options{KillGrace: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	quick := submit(t, l1, scheduler.JobRequest{Name: "shared-name", Script: script(t, dir, "sleep 0.3"), LogDir: dir})
	slow := submit(t, l1, scheduler.JobRequest{Name: "shared-name", Script: script(t, dir, "sleep 60"), LogDir: dir})
	waitRunning(t, l2, slow)
	if st := waitEnd(t, l2, quick, 10*time.Second); st.State != scheduler.Completed {
		t.Fatalf("seen from the second instance: %+v", st)
	}
	found, err := l2.FindByName(context.Background(), time.Time{}, "shared-name")
	if err != nil || len(found) != 2 || found[0].ID != quick || found[1].ID != slow {
		t.Fatalf("FindByName: %+v %v", found, err)
	}
	if later, _ := l2.FindByName(context.Background(), time.Now().Add(time.Hour), "shared-name"); len(later) != 0 {
		t.Errorf("FindByName since the future: %+v", later)
	}
	if none, _ := l2.FindByName(context.Background(), time.Time{}, "other"); len(none) != 0 {
		t.Errorf("FindByName other: %+v", none)
	}
	// The second instance cancels a job the first supervises.
	pid := recordPid(t, l1, slow)
	if err := l2.Cancel(context.Background(), slow); err != nil {
		t.Fatal(err)
	}
	if st := waitEnd(t, l2, slow, 10*time.Second); st.State != scheduler.Cancelled {
		t.Fatalf("cancelled from the second instance: %+v", st)
	}
	checkFor(t, 3*time.Second, func() error { return groupGone(pid) })
	m, err := l2.Status(context.Background(), time.Time{}, []string{quick, "12345", "../x", slow})
	if err != nil || len(m) != 2 {
		t.Fatalf("Status with unknown ids: %v %v", m, err)
	}
}

func TestLocalIDsUnique(t *testing.T) {
	t.Parallel()
	l1, dir := setupLocal(t, Options{})
	l2, err := New(l1.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := script(t, dir, "true")

	// A second process submits at the same time as two instances here.
	child := exec.Command(os.Args[0], "-test.run=^TestHelperLocalProcess$")
	child.Env = append(os.Environ(), "LOCAL_HELPER=submit", "LOCAL_HELPER_STATE="+l1.dir, "LOCAL_HELPER_SCRIPT="+s)
	out := &strings.Builder{}
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ids []string
	var wg sync.WaitGroup
	for _, l := range []*Scheduler{l1, l2} {
		wg.Go(func() {
			for range 15 {
				id, err := l.Submit(context.Background(), scheduler.JobRequest{Name: "u", Script: s, LogDir: dir})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := child.Wait(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	for _, line := range strings.Fields(out.String()) {
		if id, ok := strings.CutPrefix(line, "ID="); ok {
			ids = append(ids, id)
		}
	}
	l2.Close()
	if len(ids) != 40 {
		t.Fatalf("%d ids, want 40 (helper said %q)", len(ids), out)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %s given twice: %v", id, ids)
		}
		seen[id] = true
	}
	// Every job, the other process's too, is recorded and visible here.
	for _, id := range ids {
		if st := waitEnd(t, l1, id, 10*time.Second); st.State != scheduler.Completed {
			t.Errorf("job %s: %+v", id, st)
		}
	}
	// A restarted scheduler (even with its counter lost) never reuses an id.
	os.Remove(filepath.Join(l1.dir, "next_id"))
	l3, err := New(l1.dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l3.Close()
	id := submit(t, l3, scheduler.JobRequest{Name: "u", Script: s, LogDir: dir})
	if seen[id] || id != "41" {
		t.Errorf("id after restart = %s, want 41", id)
	}
}

// TestHelperLocalProcess is the other process of the multi-process tests.
func TestHelperLocalProcess(t *testing.T) {
	mode := os.Getenv("LOCAL_HELPER")
	if mode == "" {
		t.Skip("helper process only")
	}
	l, err := New(os.Getenv("LOCAL_HELPER_STATE"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "submit":
		for range 10 {
			id, err := l.Submit(context.Background(), scheduler.JobRequest{Name: "u", Script: os.Getenv("LOCAL_HELPER_SCRIPT"), LogDir: filepath.Dir(os.Getenv("LOCAL_HELPER_SCRIPT"))})
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println("ID=" + id)
		}
		l.Close()
	case "die":
		// Start a long job, then die without recording its end: it is orphaned.
		id, err := l.Submit(context.Background(), scheduler.JobRequest{Name: "orphan", Script: os.Getenv("LOCAL_HELPER_SCRIPT"), LogDir: filepath.Dir(os.Getenv("LOCAL_HELPER_SCRIPT"))})
		if err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() error {
			if rec, _, _ := l.read(id); rec.State != scheduler.Running {
				return errors.New("not running yet")
			}
			return nil
		})
		fmt.Println("ID=" + id)
		os.Exit(0)
	}
}

func TestLocalNodeFailWhenSupervisorDies(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	child := exec.Command(os.Args[0], "-test.run=^TestHelperLocalProcess$")
	child.Env = append(os.Environ(), "LOCAL_HELPER=die", "LOCAL_HELPER_STATE="+l.dir,
		"LOCAL_HELPER_SCRIPT="+script(t, dir, "sleep 60"))
	out, err := child.Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	id := strings.TrimPrefix(strings.TrimSpace(string(out)), "ID=")
	pid := recordPid(t, l, id)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the orphaned job should still run before Status: %v", err)
	}
	st := waitEnd(t, l, id, 5*time.Second)
	if st.State != scheduler.NodeFail || !strings.Contains(st.Reason, "supervising process") {
		t.Fatalf("status %+v, want NODE_FAIL with a reason", st)
	}
	checkFor(t, 3*time.Second, func() error { return groupGone(pid) })
}

func TestLocalNodeFailFromStateFile(t *testing.T) {
	t.Parallel()
	l, _ := setupLocal(t, Options{})
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	pid := dead.Process.Pid
	for id, cancelBy := range map[string]string{"500": "", "501": "1000"} {
		rec := localRecord{ID: id, Name: "ghost", State: scheduler.Running, Detail: scheduler.Running, Submit: time.Now(), Start: time.Now(),
			Pid: pid, Supervisor: pid, NodeList: "localhost", CancelBy: cancelBy}
		data, _ := json.Marshal(rec)
		if err := os.WriteFile(l.recordPath(id), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := l.Status(context.Background(), time.Time{}, []string{"500", "501"})
	if err != nil {
		t.Fatal(err)
	}
	if st := m["500"]; st.State != scheduler.NodeFail || st.End.IsZero() || !strings.Contains(st.Reason, strconv.Itoa(pid)) {
		t.Errorf("dead supervisor: %+v, want NODE_FAIL naming pid %d", st, pid)
	}
	if st := m["501"]; st.State != scheduler.Cancelled || st.Detail != "CANCELLED by 1000" {
		t.Errorf("dead supervisor after a cancel: %+v", st)
	}
	// A damaged record hides only its own job.
	os.WriteFile(l.recordPath("502"), []byte("{not json"), 0o644)
	if m, err := l.Status(context.Background(), time.Time{}, []string{"500", "502"}); err != nil || len(m) != 1 {
		t.Errorf("Status with a damaged record: %v %v", m, err)
	}
	if found, err := l.FindByName(context.Background(), time.Time{}, "ghost"); err != nil || len(found) != 2 {
		t.Errorf("FindByName with a damaged record: %v %v", found, err)
	}
	// The verdict is recorded: a later read (any instance) sees it without deciding again.
	if rec, _, _ := l.read("500"); rec.State != scheduler.NodeFail {
		t.Errorf("record still says %s", rec.State)
	}
}

func TestLocalMaxParallel(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{MaxParallel: 1})
	a := submit(t, l, scheduler.JobRequest{Name: "a", Script: script(t, dir, "sleep 0.5"), LogDir: dir})
	b := submit(t, l, scheduler.JobRequest{Name: "b", Script: script(t, dir, "sleep 0.1"), LogDir: dir})
	c := submit(t, l, scheduler.JobRequest{Name: "c", Script: script(t, dir, "echo never > never.txt"), LogDir: dir, WorkDir: dir})
	m, err := l.Status(context.Background(), time.Time{}, []string{b, c})
	if err != nil {
		t.Fatal(err)
	}
	if m[b].State != scheduler.Pending || m[b].Reason != "Resources" {
		t.Fatalf("second job %+v, want PENDING (Resources)", m[b])
	}
	if err := l.Cancel(context.Background(), c); err != nil { // a queued job
		t.Fatal(err)
	}
	sa, sb := waitEnd(t, l, a, 10*time.Second), waitEnd(t, l, b, 10*time.Second)
	if sa.State != scheduler.Completed || sb.State != scheduler.Completed || sb.Start.Before(sa.End) {
		t.Fatalf("a %+v\nb %+v: b must start after a ends", sa, sb)
	}
	if sc := waitEnd(t, l, c, time.Second); sc.State != scheduler.Cancelled || !sc.Start.IsZero() {
		t.Fatalf("cancelled queued job: %+v", sc)
	}
	if _, err := os.Stat(filepath.Join(dir, "never.txt")); err == nil {
		t.Error("a cancelled queued job ran")
	}
}

func TestLocalCloseCancelsQueued(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{MaxParallel: 1})
	a := submit(t, l, scheduler.JobRequest{Name: "a", Script: script(t, dir, "sleep 0.3"), LogDir: dir})
	b := submit(t, l, scheduler.JobRequest{Name: "b", Script: script(t, dir, "true"), LogDir: dir})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m, _ := l.Status(context.Background(), time.Time{}, []string{a, b})
	if m[a].State != scheduler.Completed || m[b].State != scheduler.Cancelled {
		t.Fatalf("after Close: a %+v, b %+v", m[a], m[b])
	}
	var se *scheduler.SubmitError
	if _, err := l.Submit(context.Background(), scheduler.JobRequest{Script: script(t, dir, "true")}); !errors.As(err, &se) || !errors.Is(err, scheduler.ErrTransient) {
		t.Errorf("submit after Close: %v", err)
	}
}

func TestLocalSubmitErrors(t *testing.T) {
	t.Parallel()
	l, dir := setupLocal(t, Options{})
	for _, req := range []scheduler.JobRequest{{}, {Script: filepath.Join(dir, "missing.sh")}, {Script: dir}} {
		if _, err := l.Submit(context.Background(), req); !errors.Is(err, scheduler.ErrPermanent) {
			t.Errorf("Submit(%+v) = %v, want scheduler.ErrPermanent", req, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Submit(ctx, scheduler.JobRequest{Script: script(t, dir, "true")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Submit with a cancelled context: %v", err)
	}
	if _, err := l.Status(ctx, time.Time{}, []string{"1"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Status with a cancelled context: %v", err)
	}
	// A shell that cannot start fails the job, as a node would.
	bad, err := New(l.dir, Options{Shell: filepath.Join(dir, "no-such-shell")})
	if err != nil {
		t.Fatal(err)
	}
	id := submit(t, bad, scheduler.JobRequest{Name: "x", Script: script(t, dir, "true"), LogDir: dir})
	bad.Close()
	if st := waitEnd(t, l, id, time.Second); st.State != scheduler.Failed || !strings.Contains(st.Reason, "cannot start") {
		t.Errorf("job with a missing shell: %+v", st)
	}
}

// TestLocalNoLeaks runs and cancels jobs and checks that Close leaves no goroutine behind.
func TestLocalNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := New(t.TempDir(), Options{KillGrace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var ids []string
	for i := range 4 {
		body := "true"
		if i%2 == 1 {
			body = "trap '' TERM; sleep 30"
		}
		ids = append(ids, submit(t, l, scheduler.JobRequest{Name: "leak", Script: script(t, dir, body), LogDir: dir}))
	}
	for _, id := range ids {
		l.Cancel(context.Background(), id)
	}
	l.Close()
	checkFor(t, 3*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before", n, before)
		}
		return nil
	})
	m, _ := l.Status(context.Background(), time.Time{}, ids)
	for _, id := range ids {
		if !slices.Contains([]string{scheduler.Completed, scheduler.Cancelled}, m[id].State) {
			t.Errorf("job %s: %+v", id, m[id])
		}
	}
}

// BenchmarkLocalJobs submits trivial jobs and waits for all of them: jobs per second
// through submit, start, supervision and the final record.
func BenchmarkLocalJobs(b *testing.B) {
	l, err := New(b.TempDir(), Options{MaxParallel: 8})
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	s := filepath.Join(dir, "job.sh")
	os.WriteFile(s, []byte("#!/bin/bash\ntrue\n"), 0o644)
	var ids []string
	start := time.Now()
	for b.Loop() {
		id, err := l.Submit(context.Background(), scheduler.JobRequest{Name: "bench", Script: s, LogDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
	}
	l.Close() // waits for every job
	b.ReportMetric(float64(len(ids))/time.Since(start).Seconds(), "jobs/s")
	m, err := l.Status(context.Background(), time.Time{}, ids)
	if err != nil || len(m) != len(ids) {
		b.Fatalf("%d of %d jobs recorded: %v", len(m), len(ids), err)
	}
}

// A local job's environment is explicit: the submitting process's without the bus's
// credentials and the project's own variables, plus the request's.
func TestLocalJobEnvironmentHoldsNoSecrets(t *testing.T) {
	t.Setenv("NATS_PASSWORD", "bus-secret")
	t.Setenv("NATS_TOKEN", "bus-token")
	t.Setenv("DISAGGBENCH_SECRET", "project-secret")
	t.Setenv("HF_TOKEN", "hf-value")
	l, dir := setupLocal(t, Options{})
	out := filepath.Join(dir, "env.txt")
	id := submit(t, l, scheduler.JobRequest{Name: "env", Script: script(t, dir, "env > "+out), LogDir: dir,
		Env: map[string]string{"JOB_VAR": "x"}})
	if st := waitEnd(t, l, id, 10*time.Second); st.State != scheduler.Completed {
		t.Fatalf("job %s", st.Detail)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(data)
	for _, want := range []string{"HF_TOKEN=hf-value\n", "JOB_VAR=x\n", "SLURM_JOB_ID=" + id + "\n"} {
		if !strings.Contains(env, want) {
			t.Errorf("job environment lacks %q", want)
		}
	}
	for _, secret := range []string{"bus-secret", "bus-token", "project-secret", "NATS_", "DISAGGBENCH_SECRET"} {
		if strings.Contains(env, secret) {
			t.Errorf("job environment holds %q", secret)
		}
	}
	if _, err := l.Submit(context.Background(), scheduler.JobRequest{Name: "bad", Script: script(t, dir, "true"), LogDir: dir,
		Env: map[string]string{"NATS_URL": "nats://x"}}); !errors.Is(err, scheduler.ErrPermanent) {
		t.Errorf("a request setting NATS_URL for the job: %v, want a permanent error", err)
	}
}
