package collect

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/events"
)

// Reading a job's folder has a time budget: a test over it fails with that reason at
// the budget, and a stopping collector does not wait for the reading at all.
func TestJudgingHasATimeBudgetAndStopsPromptly(t *testing.T) {
	out := t.TempDir()
	logDir := filepath.Join(out, "slurm_logs", "disagg_perf_slow", "r1")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// 32 MiB of client log lines takes the parser far longer than the budget below.
	line := []byte("Benchmarking with concurrency 1 ... 10 prompts\nSuccessful requests:                     10\n")
	if err := os.WriteFile(filepath.Join(logDir, "6_bench.log"), bytes.Repeat(line, (32<<20)/len(line)), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := &events.JobCompleted{Header: events.NewHeader("r1"), TestID: "disagg_perf_slow", JobID: "1", State: "COMPLETED", LogDir: logDir,
		Spec: &events.JobSpec{TestID: "disagg_perf_slow", TestType: "disagg", Category: "perf"}}
	start := time.Now()
	res, _, dir, err := judgeEvent(context.Background(), out, ev, 0, 5*time.Millisecond)
	took := time.Since(start)
	if err != nil || res.Passed || dir != logDir || !strings.Contains(strings.Join(res.Reasons, ";"), "took longer than 5ms") {
		t.Fatalf("over budget: %+v, %q, %v", res, dir, err)
	}
	if took > time.Second {
		t.Errorf("the budget of 5ms took %s", took)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(5*time.Millisecond, cancel)
	start = time.Now()
	if _, _, _, err := judgeEvent(ctx, out, ev, 0, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("stopping: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("stopping took %s", took)
	}
}
