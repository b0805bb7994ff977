package plan_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/pipeline"
	"github.com/disaggbench/disaggbench/pkg/plan"
)

// makespanDurations is the benchmark's mix: 20 jobs of 5 to 20 s, 260 s of work, in a
// fixed order that is neither sorted nor reversed.
var makespanDurations = []int{12, 5, 20, 8, 15, 17, 6, 15, 11, 19, 9, 15, 14, 7, 18, 10, 15, 13, 16, 15}

// makespanConfigs writes one quickstart-shaped perf config per duration (two nodes a
// job) whose job script sleeps that long; ids sort in the given order.
func makespanConfigs(tb testing.TB, dir string, durations []int) string {
	tb.Helper()
	src, err := os.ReadFile(filepath.Join(quickstart, "test_configs/disagg/perf/tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl, err := os.ReadFile("testdata/makespan/sleep.sh.tmpl")
	if err != nil {
		tb.Fatal(err)
	}
	cfgDir := filepath.Join(dir, "test_configs")
	perf := filepath.Join(cfgDir, "disagg", "perf")
	if err := os.MkdirAll(perf, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "sleep.sh.tmpl"), tmpl, 0o644); err != nil {
		tb.Fatal(err)
	}
	// The quickstart's own job script (if any) gives way to the sleeping one.
	data := regexp.MustCompile(`(?m)^  script_file:.*\n`).ReplaceAll(src, nil)
	data = bytes.Replace(data, []byte("  emulate: true\n"), []byte("  container_image: nvcr.io/nvidia/tensorrt-llm/release:1.2.0\n"), 1)
	data = bytes.Replace(data, []byte("\nslurm:\n"), []byte("\nslurm:\n  script_file: ../../sleep.sh.tmpl\n"), 1)
	for i, d := range durations {
		name := fmt.Sprintf("tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX_j%02d_d%02d.yaml", i, d)
		if err := os.WriteFile(filepath.Join(perf, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return cfgDir
}

// BenchmarkSLURMMakespan runs the mix through two slots of the local SLURM (four nodes,
// two a job) with a window of two, as the watcher and submitter run in production
// (poll 2 s to 60 s, squeue every second), and reports the makespan against its lower
// bound, the slots' idle time, and the latencies from a job's end to its completed
// event, its verdict and the next submission. It also prints what the seed's polling
// (60 s and 180 s) would give on the same mix. BENCH_ORDER=lpt submits longest first;
// BENCH_QUEUE_AHEAD=1 queues one job ahead of the full window (plan.Options.QueueAhead).
//
//	go test -run '^$' -bench SLURMMakespan -benchtime=1x ./pkg/plan
func BenchmarkSLURMMakespan(b *testing.B) {
	const slots = 2
	durations := makespanDurations
	total, longest := 0, 0
	for _, d := range durations {
		total += d
		longest = max(longest, d)
	}
	bound := time.Duration(max(float64(total)/slots, float64(longest)) * float64(time.Second))
	for _, poll := range []time.Duration{60 * time.Second, 180 * time.Second} {
		b.Logf("seed model, poll %v: sliding %v (%.2fx), barrier %v (%.2fx)", poll,
			simulateMakespan(durations, slots, poll, false), float64(simulateMakespan(durations, slots, poll, false))/float64(bound),
			simulateMakespan(durations, slots, poll, true), float64(simulateMakespan(durations, slots, poll, true))/float64(bound))
	}
	for range b.N {
		h := newSLURMHarness(b, 20*time.Minute)
		dir := b.TempDir()
		out := filepath.Join(dir, "out")
		p := h.prepare(config.Selection{ConfigDir: makespanConfigs(b, dir, durations)}, slots, out)
		p.Order = plan.OrderFile
		if os.Getenv("BENCH_ORDER") == "lpt" {
			// As if earlier runs had recorded each test's duration.
			for _, s := range p.Specs {
				data, _ := json.Marshal(events.DurationHistory{Seconds: []float64{float64(durationOf(s.TestID))}})
				if _, err := h.b.History.Put(h.ctx, events.HistoryKey(s.TestID, s.GPUType), data); err != nil {
					b.Fatal(err)
				}
			}
			p.Order = plan.OrderLPT
		}
		p.QueueAhead = os.Getenv("BENCH_QUEUE_AHEAD") == "1"
		opts := h.stageOptions(out)
		opts.PollMin, opts.PollMax = 2*time.Second, 60*time.Second
		stages, err := pipeline.Start(h.ctx, h.b, opts)
		if err != nil {
			b.Fatal(err)
		}
		before := h.sched.Calls()
		t0 := time.Now()
		if err := p.Publish(h.ctx, h.b); err != nil {
			b.Fatal(err)
		}
		prog := h.follow(p)
		wall := time.Since(t0)
		stages.Stop()
		calls := h.sched.Calls()
		if prog.Finished == nil || prog.Finished.Failed > 0 {
			b.Fatalf("run did not pass: %+v", prog.Finished)
		}
		m := measureMakespan(b, h, p.RunID, out)
		first, last := m.firstStart, m.lastEnd
		span := last.Sub(first)
		b.ReportMetric(span.Seconds(), "makespan-s")
		b.ReportMetric(span.Seconds()/bound.Seconds(), "x-bound")
		b.ReportMetric(percentile(m.endToCompleted, 50).Seconds(), "end-completed-p50-s")
		b.ReportMetric(percentile(m.endToVerdict, 50).Seconds(), "end-verdict-p50-s")
		others := 0
		for _, j := range h.sacct("-a", "-o", "JobIDRaw,State,Submit,Start,End,NodeList,JobName") {
			if !strings.Contains(j.Name, p.RunID) && !j.Start.IsZero() && j.Start.Before(last) && (j.End.IsZero() || j.End.After(first)) {
				others++
			}
		}
		b.Logf("jobs of others on the cluster during the run: %d (they take slots: the figures then overstate)", others)
		b.Logf("queue ahead %v; SLURM start -> script start: mean %v; script end -> SLURM end: mean %v (sacct's whole seconds, +0.5 s)",
			p.QueueAhead, mean(m.startToScript).Round(10*time.Millisecond), mean(m.scriptToEnd).Round(10*time.Millisecond))
		b.Logf("order %s: makespan %v (SLURM's first start to last end), bound %v: %.3fx; publish to finished %v; slot idle %v",
			p.Order, span.Round(100*time.Millisecond), bound, span.Seconds()/bound.Seconds(), wall.Round(100*time.Millisecond), (time.Duration(slots)*span - m.busy).Round(100*time.Millisecond))
		b.Logf("job end (script) -> completed event: p50 %v p90 %v p99 %v max %v", p50(m.endToCompleted), percentile(m.endToCompleted, 90), percentile(m.endToCompleted, 99), percentile(m.endToCompleted, 100))
		b.Logf("sacct End (+1 s, its resolution) -> completed event: p50 %v p90 %v p99 %v", p50(m.sacctEndToCompleted), percentile(m.sacctEndToCompleted, 90), percentile(m.sacctEndToCompleted, 99))
		b.Logf("job end (script) -> verdict: p50 %v p90 %v max %v", p50(m.endToVerdict), percentile(m.endToVerdict, 90), percentile(m.endToVerdict, 100))
		b.Logf("completed -> next job submitted: p50 %v max %v; submitted -> SLURM start: p50 %v max %v (SLURM's one-second times)",
			p50(m.refill), percentile(m.refill, 100), p50(m.startDelay), percentile(m.startDelay, 100))
		minutes := wall.Minutes()
		b.Logf("scheduler calls: sbatch %d, squeue %d (%.1f/min), sacct %d (%.1f/min)", calls["sbatch"]-before["sbatch"],
			calls["squeue"]-before["squeue"], float64(calls["squeue"]-before["squeue"])/minutes, calls["sacct"]-before["sacct"], float64(calls["sacct"]-before["sacct"])/minutes)
	}
}

func durationOf(testID string) int {
	n, _ := strconv.Atoi(testID[strings.LastIndex(testID, "_d")+2:])
	return n
}

type makespanFigures struct {
	firstStart, lastEnd          time.Time
	busy                         time.Duration
	endToCompleted, endToVerdict []time.Duration
	sacctEndToCompleted          []time.Duration
	refill, startDelay           []time.Duration
	startToScript, scriptToEnd   []time.Duration
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

// measureMakespan reads SLURM's times, the jobs' own end times and the event stream.
func measureMakespan(tb testing.TB, h *slurmHarness, run, out string) makespanFigures {
	tb.Helper()
	var m makespanFigures
	jobs := map[string]sacctJob{}
	for _, j := range h.sacctRun(run) {
		jobs[j.ID] = j
		if m.firstStart.IsZero() || j.Start.Before(m.firstStart) {
			m.firstStart = j.Start
		}
		if j.End.After(m.lastEnd) {
			m.lastEnd = j.End
		}
		m.busy += j.End.Sub(j.Start)
	}
	evs := h.events(run)
	scriptEnd := map[string]time.Time{}
	for i, ev := range evs {
		switch ev.kind {
		case events.KindSubmitted:
			var s events.JobSubmitted
			_ = json.Unmarshal(ev.data, &s)
			if j, ok := jobs[s.JobID]; ok && !j.Start.IsZero() {
				m.startDelay = append(m.startDelay, j.Start.Sub(ev.at.Truncate(time.Second)))
			}
		case events.KindCompleted:
			var c events.JobCompleted
			_ = json.Unmarshal(ev.data, &c)
			end := readUnixTime(tb, filepath.Join(c.LogDir, "job_end.txt"))
			scriptEnd[ev.test] = end
			if j, ok := jobs[c.JobID]; ok && !j.Start.IsZero() && !j.End.IsZero() {
				start := readUnixTime(tb, filepath.Join(c.LogDir, "job_start.txt"))
				// sacct's times are whole seconds: take the middle of the second.
				m.startToScript = append(m.startToScript, start.Sub(j.Start.Add(time.Second/2)))
				m.scriptToEnd = append(m.scriptToEnd, j.End.Add(time.Second/2).Sub(end))
			}
			m.endToCompleted = append(m.endToCompleted, ev.at.Sub(end))
			if j, ok := jobs[c.JobID]; ok && !j.End.IsZero() {
				// sacct's End has whole seconds: count from the end of that second.
				m.sacctEndToCompleted = append(m.sacctEndToCompleted, ev.at.Sub(j.End.Add(time.Second)))
			}
			for _, next := range evs[i+1:] {
				if next.kind == events.KindSubmitted {
					m.refill = append(m.refill, next.at.Sub(ev.at))
					break
				}
			}
		case "result":
			if end, ok := scriptEnd[ev.test]; ok {
				m.endToVerdict = append(m.endToVerdict, ev.at.Sub(end))
			}
		}
	}
	return m
}

func readUnixTime(tb testing.TB, path string) time.Time {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(string(data)), 64)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return time.Unix(0, int64(f*1e9))
}

func p50(d []time.Duration) time.Duration { return percentile(d, 50) }

// percentile is the nearest-rank percentile, rounded to the millisecond.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := max(0, (p*len(s)+99)/100-1)
	return s[min(i, len(s)-1)].Round(time.Millisecond)
}

// simulateMakespan models the seed framework's loop on a mix: jobs start at once, a
// finished job is noticed at the next poll (every poll from the start), and then its
// slot is refilled (sliding) or, with barrier, the next batch of slots jobs starts once
// the whole batch has been noticed finished.
func simulateMakespan(durations []int, slots int, poll time.Duration, barrier bool) time.Duration {
	noticed := func(end time.Duration) time.Duration {
		return (end + poll - 1) / poll * poll
	}
	var now, last time.Duration
	if barrier {
		for i := 0; i < len(durations); i += slots {
			var batchEnd time.Duration
			for _, d := range durations[i:min(i+slots, len(durations))] {
				batchEnd = max(batchEnd, now+time.Duration(d)*time.Second)
			}
			last = batchEnd
			now = noticed(batchEnd)
		}
		return last
	}
	free := make([]time.Duration, slots) // when each slot can take its next job
	for _, d := range durations {
		k := slices.Index(free, slices.Min(free))
		end := free[k] + time.Duration(d)*time.Second
		last = max(last, end)
		free[k] = noticed(end)
	}
	return last
}

func TestSimulateMakespan(t *testing.T) {
	// Two slots, jobs of 10 s and 10 s then 5 s: sliding with a 60 s poll starts the
	// third job when the first end is noticed (60 s); it ends at 65 s.
	if got := simulateMakespan([]int{10, 10, 5}, 2, time.Minute, false); got != 65*time.Second {
		t.Errorf("sliding: %v", got)
	}
	if got := simulateMakespan([]int{10, 20, 5}, 2, time.Minute, true); got != 65*time.Second {
		t.Errorf("barrier: %v", got)
	}
}
