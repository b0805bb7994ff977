package plan_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
)

// quotaQOS and quotaAccount are what deploy/slurm-dev/start.sh creates for these tests:
// the account's jobs run under the QOS, which has no limits until a test sets some.
const (
	quotaQOS     = "quota"
	quotaAccount = "quota"
)

// sacctmgr runs `sacctmgr -i ARGS...` with the tests' SLURM_CONF.
func (h *slurmHarness) sacctmgr(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := slurmCommand(ctx, "sacctmgr", append([]string{"-i"}, args...)...).CombinedOutput()
	if err != nil {
		return &cmdError{argv: "sacctmgr " + strings.Join(args, " "), out: string(out), err: err}
	}
	return nil
}

type cmdError struct {
	argv, out string
	err       error
}

func (e *cmdError) Error() string {
	return e.argv + ": " + e.err.Error() + ": " + strings.TrimSpace(e.out)
}

// useQuotaAccount switches every config under cfgDir to the quota account, and skips
// (or fails, when SLURM is required) on a cluster without it or without enforced limits.
func (h *slurmHarness) useQuotaAccount(cfgDir string) {
	t := h.t
	t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
	defer cancel()
	out, err := slurmCommand(ctx, "scontrol", "show", "config").Output()
	if err != nil {
		t.Fatalf("scontrol show config: %v", err)
	}
	if !strings.Contains(string(out), "AccountingStorageEnforce = associations,limits,qos") {
		skipOrFail(t, "the cluster does not enforce accounting limits (deploy/slurm-dev/start.sh sets AccountingStorageEnforce)")
	}
	qos, err := slurmCommand(ctx, "sacctmgr", "-n", "-P", "list", "assoc", "account="+quotaAccount, "format=qos").Output()
	if err != nil || !strings.Contains(string(qos), quotaQOS) {
		skipOrFail(t, "no account %q with QOS %q (deploy/slurm-dev/start.sh creates them): %v %s", quotaAccount, quotaQOS, err, qos)
	}
	err = filepath.WalkDir(cfgDir, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := strings.Replace(string(data), "  account: quickstart\n", "  account: "+quotaAccount+"\n", 1)
		if s == string(data) {
			t.Fatalf("%s: no account to replace", p)
		}
		return os.WriteFile(p, []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSLURMQuotaWait runs six tests through a window of six under a QOS that lets the
// user have two jobs at SLURM (MaxSubmitJobsPerUser=2, set with sacctmgr): the other
// submissions are refused with QOSMaxSubmitJobPerUserLimit, reported as
// WAITING_FOR_QUOTA, and retried; the limit is lifted mid-run, and every test then runs
// exactly once and passes. The QOS is restored in cleanup.
func TestSLURMQuotaWait(t *testing.T) {
	h := newSLURMHarness(t, 4*time.Minute)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfgDir := copyQuickstart(t, dir, 6)
	h.useQuotaAccount(cfgDir)
	lift := func() error {
		return h.sacctmgr("modify", "qos", "where", "name="+quotaQOS, "set", "MaxSubmitJobsPerUser=-1", "MaxJobsPerUser=-1")
	}
	t.Cleanup(func() {
		if err := lift(); err != nil {
			t.Errorf("restore QOS %s: %v", quotaQOS, err)
		}
	})
	if err := h.sacctmgr("modify", "qos", "where", "name="+quotaQOS, "set", "MaxSubmitJobsPerUser=2"); err != nil {
		t.Fatal(err)
	}
	p := h.prepare(config.Selection{ConfigDir: cfgDir}, 6, out)
	stages, err := pipeline.Start(h.ctx, h.b, h.stageOptions(out))
	if err != nil {
		t.Fatal(err)
	}
	defer stages.Stop()
	if err := p.Publish(h.ctx, h.b); err != nil {
		t.Fatal(err)
	}

	// Wait for a quota wait in the event stream, then lift the limit.
	var waits []events.JobState
	h.waitFor("a WAITING_FOR_QUOTA event", func() bool {
		waits = waits[:0]
		for _, ev := range h.events(p.RunID) {
			if ev.kind != events.KindState {
				continue
			}
			var st events.JobState
			if err := json.Unmarshal(ev.data, &st); err != nil {
				t.Fatal(err)
			}
			if st.State == events.StateQuotaWait {
				waits = append(waits, st)
			}
		}
		return len(waits) > 0
	})
	liftedAt := time.Now()
	if err := lift(); err != nil {
		t.Fatal(err)
	}
	for _, w := range waits {
		if !strings.Contains(w.Reason, "MaxSubmitJob") {
			t.Errorf("%s: quota wait reason %q, want SLURM's QOSMaxSubmitJobPerUserLimit", w.TestID, w.Reason)
		}
	}
	prog := h.follow(p)
	h.checkRun(p, prog, out)
	// Before the lift SLURM took two of the run's jobs (sacct's times are whole seconds).
	jobsBefore := 0
	for _, j := range h.sacctRun(p.RunID) {
		if j.Submit.Add(time.Second).Before(liftedAt) {
			jobsBefore++
		}
	}
	if jobsBefore > 2 {
		t.Errorf("%d of the run's jobs were submitted before the limit of 2 was lifted", jobsBefore)
	}
	waiting := map[string]bool{}
	for _, w := range waits {
		waiting[w.TestID] = true
	}
	if len(waiting) == 0 || len(waiting) > len(p.Specs)-1 {
		t.Errorf("%d tests waited for quota, want between 1 and %d", len(waiting), len(p.Specs)-1)
	}
	calls := h.sched.Calls()
	t.Logf("6 tests, QOS %s MaxSubmitJobsPerUser=2 lifted after %d quota waits (%d tests; %d of the run's jobs submitted before); sbatch %d",
		quotaQOS, len(waits), len(waiting), jobsBefore, calls["sbatch"])
	if calls["sbatch"] <= int64(len(p.Specs)) {
		t.Errorf("sbatch ran %d times for %d tests: no submission was refused", calls["sbatch"], len(p.Specs))
	}
}
