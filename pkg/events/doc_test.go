package events

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

var update = flag.Bool("update", false, "rewrite docs/events.md")

const docPath = "../../docs/events.md"

// TestEventsDoc keeps docs/events.md equal to what the event types marshal to.
func TestEventsDoc(t *testing.T) {
	got := renderDoc()
	if *update {
		if err := os.WriteFile(docPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Fatalf("%s is out of date: run go test ./pkg/events -run TestEventsDoc -update", docPath)
	}
}

func renderDoc() string {
	run, test := "20261127-014512-3fa9c2", "disagg_perf_deepseek-r1-fp4_1k1k_ctx1_gen4_tep8_bs32_eplb0_mtp0_ccb-NIXL"
	at := time.Date(2026, 11, 27, 1, 45, 12, 0, time.UTC)
	h := Header{V: Version, RunID: run, Time: at}
	start, end := at.Add(3*time.Minute), at.Add(95*time.Minute)
	logDir := "/lustre/bench/out/slurm_logs/" + test + "/" + run
	th := 0.9113
	pass := true
	req := scheduler.JobRequest{Name: "disaggbench." + run + "." + test, Comment: "disaggbench run=" + run + " test=" + test,
		Script: logDir + "/disaggr_torch.slurm", WorkDir: logDir, LogDir: logDir, Nodes: 9, NTasks: 36, PerNode: 4,
		Segment: 9, TimeLimit: 2 * time.Hour, Partition: "batch", Account: "benchmark", Resources: []string{"--gres=gpu:4"}}
	sections := []struct {
		subject, title, text string
		v                    any
	}{
		{RunStartedSubject(run), "Run started", "The planner opened a run: how many tests, how they are admitted, what was skipped.",
			RunStarted{Header: h, Tests: 3, Invalid: 1, Batches: 1, BatchSize: 5, Policy: PolicySliding, Scheduler: "slurm", GPUType: "GB200",
				Output: "/lustre/bench/out", TestIDs: []string{test, "disagg_perf_qwen3-235b-a22b-fp4_8k1k_ctx2_gen1_dep16_bs64_eplb0_mtp3_ccb-UCX", "wideep_perf_bad"},
				Skipped:   []Skip{{TestID: "disagg_perf_h100-only", Reason: "GPU type GB200 not in metadata.supported_gpus [H100]"}},
				Selection: "config-dir=test_configs test-list=testlist/all.txt", Host: "login01"}},
		{BatchSubject(run, 0), "Batch", "A slice of the run's jobs, in run order, for the submitter. `files` (the rendered job files, base64) is shortened here.",
			Batch{Header: h, Index: 0, Total: 1, BatchSize: 5, Policy: PolicySliding, Tests: 2, Jobs: []JobSpec{{Index: 0, TestID: test,
				TestType: "disagg", Category: "perf", ConfigPath: "test_configs/disagg/perf/" + strings.TrimPrefix(test, "disagg_perf_") + ".yaml",
				ConfigHash: "5b0e4c1d9a7f2e31", Model: "deepseek-r1-fp4", Precision: "fp4", GPUType: "GB200", CtxGPUs: 4, GenGPUs: 32,
				NumGenServers: 4, NumCtxServers: 1, ISL: 1024, OSL: 1024, Backend: "NIXL", Image: "nvcr.io/nvidia/tensorrt-llm/release:1.2.0", Concurrencies: []int{1, 2, 4, 8, 16, 32},
				LogDir: logDir, Request: req, Files: []File{{Name: "disaggr_torch.slurm", Data: []byte("#!/bin/bash\n"), Mode: 0o755}}}}}},
		{JobSubject(run, test, KindSubmitted), "Job submitted", "The scheduler took the job. `spec` (left out here) is what the collector judges the test by: its type, category, metrics, datasets and provenance, without files or environment.",
			JobSubmitted{Header: h, TestID: test, Index: 0, JobID: "48213", Scheduler: "slurm", LogDir: logDir, Submitted: at.Add(time.Second), TimeLimit: 10 * time.Hour,
				JobName: "disagg." + run + "." + test, LedgerRev: 3}},
		{JobSubject(run, test, KindState), "Job state changed", "The watcher saw a new state (or a new pending reason).",
			JobState{Header: h, TestID: test, JobID: "48213", State: "RUNNING", Detail: "RUNNING"}},
		{JobSubject(run, test, KindCompleted), "Job completed", "The job is over: final SLURM state, exit code, times, nodes and log folder, and the `spec` the submitted event carried (the collector never reads a spec from the job's folder). `state` may also be `INVALID` (the config failed validation; `reasons` and `spec` say which test and why) or `SUBMIT_FAILED` (the scheduler refused it; `reasons` carries its message).",
			JobCompleted{Header: h, TestID: test, Index: 0, JobID: "48213", State: "COMPLETED", Detail: "COMPLETED", ExitCode: 0,
				Submit: at.Add(time.Second), Start: start, End: end, NodeList: "gb200-[001-009]", LogDir: logDir}},
		{JobSubject(run, test, KindProblem), "Problem", "A stage cannot make progress on the test. The stages say so at once and then about every 15 s (the watcher every 30 s) while it lasts:\n\n" +
			"| stage | when | until |\n|---|---|---|\n" +
			"| `collector` | the results cannot be written (a folder not writable, a full disk) | it keeps trying until `give_up`, then fails the test with the reason; the result ends the problem |\n" +
			"| `submitter` | `sbatch` fails transiently (controller down or busy) | it retries until `give_up` (`since` plus 30 min), then fails the test; the `submitted` event ends the problem |\n" +
			"| `watcher` | the scheduler cannot be asked about the test's job (`squeue`/`sacct` fail) | no `give_up` (zero time): the watcher never fails a job for it and waits; a `problem` with `\"resolved\": true` ends it |\n\n" +
			"Quota refusals are not problems: they are the `WAITING_FOR_QUOTA` state.",
			Problem{Header: h, TestID: test, Stage: "collector", Reason: "write Parquet: open /lustre/bench/out/results/run=" + run + "/part-000000000042.parquet: permission denied",
				Since: end.Add(time.Minute), GiveUp: end.Add(3 * time.Minute)}},
		{ResultSubject(run, test), "Result", "The collector's verdict, with every number and every reason for a failure. `rows` holds every value the benchmark client printed for each finished concurrency (request counts, duration, tokens, request, output, total and user throughput, goodput, mean, median, std, P90 and P99 of TTFT, TPOT, ITL and E2EL; shortened here); `judged` marks the ones the verdict rests on, which are also the CSV's rows.",
			Result{Header: h, TestID: test, JobID: "48213", State: "COMPLETED", Passed: true, Start: start, End: end,
				Duration: end.Sub(start).Seconds(), LogDir: logDir, Rows: []ResultRow{
					{Concurrency: 128, Metric: "SERVER_MEDIAN_TTFT", Value: 812.4, Unit: "ms", Judged: true},
					{Concurrency: 128, Metric: "SERVER_MEDIAN_E2EL", Value: 30711.9, Unit: "ms", Judged: true},
					{Concurrency: 128, Metric: "OUTPUT_THROUGHPUT", Value: 15230.7, Unit: "tok/s"},
					{Concurrency: 128, Metric: "SERVER_P90_TPOT", Value: 29.3, Unit: "ms"},
					{Metric: "exact_match", Value: 0.9462, Unit: "fraction", Dataset: "gsm8k", Filter: "flexible-extract", Threshold: &th, Passed: &pass, Judged: true}}}},
		{RunFinishedSubject(run), "Run finished", "Every test of the run has its result.",
			RunFinished{Header: h, Tests: 3, Passed: 2, Failed: 1}},
	}
	var b strings.Builder
	b.WriteString(`# Events

Every stage publishes JSON events to the JetStream stream ` + "`" + Stream + "`" + ` (subjects
` + "`" + Subjects + "`" + `). They are the only contract between the stages, and what a dashboard
follows: ` + "`nats sub 'bench.>'`" + ` shows everything, ` + "`nats sub 'bench.*.<run>.>'`" + ` one run,
` + "`nats sub 'bench.results.>'`" + ` only verdicts. To read a run from its start, use a
JetStream consumer (` + "`nats stream view BENCH --subject 'bench.*.<run>.>'`" + `).

- Every event has ` + "`v`" + ` (schema version, now ` + fmt.Sprint(Version) + `), ` + "`run_id`" + ` and ` + "`time`" + ` (UTC).
- Test ids become subject tokens: letters, digits, ` + "`_`" + ` and ` + "`-`" + ` stay, any other
  byte becomes ` + "`=XX`" + ` (hex), so ` + "`llama-3.1-8b`" + ` is ` + "`llama-3=2E1-8b`" + `.
- Each publish carries a message id (` + "`Nats-Msg-Id`" + `) made from its subject (and job
  id, state), so JetStream drops a repeat of the same event.
- Durations are nanoseconds (Go's encoding).

| subject | event |
| --- | --- |
`)
	for _, s := range sections {
		subj := strings.ReplaceAll(strings.ReplaceAll(s.subject, run, "<run>"), Token(test), "<test>")
		fmt.Fprintf(&b, "| `%s` | %s |\n", subj, s.title)
	}
	for _, s := range sections {
		data, err := json.MarshalIndent(s.v, "", "  ")
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(&b, "\n## %s\n\n`%s`\n\n%s\n\n```json\n%s\n```\n", s.title, s.subject, s.text, data)
	}
	return b.String()
}
