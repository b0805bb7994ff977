package slurm

import (
	"context"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sbatchFakeRun records every command and answers from a function of the argv.
type sbatchFakeRun struct {
	mu    sync.Mutex
	calls [][]string
	envs  [][]string
	reply func(argv []string) (stdout, stderr string, err error)
}

func (f *sbatchFakeRun) run(ctx context.Context, argv, env []string) ([]byte, []byte, error) {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(argv))
	f.envs = append(f.envs, slices.Clone(env))
	f.mu.Unlock()
	out, errOut, err := f.reply(argv)
	return []byte(out), []byte(errOut), err
}

func newFakeSLURM(t *testing.T, reply func(argv []string) (string, string, error)) (*Scheduler, *sbatchFakeRun) {
	t.Helper()
	f := &sbatchFakeRun{reply: reply}
	return New(Options{Run: f.run, Conf: "/etc/test/slurm.conf", MaxIDsPerCall: 3}), f
}

var errSLURMExit1 = errors.New("exit status 1")

func sacctTime(s string) time.Time {
	t, err := time.ParseInLocation(sacctTimeLayout, s, time.Local)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseSacct(t *testing.T) {
	tests := []struct {
		name string
		line string
		want scheduler.JobStatus
		key  string // the JobID key, when it differs from the raw id
	}{
		{
			name: "completed",
			line: "101|101|COMPLETED|0:0|2026-11-27T01:00:00|2026-11-27T01:00:01|2026-11-27T01:00:31|00:00:30|vm|None|1|run1-test_a",
			want: scheduler.JobStatus{ID: "101", State: scheduler.Completed, Detail: "COMPLETED", Submit: sacctTime("2026-11-27T01:00:00"),
				Start: sacctTime("2026-11-27T01:00:01"), End: sacctTime("2026-11-27T01:00:31"), Elapsed: 30 * time.Second,
				NodeList: "vm", Name: "run1-test_a"},
		},
		{
			name: "failed with exit code 3",
			line: "102|102|FAILED|3:0|2026-11-27T01:00:00|2026-11-27T01:00:01|2026-11-27T01:00:02|00:00:01|gb200-[001-004]|NonZeroExitCode|1|n",
			want: scheduler.JobStatus{ID: "102", State: scheduler.Failed, Detail: "FAILED", ExitCode: 3, Submit: sacctTime("2026-11-27T01:00:00"),
				Start: sacctTime("2026-11-27T01:00:01"), End: sacctTime("2026-11-27T01:00:02"), Elapsed: time.Second,
				NodeList: "gb200-[001-004]", Reason: "NonZeroExitCode", Name: "n"},
		},
		{
			name: "cancelled by a user",
			line: "103|103|CANCELLED by 1000|0:15|2026-11-27T01:00:00|2026-11-27T01:00:01|2026-11-27T01:10:01|00:10:00|vm|None|1|n",
			want: scheduler.JobStatus{ID: "103", State: scheduler.Cancelled, Detail: "CANCELLED by 1000", Signal: 15, Submit: sacctTime("2026-11-27T01:00:00"),
				Start: sacctTime("2026-11-27T01:00:01"), End: sacctTime("2026-11-27T01:10:01"), Elapsed: 10 * time.Minute, NodeList: "vm", Name: "n"},
		},
		{
			name: "pending, never started",
			line: "104|104|PENDING|0:0|2026-11-27T01:00:00|Unknown|Unknown|00:00:00|None assigned|JobHeldUser|1|n",
			want: scheduler.JobStatus{ID: "104", State: scheduler.Pending, Detail: "PENDING", Submit: sacctTime("2026-11-27T01:00:00"), Reason: "JobHeldUser", Name: "n"},
		},
		{
			name: "running for days",
			line: "105|105|RUNNING|0:0|2026-11-25T01:00:00|2026-11-25T01:00:00|Unknown|2-01:02:03|vm|None|1|n",
			want: scheduler.JobStatus{ID: "105", State: scheduler.Running, Detail: "RUNNING", Submit: sacctTime("2026-11-25T01:00:00"), Start: sacctTime("2026-11-25T01:00:00"),
				Elapsed: 49*time.Hour + 2*time.Minute + 3*time.Second, NodeList: "vm", Name: "n"},
		},
		{
			name: "array task keyed by its raw id and by ARRAY_TASK",
			line: "207|200_7|TIMEOUT|0:0|2026-11-27T01:00:00|2026-11-27T01:00:00|2026-11-27T01:01:20|00:01:20|vm|None|1|arr",
			key:  "200_7",
			want: scheduler.JobStatus{ID: "207", State: scheduler.Timeout, Detail: "TIMEOUT", Submit: sacctTime("2026-11-27T01:00:00"), Start: sacctTime("2026-11-27T01:00:00"),
				End: sacctTime("2026-11-27T01:01:20"), Elapsed: 80 * time.Second, NodeList: "vm", Name: "arr"},
		},
		{
			name: "pending array",
			line: "300|300_[0-9%2]|PENDING|0:0|2026-11-27T01:00:00|Unknown|Unknown|00:00:00|None assigned|Priority|1|arr",
			key:  "300_[0-9%2]",
			want: scheduler.JobStatus{ID: "300", State: scheduler.Pending, Detail: "PENDING", Submit: sacctTime("2026-11-27T01:00:00"), Reason: "Priority", Name: "arr"},
		},
		{name: "preempted", line: "106|106|PREEMPTED|0:0|None|None|None|00:00:00|vm|None|1|n",
			want: scheduler.JobStatus{ID: "106", State: scheduler.Preempted, Detail: "PREEMPTED", NodeList: "vm", Name: "n"}},
		{name: "requeued", line: "107|107|REQUEUED|0:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "107", State: scheduler.Requeued, Detail: "REQUEUED", Name: "n"}},
		{name: "node fail", line: "108|108|NODE_FAIL|1:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "108", State: scheduler.NodeFail, Detail: "NODE_FAIL", ExitCode: 1, Name: "n"}},
		{name: "out of memory", line: "109|109|OUT_OF_MEMORY|0:125||||||None|1|n",
			want: scheduler.JobStatus{ID: "109", State: scheduler.OutOfMemory, Detail: "OUT_OF_MEMORY", Signal: 125, Name: "n"}},
		{name: "boot fail", line: "110|110|BOOT_FAIL|0:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "110", State: scheduler.BootFail, Detail: "BOOT_FAIL", Name: "n"}},
		{name: "deadline", line: "111|111|DEADLINE|0:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "111", State: scheduler.Deadline, Detail: "DEADLINE", Name: "n"}},
		{name: "completed with a plus", line: "112|112|COMPLETED+|0:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "112", State: scheduler.Completed, Detail: "COMPLETED+", Name: "n"}},
		{name: "empty state", line: "113|113||0:0||||||None|1|n",
			want: scheduler.JobStatus{ID: "113", State: scheduler.UnknownState, Name: "n"}},
		{name: "a name holding the separator", line: "114|114|RUNNING|0:0||||||None|1|a|b|c",
			want: scheduler.JobStatus{ID: "114", State: scheduler.Running, Detail: "RUNNING", Name: "a|b|c"}},
		{name: "het component", line: "115+1|115+1|RUNNING|0:0||||00:00:05.250||None|1|n",
			want: scheduler.JobStatus{ID: "115+1", State: scheduler.Running, Detail: "RUNNING", Elapsed: 5250 * time.Millisecond, Name: "n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []scheduler.JobStatus
			var keys []string
			err := parseSacct([]byte(tt.line+"\n"), func(st scheduler.JobStatus, jobID string) {
				got = append(got, st)
				keys = append(keys, jobID)
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("got %d rows, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Errorf("got  %+v\nwant %+v", got[0], tt.want)
			}
			if want := sacctKey(tt.key, tt.want.ID); keys[0] != want {
				t.Errorf("JobID key %q, want %q", keys[0], want)
			}
			if scheduler.IsTerminal(got[0].State) != scheduler.IsTerminal(tt.want.State) {
				t.Errorf("IsTerminal(%q) differs", got[0].State)
			}
		})
	}
}

func sacctKey(key, id string) string {
	if key != "" {
		return key
	}
	return id
}

func TestParseSacctRejectsBadLines(t *testing.T) {
	for _, out := range []string{
		"101|COMPLETED|0:0\n",                 // too few fields
		"abc|abc|COMPLETED|0:0||||||None|1|n", // not a job id
		"|101|COMPLETED|0:0||||||None|1|n",
	} {
		err := parseSacct([]byte(out), func(scheduler.JobStatus, string) {})
		if err == nil || !strings.Contains(err.Error(), "sacct output line 1") {
			t.Errorf("parseSacct(%q) = %v, want an error naming line 1", out, err)
		}
	}
}

func TestParseElapsed(t *testing.T) {
	tests := map[string]time.Duration{
		"00:00":       0,
		"01:02":       62 * time.Second,
		"01:02:03":    time.Hour + 2*time.Minute + 3*time.Second,
		"1-00:00:00":  24 * time.Hour,
		"10-01:00:00": 241 * time.Hour,
		"00:00:01.5":  1500 * time.Millisecond,
		"INVALID":     0,
		"":            0,
		"1-":          0,
		"x-01:00:00":  0,
		"00:00:99":    0,
		"-1:00":       0,
		"1:2:3:4":     0,
	}
	for in, want := range tests {
		if got := parseElapsed(in); got != want {
			t.Errorf("parseElapsed(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestParseExitCode(t *testing.T) {
	tests := []struct {
		in        string
		code, sig int
	}{{"0:0", 0, 0}, {"3:0", 3, 0}, {"0:9", 0, 9}, {"255:0", 255, 0}, {"", 0, 0}, {"x:y", 0, 0}, {"7", 7, 0}}
	for _, tt := range tests {
		code, sig := parseExitCode(tt.in)
		if code != tt.code || sig != tt.sig {
			t.Errorf("parseExitCode(%q) = %d, %d; want %d, %d", tt.in, code, sig, tt.code, tt.sig)
		}
	}
}

func TestStatusOneSacctCallForAllJobs(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		return "11|11|RUNNING|0:0|2026-11-27T01:00:00|2026-11-27T01:00:01|Unknown|00:00:10|vm|None|1|a\n" +
			"12|12|CANCELLED by 0|0:0|2026-11-27T01:00:00|2026-11-27T01:00:01|2026-11-27T01:00:05|00:00:04|vm|None|1|b\n", "", nil
	})
	since := sacctTime("2026-11-27T00:59:30")
	got, err := s.Status(context.Background(), since, []string{"11", "12", "13", "11"})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"sacct", "-X", "-P", "-n", "-S", "2026-11-27T00:59:30", "-j", "11,12,13", "-o", sacctFields}}
	if !reflect.DeepEqual(f.calls, want) {
		t.Fatalf("calls %q\nwant  %q", f.calls, want)
	}
	if !slices.Contains(f.envs[0], "SLURM_CONF=/etc/test/slurm.conf") || !slices.Contains(f.envs[0], "SLURM_TIME_FORMAT=standard") {
		t.Errorf("sacct environment %q lacks SLURM_CONF or SLURM_TIME_FORMAT", f.envs[0])
	}
	if got["11"].State != scheduler.Running || got["12"].State != scheduler.Cancelled || got["12"].Detail != "CANCELLED by 0" {
		t.Errorf("states: %+v", got)
	}
	if _, ok := got["13"]; ok {
		t.Errorf("job 13, not reported by sacct, is in the result: %+v", got["13"])
	}
	if c := s.Calls(); c["sacct"] != 1 || len(c) != 1 {
		t.Errorf("Calls() = %v, want one sacct", c)
	}
}

func TestStatusChunksLongIDLists(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		var out strings.Builder
		for id := range strings.SplitSeq(argv[7], ",") {
			fmt.Fprintf(&out, "%s|%s|PENDING|0:0|Unknown|Unknown|Unknown|00:00:00|None assigned|Priority|1|x\n", id, id)
		}
		return out.String(), "", nil
	})
	ids := []string{"1", "2", "3", "4", "5", "6", "7"}
	got, err := s.Status(context.Background(), time.Time{}, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 3 || f.calls[0][7] != "1,2,3" || f.calls[2][7] != "7" {
		t.Errorf("with MaxIDsPerCall=3, 7 ids: calls %q", f.calls)
	}
	if f.calls[0][5] != time.Unix(0, 0).In(time.Local).Format(sacctTimeLayout) {
		t.Errorf("zero since gave -S %q, want the epoch", f.calls[0][5])
	}
	if len(got) != 7 {
		t.Errorf("got %d jobs, want 7", len(got))
	}
}

func TestStatusErrors(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		return "", "sacct: error: Problem talking to the database: Connection refused", errSLURMExit1
	})
	got, err := s.Status(context.Background(), time.Now(), []string{"1"})
	var ce *CommandError
	if got != nil || !errors.As(err, &ce) || ce.Command != "sacct" || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("failing sacct: %v, %v; want a nil map and a CommandError with stderr", got, err)
	}

	if _, err := s.Status(context.Background(), time.Now(), []string{"1", "1;rm -rf /"}); err == nil {
		t.Error("an invalid job id was accepted")
	}
	got, err = s.Status(context.Background(), time.Now(), nil)
	if err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v", got, err)
	}
	if len(f.calls) != 1 {
		t.Errorf("sacct ran %d times, want 1 (invalid or empty id lists must not run it)", len(f.calls))
	}
}

func TestStatusUnreadableOutputIsAnError(t *testing.T) {
	s, _ := newFakeSLURM(t, func([]string) (string, string, error) { return "JobIDRaw|State\n", "", nil })
	if got, err := s.Status(context.Background(), time.Now(), []string{"1"}); err == nil {
		t.Errorf("unreadable sacct output gave %v and no error", got)
	}
}

func TestSubmit(t *testing.T) {
	logDir := filepath.Join(t.TempDir(), "run1", "test_a")
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) { return "4242;disaggbench\n", "", nil })
	req := scheduler.JobRequest{
		Name: "run1-test_a", Script: "/tmp/job.sh", LogDir: logDir, TimeLimit: 90 * time.Second,
		Env: map[string]string{"B": "2", "A": "1"},
	}
	id, err := s.Submit(context.Background(), req)
	if err != nil || id != "4242" {
		t.Fatalf("Submit = %q, %v; want 4242", id, err)
	}
	if fi, err := os.Stat(logDir); err != nil || !fi.IsDir() {
		t.Errorf("log folder not created: %v", err)
	}
	// --export=ALL of sbatch's own environment, which is the job's.
	want := append([]string{"sbatch"}, SbatchArgs(req)...)
	want = slices.Insert(want, 2, "--export=ALL")
	if !reflect.DeepEqual(f.calls[0], want) {
		t.Errorf("argv %q\nwant %q", f.calls[0], want)
	}
	if env := f.envs[0]; !reflect.DeepEqual(env, append(scheduler.JobEnviron(os.Environ(), req.Env), "SLURM_CONF=/etc/test/slurm.conf")) ||
		!slices.Contains(env, "A=1") || !slices.Contains(env, "B=2") {
		t.Errorf("env %q, want the job's environment with A=1, B=2 and SLURM_CONF", env)
	}
}

func TestSubmitCreatesOutputFolders(t *testing.T) {
	dir := t.TempDir()
	s, _ := newFakeSLURM(t, func([]string) (string, string, error) { return "1\n", "", nil })
	req := scheduler.JobRequest{Script: "/j.sh", Output: filepath.Join(dir, "out", "%j.log"), Error: filepath.Join(dir, "err%j", "e.log")}
	if _, err := s.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err != nil {
		t.Errorf("output folder not created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "err%j")); err == nil {
		t.Error("a folder holding a % pattern was created literally")
	}
}

func TestSubmitErrors(t *testing.T) {
	tests := []struct {
		name   string
		stdout string
		stderr string
		err    error
		kind   error
		quota  bool
	}{
		{"QOS per-user submit limit", "", "sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)", errSLURMExit1, scheduler.ErrTransient, true},
		{"association submit limit", "", "sbatch: error: AssocMaxSubmitJobLimit\nsbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)", errSLURMExit1, scheduler.ErrTransient, true},
		{"policy message alone", "", "sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)", errSLURMExit1, scheduler.ErrTransient, true},
		{"socket timeout", "", "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", errSLURMExit1, scheduler.ErrTransient, false},
		{"controller down", "", "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", errSLURMExit1, scheduler.ErrTransient, false},
		{"EAGAIN", "", "sbatch: error: Batch job submission failed: Resource temporarily unavailable", errSLURMExit1, scheduler.ErrTransient, false},
		{"invalid partition", "", "sbatch: error: Batch job submission failed: Invalid partition name specified", errSLURMExit1, scheduler.ErrPermanent, false},
		{"invalid account", "", "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified", errSLURMExit1, scheduler.ErrPermanent, false},
		{"bad option", "", "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information", errSLURMExit1, scheduler.ErrPermanent, false},
		{"bad node count", "", "sbatch: error: Batch job submission failed: Requested node configuration is not available", errSLURMExit1, scheduler.ErrPermanent, false},
		{"no stderr", "", "", errSLURMExit1, scheduler.ErrPermanent, false},
		{"no job id printed", "Submitted batch job\n", "", nil, scheduler.ErrPermanent, false},
		{"empty output", "", "", nil, scheduler.ErrPermanent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newFakeSLURM(t, func([]string) (string, string, error) { return tt.stdout, tt.stderr, tt.err })
			id, err := s.Submit(context.Background(), scheduler.JobRequest{Script: "/j.sh"})
			var se *scheduler.SubmitError
			if !errors.As(err, &se) || !errors.Is(err, tt.kind) {
				t.Fatalf("Submit = %q, %v; want a scheduler.SubmitError of kind %v", id, err, tt.kind)
			}
			if errors.Is(err, scheduler.ErrQuota) != tt.quota {
				t.Errorf("quota refusal %v, want %v", errors.Is(err, scheduler.ErrQuota), tt.quota)
			}
			if tt.stderr != "" && se.Msg != tt.stderr {
				t.Errorf("message %q, want sbatch's stderr %q", se.Msg, tt.stderr)
			}
		})
	}
}

func TestSubmitRejectsBadRequests(t *testing.T) {
	s, f := newFakeSLURM(t, func([]string) (string, string, error) { return "1", "", nil })
	for _, req := range []scheduler.JobRequest{
		{},
		{Script: "/j.sh", Env: map[string]string{"A=B": "1"}},
		{Script: "/j.sh", Env: map[string]string{"": "1"}},
		{Script: "/j.sh", Env: map[string]string{"A": "x\x00y"}},
	} {
		if _, err := s.Submit(context.Background(), req); !errors.Is(err, scheduler.ErrPermanent) {
			t.Errorf("Submit(%+v) = %v, want scheduler.ErrPermanent", req, err)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("sbatch ran for bad requests: %q", f.calls)
	}
}

func TestPendingReasons(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		switch argv[3] {
		case "1,2,3":
			return "1|PENDING|Priority\n2|RUNNING|None\n3|PENDING|JobHeldUser\n", "", nil
		case "4":
			return "", "slurm_load_jobs error: Invalid job id specified", errSLURMExit1
		}
		return "", "slurm_load_jobs error: Unable to contact slurm controller (connect failure)", errSLURMExit1
	})
	got, err := s.PendingReasons(context.Background(), []string{"1", "2", "3", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"1": "Priority", "3": "JobHeldUser"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if want := []string{"squeue", "-h", "-j", "1,2,3", "-o", "%A|%T|%r"}; !reflect.DeepEqual(f.calls[0], want) {
		t.Errorf("argv %q, want %q", f.calls[0], want)
	}
	if _, err := s.PendingReasons(context.Background(), []string{"9"}); err == nil {
		t.Error("an unreachable controller gave no error")
	}
}

func TestCancel(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		switch argv[1] {
		case "1":
			return "", "", nil
		case "2":
			return "", "scancel: error: Kill job error on job id 2: Job/step already completing or completed", errSLURMExit1
		}
		return "", "scancel: error: Kill job error on job id 3: Invalid job id specified", errSLURMExit1
	})
	ctx := context.Background()
	if err := s.Cancel(ctx, "1"); err != nil {
		t.Error(err)
	}
	if err := s.Cancel(ctx, "2"); err != nil {
		t.Errorf("cancelling an ending job: %v", err)
	}
	if err := s.Cancel(ctx, "3"); err == nil || !strings.Contains(err.Error(), "Invalid job id") {
		t.Errorf("cancelling an unknown job: %v", err)
	}
	if err := s.Cancel(ctx, "-u"); err == nil {
		t.Error("an option passed as a job id was accepted")
	}
	if len(f.calls) != 3 || !reflect.DeepEqual(f.calls[0], []string{"scancel", "1"}) {
		t.Errorf("calls %q", f.calls)
	}
}

func TestFindByName(t *testing.T) {
	s, f := newFakeSLURM(t, func(argv []string) (string, string, error) {
		return "7|7|REQUEUED|0:0||||||None|1|run1-a\n8|8|COMPLETED|0:0||||||None|1|run1-a\n7|7|RUNNING|0:0||||||None|1|run1-a\n", "", nil
	})
	got, err := s.FindByName(context.Background(), sacctTime("2026-11-27T01:00:00"), "run1-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "7" || got[0].State != scheduler.Running || got[1].ID != "8" {
		t.Errorf("got %+v, want 7 (its last row, RUNNING) then 8", got)
	}
	want := []string{"sacct", "-X", "-P", "-n", "-S", "2026-11-27T01:00:00", "--name", "run1-a", "-o", sacctFields}
	if !reflect.DeepEqual(f.calls[0], want) {
		t.Errorf("argv %q, want %q", f.calls[0], want)
	}
	for _, bad := range []string{"", "a,b"} {
		if _, err := s.FindByName(context.Background(), time.Now(), bad); err == nil {
			t.Errorf("FindByName(%q) gave no error", bad)
		}
	}
}

// writeFakeCommand writes an executable shell script.
func writeFakeCommand(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExecRunsArgvWithEnvironment(t *testing.T) {
	t.Setenv("NATS_PASSWORD", "bus-secret-1")
	t.Setenv("DISAGGBENCH_TOKEN", "project-secret-2")
	t.Setenv("HF_TOKEN", "hf-secret-3")
	dir := t.TempDir()
	record := filepath.Join(dir, "record")
	sbatch := writeFakeCommand(t, dir, "sbatch", `printf '%s\n' "$@" > "`+record+`"
echo "conf=$SLURM_CONF job=$JOB_VAR" >> "`+record+`"
env > "`+record+`.env"
echo "77;cluster"
`)
	s := New(Options{Sbatch: sbatch, Conf: "/x/slurm.conf"})
	id, err := s.Submit(context.Background(), scheduler.JobRequest{Name: "a b;c", Script: "/j.sh", Env: map[string]string{"JOB_VAR": "$(x)"}})
	if err != nil || id != "77" {
		t.Fatalf("Submit = %q, %v", id, err)
	}
	got, _ := os.ReadFile(record)
	lines := strings.Split(string(got), "\n")
	if lines[1] != "--export=ALL" {
		t.Fatalf("no --export=ALL after --parsable: %q", got)
	}
	rest := strings.Join(append([]string{lines[0]}, lines[2:]...), "\n")
	if want := "--parsable\n--job-name=a b;c\n/j.sh\nconf=/x/slurm.conf job=$(x)\n"; rest != want {
		t.Errorf("sbatch saw\n%s\nwant\n%s", rest, want)
	}
	// sbatch's environment, all of which the job gets: HF_TOKEN and the job's own
	// variable, never the bus's or the project's secrets; no value on the command line.
	envData, err := os.ReadFile(record + ".env")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range strings.Split(string(envData), "\n") {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	for _, n := range []string{"HF_TOKEN", "JOB_VAR", "PATH"} {
		if !slices.Contains(names, n) {
			t.Errorf("sbatch's environment lacks %s", n)
		}
	}
	for _, n := range []string{"NATS_PASSWORD", "DISAGGBENCH_TOKEN"} {
		if slices.Contains(names, n) {
			t.Errorf("sbatch's environment (and so the job's) holds %s", n)
		}
	}
	for _, v := range []string{"bus-secret-1", "project-secret-2"} {
		if strings.Contains(string(envData), v) {
			t.Errorf("secret %q is in sbatch's environment", v)
		}
	}
	if strings.Contains(string(got), "secret") {
		t.Errorf("a secret value is on sbatch's command line: %q", got)
	}
}

func TestExecTimeoutIsTransient(t *testing.T) {
	dir := t.TempDir()
	sbatch := writeFakeCommand(t, dir, "sbatch", "exec sleep 30\n")
	sacct := writeFakeCommand(t, dir, "sacct", "exec sleep 30\n")
	s := New(Options{Sbatch: sbatch, Sacct: sacct, Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := s.Submit(context.Background(), scheduler.JobRequest{Script: "/j.sh"})
	if !errors.Is(err, scheduler.ErrTransient) || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("hung sbatch: %v, want a transient timeout", err)
	}
	if _, err := s.Status(context.Background(), time.Now(), []string{"1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("hung sacct: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeouts took %v", d)
	}
}

func TestExecMissingBinary(t *testing.T) {
	s := New(Options{Sbatch: filepath.Join(t.TempDir(), "no-sbatch")})
	if _, err := s.Submit(context.Background(), scheduler.JobRequest{Script: "/j.sh"}); !errors.Is(err, scheduler.ErrPermanent) {
		t.Errorf("missing sbatch: %v, want scheduler.ErrPermanent", err)
	}
	if c := s.Calls(); c["sbatch"] != 1 {
		t.Errorf("Calls() = %v", c)
	}
}

func FuzzParseSacct(f *testing.F) {
	f.Add("101|101|CANCELLED by 0|0:15|2026-11-27T01:00:00|Unknown|None|1-02:03:04|vm|None|1|a|b\n")
	f.Add("207|200_7|TIMEOUT|0:0|||00:01:20.5|||arr")
	f.Fuzz(func(t *testing.T, out string) {
		_ = parseSacct([]byte(out), func(st scheduler.JobStatus, jobID string) {
			if !validJobID(st.ID) || st.State == "" {
				t.Fatalf("row with id %q state %q", st.ID, st.State)
			}
		})
		_ = parseElapsed(out)
		_, _ = parseSbatchID([]byte(out))
	})
}

func BenchmarkStatusParse1000(b *testing.B) {
	var out strings.Builder
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint(100000 + i)
		fmt.Fprintf(&out, "%s|%s|RUNNING|0:0|2026-11-27T01:00:00|2026-11-27T01:00:01|Unknown|00:10:00|gb200-[001-004]|None|1|run-test-%d\n", ids[i], ids[i], i)
	}
	reply := []byte(out.String())
	s := New(Options{MaxIDsPerCall: 1000, Run: func(context.Context, []string, []string) ([]byte, []byte, error) {
		return reply, nil, nil
	}})
	b.ReportAllocs()
	for b.Loop() {
		if got, err := s.Status(context.Background(), time.Now(), ids); err != nil || len(got) != 1000 {
			b.Fatal(len(got), err)
		}
	}
}

func TestFinalStateWithPartialNodeListIsStillCompleting(t *testing.T) {
	var got []scheduler.JobStatus
	out := "5|5|COMPLETED|0:0||||00:00:03|node3|None|2|j\n" +
		"6|6|COMPLETED|0:0||||00:00:03|node[3-4]|None|2|j\n" +
		"7|7|FAILED|1:0||||00:00:03|gb200-[001-004,007],login1|None|6|j\n"
	if err := parseSacct([]byte(out), func(st scheduler.JobStatus, _ string) { got = append(got, st) }); err != nil {
		t.Fatal(err)
	}
	if got[0].State != scheduler.Completing || !strings.Contains(got[0].Detail, "accounting incomplete") {
		t.Errorf("2-node job with one host listed: %+v, want COMPLETING", got[0])
	}
	if got[1].State != scheduler.Completed || got[1].NodeList != "node[3-4]" {
		t.Errorf("2-node job with both hosts: %+v", got[1])
	}
	if got[2].State != scheduler.Failed {
		t.Errorf("6-node job with 6 hosts: %+v", got[2])
	}
	for list, want := range map[string]int{"": 0, "vm": 1, "node[1-4]": 4, "a[1-2,5],b": 4, "r[1-2]n[1-3]": 6} {
		if n := countHosts(list); n != want {
			t.Errorf("countHosts(%q) = %d, want %d", list, n, want)
		}
	}
}

func TestSecretEnv(t *testing.T) {
	for name, secret := range map[string]bool{
		"NATS_URL": true, "NATS_PASSWORD": true, "NATS_TOKEN": true, "NATS_CREDS": true, "NATS_NKEY": true,
		"DISAGGBENCH_NATS_SUBMITTER_PASSWORD": true, "DISAGGBENCH_TOKEN": true, "DISAGGBENCH_API_KEY": true,
		"DISAGGBENCH_SCHEDULER": false, "DISAGGBENCH_EMU_SEED": false, "HF_TOKEN": false, "PATH": false, "NATSX": false,
	} {
		if got := scheduler.SecretEnv(name); got != secret {
			t.Errorf("SecretEnv(%s) = %v, want %v", name, got, secret)
		}
	}
}
