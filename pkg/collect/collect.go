// Package collect is the collector stage: on every completed job it reads the job's
// logs, extracts the metrics (the test's own or the defaults of its type), judges the
// test, appends the seed's CSV rows, writes the Parquet dataset, and publishes the
// result. Each result is claimed in KV first, so a redelivered completion never writes
// a row twice. The outputs are not fsynced one test at a time: they are derived data,
// and `collector replay` rebuilds them from the stored events after a machine crash.
package collect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/metrics"
	"github.com/disaggbench/disaggbench/pkg/results"
	"github.com/disaggbench/disaggbench/pkg/slurm"
)

// Durable is the collector's consumer name.
const Durable = "collector"

// CSVName is the seed's results file, under the output path.
const CSVName = "perf_script_test_results.csv"

// FailedMarker is written into a failed test's log folder, with the reasons.
const FailedMarker = "FAILED.txt"

// Config of a collector.
type Config struct {
	Bus        *bus.Bus
	OutputPath string
	Log        *slog.Logger
	// MaxFailedRequests a perf test may have and still pass (default 0).
	MaxFailedRequests int
	AckWait           time.Duration
	// Workers judge completions and write Parquet files in parallel (default 4).
	Workers int
}

// Collector is the stage.
type Collector struct {
	cfg Config
	log *slog.Logger
}

// New applies defaults.
func New(cfg Config) (*Collector, error) {
	if cfg.Bus == nil || cfg.OutputPath == "" {
		return nil, errors.New("collect: a bus and an output path are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 2 * time.Minute
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	return &Collector{cfg: cfg, log: cfg.Log.With("stage", "collector")}, nil
}

// CSVPath and ParquetRoot are where the outputs go.
func (c *Collector) CSVPath() string     { return filepath.Join(c.cfg.OutputPath, CSVName) }
func (c *Collector) ParquetRoot() string { return filepath.Join(c.cfg.OutputPath, "results") }

// Run collects until ctx ends. Completions are judged and claimed by several workers at
// once; their CSV rows are appended one at a time in the order they were delivered, so
// one collector writes the CSV in stream order (which is what replay reproduces); their
// Parquet rows are gathered into part files; then, again several at once, each result is
// marked done, published and counted, and its message acknowledged.
func (c *Collector) Run(ctx context.Context) error {
	cons, err := c.cfg.Bus.Consumer(ctx, Durable, "collector: completed jobs", events.CompletedFilter, c.cfg.AckWait, maxInFlight)
	if err != nil {
		return err
	}
	// Work already taken is finished even while stopping.
	wctx := context.WithoutCancel(ctx)
	work, ordered := make(chan *item, 64), make(chan *item, 256)
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				it.res, it.rows = c.prepare(&it.ev)
				it.cl, it.rev, it.err = c.claim(wctx, &it.ev, it.rows)
				close(it.ready)
			}
		}()
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		c.commitLoop(wctx, ordered)
	}()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if ctx.Err() != nil {
			_ = m.Nak() // stopping: hand it back at once
			return
		}
		it := &item{m: m, ready: make(chan struct{})}
		if err := json.Unmarshal(m.Data(), &it.ev); err != nil {
			c.log.Error("undecodable completed event; dropping it", "subject", m.Subject(), "err", err)
			_ = m.Term()
			return
		}
		ordered <- it
		work <- it
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		close(work)
		close(ordered)
		wg.Wait()
		<-committed
		return err
	}
	<-ctx.Done()
	cc.Drain()
	<-cc.Closed()
	close(work)
	close(ordered)
	wg.Wait()
	<-committed
	return nil
}

// maxPartRows bounds the rows buffered for one Parquet part file, and partAge how long
// its first test waits for company.
const (
	maxPartRows = 20000
	partAge     = 250 * time.Millisecond
	// maxInFlight is how many completions a collector holds unacknowledged; a part is
	// also written when half of them wait for it.
	maxInFlight = 4096
)

// part is a Parquet file being gathered for one run: the rows of the tests whose CSV rows
// were appended since the last flush. Their results are finished once the file is written.
type part struct {
	name  string
	rows  []results.Row
	items []*item
}

// commitLoop appends CSV rows in delivery order. Parquet rows are gathered per run and
// written as one part file a moment after the first of them (or when the part is full),
// so a burst of results makes a few files rather than one per test.
func (c *Collector) commitLoop(ctx context.Context, ordered <-chan *item) {
	finish := make(chan *item, 256)
	var fin sync.WaitGroup
	for range c.cfg.Workers {
		fin.Add(1)
		go func() {
			defer fin.Done()
			for it := range finish {
				if it.err == nil {
					it.err = c.finish(ctx, it)
				}
				if it.err != nil {
					c.log.Error("collect failed; retrying", "test", it.ev.TestID, "err", it.err)
					_ = it.m.NakWithDelay(2 * time.Second)
					continue
				}
				_ = it.m.Ack()
			}
		}()
	}
	parts := map[string]*part{}
	rows, held := 0, 0
	flush := func() {
		for run, p := range parts {
			if len(p.rows) > 0 {
				if err := results.WriteParquetFile(filepath.Join(results.PartitionDir(c.ParquetRoot(), run), p.name), p.rows, results.NoSync()); err != nil {
					c.log.Error("write Parquet part; its tests will be collected again", "file", p.name, "err", err)
					for _, it := range p.items {
						it.err = fmt.Errorf("write Parquet: %w", err)
					}
				}
			}
			for _, it := range p.items {
				finish <- it
			}
		}
		clear(parts)
		rows, held = 0, 0
	}
	// A part is written when it is full, or partAge after its first test: results that
	// arrive together share a file, and a lone result waits no longer than that.
	var due <-chan time.Time
	for {
		var it *item
		var ok bool
		select {
		case it, ok = <-ordered:
		case <-due:
			flush()
			due = nil
			continue
		}
		if !ok {
			break
		}
		<-it.ready
		if it.err != nil {
			finish <- it
			continue
		}
		if due == nil {
			due = time.After(partAge)
		}
		p := parts[it.ev.RunID]
		if p == nil {
			seq := uint64(0)
			if md, err := it.m.Metadata(); err == nil {
				seq = md.Sequence.Stream
			}
			p = &part{name: fmt.Sprintf("part-%012d.parquet", seq)}
			parts[it.ev.RunID] = p
		}
		if it.err = c.appendCSV(it, p.name); it.err == nil && it.add {
			p.rows = append(p.rows, it.rows...)
			rows += len(it.rows)
		}
		p.items = append(p.items, it)
		if held++; rows >= maxPartRows || held >= maxInFlight/2 {
			flush()
			due = nil
		}
	}
	flush()
	close(finish)
	fin.Wait()
}

type item struct {
	m     jetstream.Msg
	ev    events.JobCompleted
	res   *events.Result
	rows  []results.Row
	ready chan struct{} // closed once judged and claimed

	cl  claim  // the result's claim, as this collector last wrote it
	rev uint64 // its revision
	add bool   // its Parquet rows go to the current part file
	err error
}

// claim is the collector's KV record of one result.
type claim struct {
	CSV     results.CSVClaim `json:"csv"`
	Rows    int              `json:"rows"`
	Parquet string           `json:"parquet,omitempty"`
	Done    bool             `json:"done"`
	Counted bool             `json:"counted"`
	Passed  bool             `json:"passed"`
}

// prepare judges a job from its log folder and marks a failed test's folder (which may
// be done again without harm).
func (c *Collector) prepare(ev *events.JobCompleted) (*events.Result, []results.Row) {
	spec := ev.Spec
	if ev.LogDir != "" {
		if s, err := events.ReadJobFile(ev.LogDir); err == nil {
			spec = s
		} else if spec == nil {
			c.log.Warn("no job spec in log folder", "dir", ev.LogDir, "err", err)
		}
	}
	if spec == nil {
		spec = &events.JobSpec{TestID: ev.TestID}
	}
	res, rows := Judge(ev, spec, c.cfg.MaxFailedRequests)
	if !res.Passed && ev.LogDir != "" {
		markFailed(ev.LogDir, res)
	}
	return res, rows
}

// claim creates the result's claim, or reads the one an earlier delivery left.
func (c *Collector) claim(ctx context.Context, ev *events.JobCompleted, rows []results.Row) (claim, uint64, error) {
	key := events.Key(ev.RunID, ev.TestID)
	kv := c.cfg.Bus.Results
	// Most completions are new: claim first, and read the claim only when one exists.
	var cl claim
	var err error
	if cl.CSV, err = results.PrepareCSV(c.CSVPath(), rows); err != nil {
		return cl, 0, err
	}
	cl.Rows = len(rows)
	data, _ := json.Marshal(cl)
	rev, err := kv.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		cl = claim{}
		rev, err = bus.GetJSON(ctx, kv, key, &cl)
	}
	if err != nil {
		return cl, 0, fmt.Errorf("result claim %s: %w", key, err)
	}
	return cl, rev, nil
}

// appendCSV appends the test's CSV rows unless its claim shows they are in the file
// already, and decides whether its Parquet rows go to the part file named part: not
// when an earlier part that was written holds them.
func (c *Collector) appendCSV(it *item, part string) error {
	it.add = false
	if len(it.rows) == 0 {
		return nil
	}
	if !it.cl.Done {
		done, _, err := results.AppendCSVOnce(c.CSVPath(), it.rows, it.cl.CSV, results.NoSync())
		if err != nil {
			return fmt.Errorf("append CSV: %w", err)
		}
		it.cl.CSV = done
		it.cl.Parquet, it.add = part, true
		return nil
	}
	if it.cl.Parquet == part {
		return nil // in the part being gathered now
	}
	if _, err := os.Stat(filepath.Join(results.PartitionDir(c.ParquetRoot(), it.ev.RunID), it.cl.Parquet)); err != nil {
		// Done before, but its part was never written (a crash before the flush).
		it.cl.Parquet, it.add = part, true
	}
	return nil
}

// finish records the claim done, publishes the result and counts it in its run, each
// exactly once.
func (c *Collector) finish(ctx context.Context, it *item) error {
	key := events.Key(it.ev.RunID, it.ev.TestID)
	kv := c.cfg.Bus.Results
	var err error
	if !it.cl.Done || it.add {
		it.cl.Done, it.cl.Passed = true, it.res.Passed
		if it.rev, err = update(ctx, kv, key, it.cl, it.rev); err != nil {
			return err
		}
	}
	if err := c.cfg.Bus.Publish(ctx, events.ResultSubject(it.ev.RunID, it.ev.TestID), events.ResultID(it.ev.RunID, it.ev.TestID), it.res); err != nil {
		return err
	}
	if !it.cl.Counted {
		if err := c.count(ctx, it.ev.RunID, it.res.Passed); err != nil {
			return err
		}
		it.cl.Counted = true
		if it.rev, err = update(ctx, kv, key, it.cl, it.rev); err != nil {
			return err
		}
	}
	return nil
}

func update(ctx context.Context, kv jetstream.KeyValue, key string, cl claim, rev uint64) (uint64, error) {
	data, _ := json.Marshal(cl)
	nrev, err := kv.Update(ctx, key, data, rev)
	if err != nil {
		return 0, fmt.Errorf("update result claim %s: %w", key, err)
	}
	return nrev, nil
}

// count adds one result to the run and publishes the run's end with its last result.
func (c *Collector) count(ctx context.Context, run string, passed bool) error {
	var finish bool
	rec, err := bus.UpdateJSON(ctx, c.cfg.Bus.Runs, events.Token(run), func(r *events.RunRecord) error {
		finish = false
		r.RunID = run
		r.Done++
		if passed {
			r.Passed++
		} else {
			r.Failed++
		}
		if r.Tests > 0 && r.Done >= r.Tests && !r.Finished {
			r.Finished, finish = true, true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count result of run %s: %w", run, err)
	}
	if finish {
		return PublishFinished(ctx, c.cfg.Bus, rec)
	}
	return nil
}

// PublishFinished announces that every test of a run has its result.
func PublishFinished(ctx context.Context, b *bus.Bus, rec events.RunRecord) error {
	ev := events.RunFinished{Header: events.NewHeader(rec.RunID), Tests: rec.Tests, Passed: rec.Passed, Failed: rec.Failed}
	return b.Publish(ctx, events.RunFinishedSubject(rec.RunID), events.FinishedID(rec.RunID), ev)
}

func markFailed(dir string, res *events.Result) {
	text := fmt.Sprintf("test %s FAILED (run %s, job %s, state %s)\n", res.TestID, res.RunID, res.JobID, res.State)
	for _, r := range res.Reasons {
		text += "- " + r + "\n"
	}
	_ = os.WriteFile(filepath.Join(dir, FailedMarker), []byte(text), 0o644)
}

// Judge turns a completed job into its verdict and rows; it only reads the log folder.
func Judge(ev *events.JobCompleted, spec *events.JobSpec, maxFailed int) (*events.Result, []results.Row) {
	res := &events.Result{
		Header: events.NewHeader(ev.RunID), TestID: ev.TestID, JobID: ev.JobID, State: ev.State,
		Start: ev.Start, End: ev.End, LogDir: ev.LogDir,
	}
	if !ev.Start.IsZero() && !ev.End.IsZero() {
		res.Duration = ev.End.Sub(ev.Start).Seconds()
	}
	res.Reasons = append(res.Reasons, ev.Reasons...)
	if ev.State == events.StateInvalid || ev.State == events.StateSubmitFailed {
		if len(res.Reasons) == 0 {
			res.Reasons = []string{strings.ToLower(ev.State)}
		}
		return res, nil
	}
	in := metrics.Input{
		TestType: spec.TestType, Category: spec.Category, Concurrencies: spec.Concurrencies,
		NumGenServers: spec.NumGenServers, MaxFailedRequests: maxFailed, JobState: ev.State,
	}
	if m := spec.Metrics; m != nil {
		in.Custom = &metrics.Spec{LogFile: m.LogFile, Pattern: m.Pattern, Names: m.Names}
	}
	for _, d := range spec.Datasets {
		in.Datasets = append(in.Datasets, dataset(d))
	}
	m := metrics.Judge(ev.LogDir, in)
	res.Partial = m.Partial
	res.Reasons = append(res.Reasons, m.Reasons...)
	state := slurm.BaseState(ev.State)
	if state != slurm.Completed {
		// The job's end in the scheduler's words, with its exit code, in place of the
		// parser's shorter note on the state.
		why := fmt.Sprintf("job %s ended %s (exit code %d)", ev.JobID, cmp.Or(ev.Detail, ev.State), ev.ExitCode)
		replaced := false
		for i, r := range res.Reasons {
			if strings.HasPrefix(r, "job ended in state") {
				res.Reasons[i], replaced = why, true
				break
			}
		}
		if !replaced {
			res.Reasons = append(res.Reasons, why)
		}
	}
	res.Passed = m.Valid && state == slurm.Completed
	verdict := "fail"
	if res.Passed {
		verdict = "pass"
	}
	base := results.Row{
		RunID: ev.RunID, TestID: ev.TestID, TestType: spec.TestType, Category: spec.Category,
		Model: spec.Model, Precision: spec.Precision, GPUType: spec.GPUType, Verdict: verdict,
		Reasons: strings.Join(res.Reasons, "; "), JobID: ev.JobID, SlurmState: state,
		ExitCode: int64(ev.ExitCode), NodeList: ev.NodeList, Start: ev.Start, End: ev.End,
		CtxGPUs: int64(spec.CtxGPUs), GenGPUs: int64(spec.GenGPUs), ConfigHash: spec.ConfigHash,
		ContainerImage: spec.Image, Partial: m.Partial,
	}
	var rows []results.Row
	gpus := spec.CtxGPUs + spec.GenGPUs
	for _, p := range m.Perf {
		// Rows carry the concurrency as the client printed it (the configured value times
		// the gen servers), as the seed's CSV names do.
		c := p.Concurrency * max(spec.NumGenServers, 1)
		r := base
		r.Concurrency, r.Metric, r.Value, r.Unit, r.Passed = int64(c), p.Metric, p.Value, p.Unit, m.Valid
		if b := blockFor(m.Blocks, c); b != nil {
			if v, ok := b.Get(metrics.OutputThroughput); ok && gpus > 0 {
				r.OutputTokSPerGPU = results.Float(v / float64(gpus))
			}
			if v, ok := b.Get(metrics.UserThroughput); ok {
				r.TokSPerUser = results.Float(v)
			}
		}
		rows = append(rows, r)
		res.Rows = append(res.Rows, events.ResultRow{Concurrency: c, Metric: p.Metric, Value: p.Value, Unit: p.Unit})
	}
	for _, a := range m.Accuracy {
		r := base
		var th *float64
		if !math.IsNaN(a.Threshold) {
			th = results.Float(a.Threshold)
		}
		metric := cmp.Or(a.Metric, "exact_match")
		r.Metric, r.Value, r.Dataset, r.Filter, r.Threshold, r.Passed, r.Unit = metric, a.Value, a.Dataset, a.Filter, th, a.Passed, "fraction"
		rows = append(rows, r)
		passed := a.Passed
		res.Rows = append(res.Rows, events.ResultRow{Metric: metric, Value: a.Value, Unit: "fraction", Dataset: a.Dataset, Filter: a.Filter, Threshold: th, Passed: &passed})
	}
	return res, rows
}

// dataset fills a test's accuracy expectation over the dataset's defaults.
func dataset(d events.Dataset) metrics.Dataset {
	m := metrics.DatasetDefaults(d.Name)
	m.Name, m.Filter, m.Expected = d.Name, d.Filter, d.Expected
	if d.ThresholdType != "" {
		m.ThresholdType = d.ThresholdType
	}
	if d.Alpha != nil {
		m.Alpha = *d.Alpha
	}
	if d.Beta != nil {
		m.Beta = *d.Beta
	}
	if d.Sigma != nil {
		m.Sigma = *d.Sigma
	}
	if d.NumSamples != nil {
		m.NumSamples = *d.NumSamples
	}
	if d.HigherIsBetter != nil {
		m.HigherIsBetter = *d.HigherIsBetter
	}
	return m
}

// blockFor is the last complete result block the client printed for a concurrency (as
// the log prints it).
func blockFor(blocks []metrics.Block, logConcurrency int) *metrics.Block {
	for i := len(blocks) - 1; i >= 0; i-- {
		if b := &blocks[i]; !b.Warmup && b.LogConcurrency == logConcurrency {
			return b
		}
	}
	return nil
}
