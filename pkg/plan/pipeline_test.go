package plan_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/scheduler/local"
)

const quickstart = "../../examples/quickstart"

// copyQuickstart writes n perf tests made from the quickstart's first perf config, with
// the fast fixture job script testdata/fast_job.sh.tmpl instead of the emulated
// TensorRT-LLM job (these tests are about the pipeline, not about the job), under dir.
func copyQuickstart(t *testing.T, dir string, n int) string {
	t.Helper()
	src := filepath.Join(quickstart, "test_configs/disagg/perf/tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX.yaml")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "  emulate: true\n", "  container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0\n", 1)
	cfg = strings.Replace(cfg, "slurm:\n", "slurm:\n  script_file: ../../../fast_job.sh.tmpl\n", 1)
	if cfg == string(data) || !strings.Contains(cfg, "script_file") || strings.Contains(cfg, "emulate: true") {
		t.Fatalf("%s: cannot switch it to the fixture job script", src)
	}
	tmpl, err := os.ReadFile(filepath.Join("testdata", "fast_job.sh.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := filepath.Join(dir, "test_configs")
	perf := filepath.Join(cfgDir, "disagg", "perf")
	if err := os.MkdirAll(perf, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fast_job.sh.tmpl"), tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX_r%02d.yaml", i)
		if err := os.WriteFile(filepath.Join(perf, name), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return cfgDir
}

func TestPipelineSurvivesStageRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 20 emulated jobs")
	}
	dir := t.TempDir()
	cfgDir := copyQuickstart(t, dir, 20)
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	b, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(out, ".nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sched, err := local.New(filepath.Join(out, ".local-scheduler"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sched.Close()

	p, err := plan.Prepare(plan.Options{Selection: config.Selection{ConfigDir: cfgDir}, BatchSize: 6, OutputPath: out}, config.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Specs) != 20 || len(p.Invalid) != 0 {
		t.Fatalf("planned %d jobs, %d invalid: %v", len(p.Specs), len(p.Invalid), p.Invalid)
	}
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	opts := pipeline.Options{OutputPath: out, Scheduler: sched, Log: log, PollMin: 100 * time.Millisecond, PollMax: 500 * time.Millisecond, TimeLimit: time.Hour}
	start := func() *pipeline.Stages {
		s, err := pipeline.Start(ctx, b, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	done := func() int {
		var rec events.RunRecord
		_, _ = ledger.GetJSON(ctx, b.Runs, events.Token(p.RunID), &rec)
		return rec.Done
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Every stage stops and restarts twice while jobs run and results come in; in the
	// middle, two sets of stages run side by side.
	s1 := start()
	waitFor("first results", func() bool { return done() >= 3 })
	s1.Stop()
	s2, s3 := start(), start()
	waitFor("more results", func() bool { return done() >= 10 })
	s2.Stop()
	time.Sleep(300 * time.Millisecond)
	s3.Stop()
	s4 := start()
	defer s4.Stop()

	prog, err := progress.Follow(ctx, b, p.RunID, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Finished == nil || prog.Finished.Passed != 20 || prog.Finished.Failed != 0 {
		t.Fatalf("run finished as %+v\n%s", prog.Finished, prog.Summary())
	}

	// Exactly one job per test at the scheduler.
	for _, s := range p.Specs {
		jobs, err := sched.FindByName(ctx, time.Time{}, s.Request.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 1 {
			t.Errorf("%s: %d jobs submitted, want 1", s.TestID, len(jobs))
		}
	}
	// Exactly one set of rows per test, in the CSV and in the Parquet dataset.
	f, err := os.ReadFile(filepath.Join(out, "perf_script_test_results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(f)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(recs[0], ","); got != "network_name,network_hash,sm_clk,mem_clk,gpu_idx,perf_case_name,test_name,original_test_name,perf_metric,total_time__sec,start_timestamp,end_timestamp,state,command,threshold,absolute_threshold,metric_type" {
		t.Fatalf("CSV header %q", got)
	}
	perTest := map[string]int{}
	for _, r := range recs[1:] {
		for _, s := range p.Specs {
			if strings.HasPrefix(r[0], s.TestID+"_con:") {
				perTest[s.TestID]++
			}
		}
	}
	for _, s := range p.Specs {
		if perTest[s.TestID] != 6 { // 3 concurrencies x 2 default metrics
			t.Errorf("%s: %d CSV rows, want 6", s.TestID, perTest[s.TestID])
		}
	}
	if len(recs)-1 != 120 {
		t.Errorf("%d CSV rows, want 120", len(recs)-1)
	}
	rows, err := results.ReadDataset(filepath.Join(out, "results"))
	if err != nil {
		t.Fatal(err)
	}
	if judged := results.CSVRows(rows); len(judged) != 120 || len(rows) <= len(judged) {
		t.Errorf("%d Parquet rows, %d of them judged; want 120 judged and every other printed value", len(rows), len(judged))
	}
	for _, r := range rows {
		if r.RunID != p.RunID || r.Verdict != "pass" || r.SlurmState != scheduler.Completed || r.JobID == "" {
			t.Fatalf("Parquet row %+v", r)
		}
	}
}

// DEBUG_MODE=true works as the seed's DEBUG_MODE=1 does.
func TestDebugModeTrue(t *testing.T) {
	for _, v := range []string{"1", "true", "TRUE"} {
		p, err := plan.Prepare(plan.Options{Selection: config.Selection{ConfigDir: filepath.Join(quickstart, "test_configs")}, OutputPath: t.TempDir()},
			config.Env{"DEBUG_MODE": v, "DEBUG_JOB_ID": "7"})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Started.Debug {
			t.Errorf("DEBUG_MODE=%s is not debug mode", v)
		}
	}
}
