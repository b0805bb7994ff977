package collect_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/collect"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
)

// benchLog is a client log with two complete concurrencies.
func benchLog(c1, c2 string) string {
	block := func(c, ttft string) string {
		return "Benchmarking with concurrency " + c + " ... 10 prompts\n" +
			"============ Serving Benchmark Result ============\n" +
			"Total requests:                          10        \n" +
			"Successful requests:                     10        \n" +
			"Failed requests:                         0         \n" +
			"Benchmark duration (s):                  10.00     \n" +
			"Total input tokens:                      10240     \n" +
			"Total generated tokens:                  10240     \n" +
			"Request throughput (req/s):              1.00      \n" +
			"Output token throughput (tok/s):         1024.00   \n" +
			"Total Token throughput (tok/s):          2048.00   \n" +
			"User throughput (tok/s):                 100.00    \n" +
			"---------------Time to First Token----------------\n" +
			"Mean TTFT (ms):                          " + ttft + "\n" +
			"Median TTFT (ms):                        " + ttft + "\n" +
			"P99 TTFT (ms):                           " + ttft + "\n" +
			"----------------End-to-end Latency----------------\n" +
			"Mean E2EL (ms):                          9000.00   \n" +
			"Median E2EL (ms):                        9000.00   \n" +
			"P99 E2EL (ms):                           9000.00   \n" +
			"==================================================\n" +
			"Benchmark with concurrency " + c + " done\n"
	}
	return block(c1, "40.00") + block(c2, "55.00")
}

func TestReplayRebuildsIdenticalOutputs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	run := "r1"
	p := &plan.Plan{RunID: run, Policy: events.PolicySliding, Started: events.RunStarted{Header: events.NewHeader(run), Tests: 4}}
	for i, id := range []string{"disagg_perf_a", "disagg_perf_b", "disagg_perf_c", "disagg_perf_bad"} {
		log := benchLog("1", "2")
		if id == "disagg_perf_bad" {
			log = strings.Replace(log, "Failed requests:                         0 ", "Failed requests:                         3 ", 1)
		}
		p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: id, TestType: "disagg", Category: "perf", Model: "m", Precision: "fp4",
			GPUType: "GB200", CtxGPUs: 4, GenGPUs: 4, NumGenServers: 1, Concurrencies: []int{1, 2},
			LogDir: filepath.Join(out, "slurm_logs", id, run), Request: fake.Request(run, id, filepath.Join(out, "slurm_logs", id, run), "6_bench.log"),
			Files: []events.File{{Name: "6_bench.log", Data: []byte(log)}}})
	}
	st, err := pipeline.Start(ctx, b, pipeline.Options{OutputPath: out, Scheduler: fake.New(0),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	prog, err := progress.Follow(ctx, b, run, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Finished.Passed != 3 || prog.Finished.Failed != 1 {
		for id, tt := range prog.Tests {
			if tt.Result != nil {
				t.Logf("%s: %v", id, tt.Result.Reasons)
			}
		}
		t.Fatalf("finished %+v", prog.Finished)
	}
	bad := prog.Tests["disagg_perf_bad"].Result
	if bad.Passed || !strings.Contains(strings.Join(bad.Reasons, ";"), "failed") {
		t.Fatalf("a test with failed requests: %+v", bad)
	}
	if marker, err := os.ReadFile(filepath.Join(out, "slurm_logs", "disagg_perf_bad", run, collect.FailedMarker)); err != nil || !strings.Contains(string(marker), "FAILED") {
		t.Fatalf("failed test's folder not marked: %v", err)
	}

	replayed := filepath.Join(dir, "replay")
	res, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: replayed, LogsFrom: out})
	if err != nil {
		t.Fatal(err)
	}
	tests, rows := res.Tests, res.Rows
	if tests != 4 || rows == 0 {
		t.Fatalf("replayed %d tests, %d rows", tests, rows)
	}
	a, _ := os.ReadFile(filepath.Join(out, collect.CSVName))
	c, _ := os.ReadFile(filepath.Join(replayed, collect.CSVName))
	if len(a) == 0 || !bytes.Equal(a, c) {
		t.Fatalf("replayed CSV differs:\n%s\n---\n%s", a, c)
	}
	ra, err := results.ReadDataset(filepath.Join(out, "results"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := results.ReadDataset(filepath.Join(replayed, "results"))
	if err != nil {
		t.Fatal(err)
	}
	sortRows(ra)
	sortRows(rc)
	if len(ra) != rows || !reflect.DeepEqual(ra, rc) {
		t.Fatalf("replayed Parquet differs: %d vs %d rows", len(ra), len(rc))
	}
	// Replaying over the collected outputs replaces them; nothing doubles.
	if _, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	if again, err := results.ReadDataset(filepath.Join(out, "results")); err != nil || len(again) != rows {
		t.Fatalf("after replay in place: %d Parquet rows (%v), want %d", len(again), err, rows)
	}
	if c2, _ := os.ReadFile(filepath.Join(out, collect.CSVName)); !bytes.Equal(a, c2) {
		t.Fatal("CSV changed by a replay in place")
	}
	for _, r := range ra {
		if r.TestID == "disagg_perf_a" && r.Concurrency == 2 && r.Metric == "SERVER_MEDIAN_TTFT" && r.Value != 55 {
			t.Fatalf("c=2 TTFT = %v, want 55", r.Value)
		}
		if r.OutputTokSPerGPU == nil || *r.OutputTokSPerGPU != 128 {
			t.Fatalf("output tok/s per GPU = %v, want 1024/8", r.OutputTokSPerGPU)
		}
		if r.InputTokSPerGPU == nil || *r.InputTokSPerGPU != 128 || r.TotalTokSPerGPU == nil || *r.TotalTokSPerGPU != 256 {
			t.Fatalf("input, total tok/s per GPU = %v, %v, want 10240/10/8 and 2048/8", r.InputTokSPerGPU, r.TotalTokSPerGPU)
		}
	}
	// Every value the client printed is in the dataset; only the judged ones in the CSV.
	metrics := map[string]bool{}
	for _, r := range ra {
		if r.TestID != "disagg_perf_a" || r.Concurrency != 2 {
			continue
		}
		if metrics[r.Metric] {
			t.Fatalf("metric %s twice for one concurrency", r.Metric)
		}
		metrics[r.Metric] = true
		if want := r.Metric == "SERVER_MEDIAN_TTFT" || r.Metric == "SERVER_MEDIAN_E2EL"; r.Judged != want {
			t.Errorf("%s judged = %v, want %v", r.Metric, r.Judged, want)
		}
	}
	for _, m := range []string{"TOTAL_REQUESTS", "SUCCESSFUL_REQUESTS", "FAILED_REQUESTS", "BENCHMARK_DURATION",
		"TOTAL_INPUT_TOKENS", "TOTAL_OUTPUT_TOKENS", "REQUEST_THROUGHPUT", "OUTPUT_THROUGHPUT", "TOTAL_THROUGHPUT",
		"USER_THROUGHPUT", "SERVER_MEAN_TTFT", "SERVER_MEDIAN_TTFT", "SERVER_P99_TTFT", "SERVER_MEAN_E2EL",
		"SERVER_MEDIAN_E2EL", "SERVER_P99_E2EL"} {
		if !metrics[m] {
			t.Errorf("metric %s missing from the dataset (have %v)", m, metrics)
		}
	}
	if len(metrics) != 16 {
		t.Errorf("%d metrics for one concurrency, want the 16 printed: %v", len(metrics), metrics)
	}
	if lines := strings.Count(string(a), "\n"); lines != 1+4*2*2 || strings.Contains(string(a), "OUTPUT_THROUGHPUT") {
		t.Errorf("CSV has %d lines (want the header and 16 judged rows) or unjudged metrics:\n%s", lines, a)
	}
	var judged, other int
	for _, r := range prog.Tests["disagg_perf_a"].Result.Rows {
		if r.Judged {
			judged++
		} else {
			other++
		}
	}
	if judged != 4 || other != 2*14 {
		t.Errorf("result event rows: %d judged, %d others; want 4 and 28", judged, other)
	}
	replayKeepsOtherLines(t, ctx, b, out, run, a)
}

// replayKeepsOtherLines: a replay of one run rewrites only that run's rows; the seed's
// history, another run's rows of the same tests and a line it cannot read stay byte for
// byte; --dry-run and an unknown run change nothing; the previous CSV is kept as .bak.
func replayKeepsOtherLines(t *testing.T, ctx context.Context, b *bus.Bus, out, run string, collected []byte) {
	path := filepath.Join(out, collect.CSVName)
	header, body, _ := bytes.Cut(collected, []byte("\n"))
	lines := strings.SplitAfter(string(body), "\n")
	lines = lines[:len(lines)-1]
	history := "llama_con:1,test_benchmark[llama]_con:1,0,0,,test_benchmark[llama]_con:1,test_benchmark[llama]_con:1,test_benchmark[llama]_con:1,12.5,,2025-01-01 00:00:00,2025-01-01 01:00:00,valid,disagg_benchmark,,,SERVER_MEDIAN_TTFT\n"
	other := strings.Replace(strings.Replace(lines[0], "20", "19", 2), ",40.0,", ",41.0,", 1) // another run: other times
	// Run r1's rows, one changed by hand and one lost, between lines it never wrote.
	mine := append([]string(nil), lines...)
	changed := strings.Replace(mine[1], ",40.0,", ",99.0,", 1)
	if changed == mine[1] {
		changed = strings.Replace(mine[1], ",9000.0,", ",99.0,", 1)
	}
	csv := string(header) + "\n" + history + other + strings.Join(mine[:1], "") + changed + strings.Join(mine[3:], "") + "not,a,row\n"
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(path + ".bak")
	// Unknown run: an error, nothing written.
	if _, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: "nope", OutputPath: out}); !errors.Is(err, collect.ErrNothingToReplay) {
		t.Fatalf("unknown run: %v", err)
	}
	// Dry run: the diff, nothing written.
	res, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: out, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Diff[run]; d == nil || d.Added != 1 || d.Changed != 1 || d.Removed != 0 {
		t.Fatalf("dry-run diff %+v, want 1 added, 1 changed", d)
	}
	if got, _ := os.ReadFile(path); string(got) != csv {
		t.Fatal("an unknown run or a dry run changed the CSV")
	}
	if _, err := os.Stat(path + ".bak"); err == nil {
		t.Fatal("an unknown run or a dry run wrote a .bak")
	}
	if _, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: out}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := string(header) + "\n" + history + other + strings.Join(lines, "") + "not,a,row\n"
	if string(got) != want {
		t.Fatalf("replayed CSV:\n%s\nwant:\n%s", got, want)
	}
	if bak, _ := os.ReadFile(path + ".bak"); string(bak) != csv {
		t.Fatal("the previous CSV is not kept as .bak")
	}
}

func sortRows(rows []results.Row) {
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.TestID != b.TestID {
			return a.TestID < b.TestID
		}
		if a.Concurrency != b.Concurrency {
			return a.Concurrency < b.Concurrency
		}
		return a.Metric+a.Dataset+a.Filter < b.Metric+b.Dataset+b.Filter
	})
}
