package collect_test

import (
	"bytes"
	"context"
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
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/slurm"
	"github.com/disaggbench/disaggbench/pkg/slurm/slurmtest"
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
			LogDir: filepath.Join(out, "slurm_logs", id, run), Request: slurm.JobRequest{Name: run + "." + id},
			Files: []events.File{{Name: "6_bench.log", Data: []byte(log)}}})
	}
	st, err := pipeline.Start(ctx, b, pipeline.Options{OutputPath: out, Scheduler: slurmtest.New(0),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), View: io.Discard, PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	if err := p.Publish(ctx, b); err != nil {
		t.Fatal(err)
	}
	prog, err := plan.Follow(ctx, b, run, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if prog.Finished.Passed != 3 || prog.Finished.Failed != 1 {
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
	tests, rows, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: replayed})
	if err != nil {
		t.Fatal(err)
	}
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
	if _, _, err := collect.Replay(ctx, b, collect.ReplayOptions{RunID: run, OutputPath: out}); err != nil {
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
