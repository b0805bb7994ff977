package plan_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/scheduler/fake"
)

const benchLog = `Benchmarking with concurrency 1 ... 10 prompts
============ Serving Benchmark Result ============
Successful requests:                     10        
Failed requests:                         0         
Benchmark duration (s):                  12.34     
Total input tokens:                      10240     
Total generated tokens:                  10240     
Request throughput (req/s):              0.81      
Output token throughput (tok/s):         829.82    
Total Token throughput (tok/s):          1659.64   
User throughput (tok/s):                 83.12     
---------------Time to First Token----------------
Mean TTFT (ms):                          45.10     
Median TTFT (ms):                        44.20     
P99 TTFT (ms):                           80.55     
-----Time per Output Token (excl. 1st token)------
Mean TPOT (ms):                          12.01     
Median TPOT (ms):                        11.98     
P99 TPOT (ms):                           13.50     
---------------Inter-token Latency----------------
Mean ITL (ms):                           12.01     
Median ITL (ms):                         11.90     
P99 ITL (ms):                            14.10     
----------------End-to-end Latency----------------
Mean E2EL (ms):                          12330.10  
Median E2EL (ms):                        12310.40  
P99 E2EL (ms):                           12800.00  
==================================================
Benchmark with concurrency 1 done
`

// BenchmarkPipeline pushes 10,000 tests through submitter, watcher and collector on an
// embedded JetStream server, with a scheduler that completes every job at once. Each job's
// files (a one-concurrency client log among them) are written, parsed, and turned into
// CSV and Parquet rows. Run with -benchtime=1x.
func BenchmarkPipeline(b *testing.B) {
	n := benchN()
	for range b.N {
		dir := benchDir(b)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		bs, err := bus.Connect(ctx, bus.Options{StoreDir: filepath.Join(dir, ".nats")})
		if err != nil {
			b.Fatal(err)
		}
		run := "bench"
		p := &plan.Plan{RunID: run, BatchSize: 0, Policy: events.PolicySliding,
			Started: events.RunStarted{Header: events.NewHeader(run), Tests: n, Policy: events.PolicySliding}}
		for i := range n {
			id := fmt.Sprintf("disagg_perf_bench_%05d", i)
			p.Specs = append(p.Specs, events.JobSpec{Index: i, TestID: id, TestType: "disagg", Category: "perf",
				Model: "m", Precision: "fp4", GPUType: "GB200", CtxGPUs: 4, GenGPUs: 8, NumGenServers: 1,
				Concurrencies: []int{1}, LogDir: filepath.Join(dir, "slurm_logs", id, run),
				Request: fake.Request(run, id, filepath.Join(dir, "slurm_logs", id, run), "6_bench.log"),
				Files:   []events.File{{Name: "6_bench.log", Data: []byte(benchLog)}}})
		}
		var peak atomic.Uint64
		stopMem := make(chan struct{})
		go func() {
			var ms runtime.MemStats
			for {
				select {
				case <-stopMem:
					return
				case <-time.After(100 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					if ms.HeapInuse > peak.Load() {
						peak.Store(ms.HeapInuse)
					}
				}
			}
		}()
		var logTo io.Writer = io.Discard
		if os.Getenv("BENCH_LOG") != "" {
			logTo = os.Stderr // BENCH_LOG=1 shows the stages' warnings
		}
		log := slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if os.Getenv("BENCH_LOG") != "" {
			bs.NC.SetErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
				log.Warn("NATS error", "subscription", sub.Subject, "err", err)
			})
		}
		st, err := pipeline.Start(ctx, bs, pipeline.Options{OutputPath: dir, Scheduler: fake.New(0), Log: log,
			PollMin: 5 * time.Millisecond, PollMax: 20 * time.Millisecond, TimeLimit: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if os.Getenv("BENCH_LOG") != "" {
			go func() {
				// Every 100 ms for the first 2 s (a stall shows at the start), then every 2 s.
				for k := 0; ctx.Err() == nil; k++ {
					every := 2 * time.Second
					if k < 20 {
						every = 100 * time.Millisecond
					}
					time.Sleep(every)
					for _, d := range []string{"submitter", "watcher", "collector"} {
						if c, err := bs.JS.Consumer(ctx, events.Stream, d); err == nil {
							if ci, err := c.Info(ctx); err == nil {
								log.Warn("consumer", "name", d, "pending", ci.NumPending, "ack_pending", ci.NumAckPending, "waiting", ci.NumWaiting, "redelivered", ci.NumRedelivered)
							}
						}
					}
				}
			}()
		}
		b.ResetTimer()
		start := time.Now()
		if err := p.Publish(ctx, bs); err != nil {
			b.Fatal(err)
		}
		// When each stage's last event arrived, from the start: where the time goes.
		var stage [3]time.Duration
		var count [3]int
		prog, err := progress.Follow(ctx, bs, run, false, func(line string, _ *progress.Progress) {
			k := -1
			switch {
			case strings.HasSuffix(line, " submitted"):
				k = 0
			case strings.Contains(line, ") completed: "):
				k = 1
			case strings.HasPrefix(line, "PASSED ") || strings.HasPrefix(line, "FAILED "):
				k = 2
			}
			if k >= 0 {
				if count[k]++; count[k] == n {
					stage[k] = time.Since(start)
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		b.StopTimer()
		close(stopMem)
		if prog.Finished == nil || prog.Finished.Passed != n {
			b.Fatalf("finished %+v", prog.Finished)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "jobs/s")
		b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
		b.ReportMetric(stage[0].Seconds(), "submitted-s")
		b.ReportMetric(stage[1].Seconds(), "completed-s")
		b.ReportMetric(stage[2].Seconds(), "results-s")
		st.Stop()
		bs.Close()
		cancel()
	}
}

// benchN is 10,000, or BENCH_N for a quicker look.
func benchN() int {
	if v, err := strconv.Atoi(os.Getenv("BENCH_N")); err == nil && v > 0 {
		return v
	}
	return 10000
}

// benchDir is a fresh folder under BENCH_DIR (for example /dev/shm, to time the pipeline
// rather than the disk), or under the test's temporary folder.
func benchDir(b *testing.B) string {
	root := os.Getenv("BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "disaggbench-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
