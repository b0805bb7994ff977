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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/ledger"
	"github.com/disaggbench/disaggbench/pkg/metrics"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"github.com/disaggbench/disaggbench/pkg/results"
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
	// Workers judge and claim completions in parallel (default 8); four times as many
	// finish them (mark done, publish the result).
	Workers int
	// GiveUpAfter is how long a test whose results cannot be written is retried (each
	// try reported as a problem event); then it fails with the reason (default 2 min).
	GiveUpAfter time.Duration
	// TestBudget bounds the time reading one job's log folder takes (default 1 minute);
	// a test over it fails with that reason and holds up nothing longer.
	TestBudget time.Duration
}

// DefaultGiveUpAfter bounds the retries of a test whose results cannot be written.
const DefaultGiveUpAfter = 2 * time.Minute

// Collector is the stage.
type Collector struct {
	cfg Config
	log *slog.Logger
	csv *results.CSVAppender

	ledger *ledger.Ledger

	mu      sync.Mutex
	failing map[string]*trouble // by ledger key: tests whose collection keeps failing
}

// DefaultAckWait is how long a completion goes without a heartbeat before another
// collector takes it; the collector beats four times per ack-wait.
const DefaultAckWait = 8 * time.Second

// trouble is a test's run of failed collection attempts.
type trouble struct {
	since    time.Time
	reported time.Time
	n        int
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
		cfg.AckWait = DefaultAckWait
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.TestBudget <= 0 {
		cfg.TestBudget = DefaultTestBudget
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	c := &Collector{cfg: cfg, log: cfg.Log.With("stage", "collector"), ledger: ledger.New(cfg.Bus), failing: map[string]*trouble{}}
	c.csv = results.NewCSVAppender(c.CSVPath(), results.NoSync())
	return c, nil
}

// CSVPath and ParquetRoot are where the outputs go.
func (c *Collector) CSVPath() string     { return filepath.Join(c.cfg.OutputPath, CSVName) }
func (c *Collector) ParquetRoot() string { return filepath.Join(c.cfg.OutputPath, "results") }

// Run collects until ctx ends. Completions are judged and claimed by several workers at
// once. Their CSV rows are appended in the order they were delivered (so one collector
// writes the CSV in stream order, which is what replay reproduces), a burst at a time
// under one lock, and their Parquet rows go into one part file per run and burst. Then,
// again several at once, each result is marked done and published; once a burst's
// results are out, the run's end is looked for, and only then are their messages
// acknowledged, so a crash before that look repeats it.
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
				it.res, it.rows, it.err = c.prepare(ctx, &it.ev)
				if it.err != nil {
					close(it.ready) // stopping: handed back unjudged
					continue
				}
				it.payload = results.EncodeCSV(results.CSVRows(it.rows))
				it.cl, it.rev, it.err = c.claim(wctx, it)
				close(it.ready)
			}
		}()
	}
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		c.commitLoop(wctx, ordered)
	}()
	opts := bus.ConsumeOptions{
		Stage: "collector", What: "completed event", Log: c.log, Batch: 64,
		// A few heartbeats per ack-wait, until each completion is settled (also while
		// stopping): the ack-wait can be short.
		Heartbeat: c.cfg.AckWait / 4,
		// Far more deliveries than giving up on a test takes (one every 2 s).
		MaxDeliveries: max(bus.DefaultMaxDeliveries, 2*int(c.cfg.GiveUpAfter/(2*time.Second))),
	}
	err = bus.ConsumeEvents(ctx, cons, opts, decodeCompleted, func(m *bus.Delivery, ev events.JobCompleted) {
		it := &item{m: m, ev: ev, ready: make(chan struct{}), start: time.Now()}
		ordered <- it
		work <- it
	})
	close(work)
	close(ordered)
	wg.Wait()
	<-committed
	return err
}

func decodeCompleted(subject string, data []byte) (events.JobCompleted, error) {
	var ev events.JobCompleted
	err := events.DecodeJob(subject, data, &ev)
	return ev, err
}

// maxPartRows bounds the rows buffered for one Parquet part file, and partAge how long
// its first test waits for company.
const (
	maxPartRows = 20000
	partAge     = 250 * time.Millisecond
	// maxInFlight is how many completions a collector holds unacknowledged; a burst is
	// also written when half of them wait for it.
	maxInFlight = 4096
)

// part is a Parquet file being gathered for one run: the rows of the tests of one burst.
// Their results are finished once the file is written.
type part struct {
	name  string
	rows  []results.Row
	items []*item
}

// group is one run's tests of one burst, finished together: the last of them to be
// finished looks for the run's end, then every one is acknowledged.
type group struct {
	run   string
	items []*item
	left  atomic.Int64
}

// commitLoop gathers a burst: the tests that arrive within partAge of its first (or
// until it is full). It then appends their CSV rows in delivery order with one write,
// writes one Parquet part per run, and hands the tests on to be finished.
func (c *Collector) commitLoop(ctx context.Context, ordered <-chan *item) {
	finish := make(chan *item, 256)
	var fin sync.WaitGroup
	// Finishing a test is two round trips to JetStream and next to no CPU: many at once.
	for range 4 * c.cfg.Workers {
		fin.Add(1)
		go func() {
			defer fin.Done()
			for it := range finish {
				if it.err == nil {
					it.err = c.finish(ctx, it)
				}
				g := it.g
				if g == nil {
					c.settle(it, nil)
					continue
				}
				if g.left.Add(-1) > 0 {
					continue
				}
				var err error
				for _, x := range g.items {
					if x.err == nil {
						err = c.runEnd(ctx, g.run)
						break
					}
				}
				for _, x := range g.items {
					c.settle(x, err)
				}
			}
		}()
	}
	parts := map[string]*part{}
	var held []*item
	rows := 0
	flush := func() {
		c.appendCSV(held, parts)
		for run, p := range parts {
			for _, it := range p.items {
				if it.err == nil && it.add {
					p.rows = append(p.rows, it.rows...)
				}
			}
			if len(p.rows) > 0 {
				if err := results.WriteParquetFile(filepath.Join(results.PartitionDir(c.ParquetRoot(), run), p.name), p.rows, results.NoSync()); err != nil {
					c.log.Error("write Parquet part; its tests will be collected again", "file", p.name, "err", err)
					for _, it := range p.items {
						if it.err == nil {
							it.err = fmt.Errorf("write Parquet: %w", err)
						}
					}
				}
			}
			g := &group{run: run, items: p.items}
			g.left.Store(int64(len(p.items)))
			for _, it := range p.items {
				it.g = g
				finish <- it
			}
		}
		clear(parts)
		held, rows = held[:0], 0
	}
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
			p = &part{name: fmt.Sprintf("part-%012d.parquet", it.m.Seq)}
			parts[it.ev.RunID] = p
		}
		p.items = append(p.items, it)
		held = append(held, it)
		if rows += len(it.rows); rows >= maxPartRows || len(held) >= maxInFlight/2 {
			flush()
			due = nil
		}
	}
	flush()
	close(finish)
	fin.Wait()
}

// settle acknowledges a finished test, or hands it back for a retry.
func (c *Collector) settle(it *item, err error) {
	if it.err == nil {
		it.err = err
	}
	key := events.Key(it.ev.RunID, it.ev.TestID)
	if it.err != nil {
		if c.giveUp(key, it) {
			return
		}
		_ = it.m.NakAfter(2 * time.Second)
		obs.Event("collector", obs.Retry)
		return
	}
	c.mu.Lock()
	delete(c.failing, key)
	c.mu.Unlock()
	_ = it.m.Ack()
	outcome := obs.OK
	if it.res != nil && !it.res.Passed {
		outcome = obs.Failed
	}
	obs.Event("collector", outcome)
	obs.Duration("collector", time.Since(it.start))
}

// giveUp reports a test whose collection failed as a problem event, and once it has
// failed for GiveUpAfter publishes its result as failed with the reason (true: the
// message is settled).
func (c *Collector) giveUp(key string, it *item) bool {
	now := time.Now()
	c.mu.Lock()
	tr := c.failing[key]
	if tr == nil {
		tr = &trouble{since: now}
		c.failing[key] = tr
	}
	report := now.Sub(tr.reported) >= 15*time.Second
	if report {
		tr.reported = now
		tr.n++
	}
	since, n := tr.since, tr.n
	c.mu.Unlock()
	reason := "results not written: " + it.err.Error()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if now.Sub(since) < c.cfg.GiveUpAfter {
		c.log.Error("collect failed; retrying", "test", it.ev.TestID, "err", it.err, "gives up in", (c.cfg.GiveUpAfter - now.Sub(since)).Round(time.Second))
		if report {
			ev := events.Problem{Header: events.NewHeader(it.ev.RunID), TestID: it.ev.TestID, Stage: "collector",
				Reason: reason, Since: since, GiveUp: since.Add(c.cfg.GiveUpAfter)}
			if err := c.cfg.Bus.Publish(ctx, events.JobSubject(it.ev.RunID, it.ev.TestID, events.KindProblem),
				events.ProblemID(it.ev.RunID, it.ev.TestID, "collector", n), ev); err != nil {
				c.log.Warn("publish problem", "test", it.ev.TestID, "err", err)
			}
		}
		return false
	}
	// Out of time: the test fails with the reason; its rows are not written.
	res := events.Result{Header: events.NewHeader(it.ev.RunID), TestID: it.ev.TestID, JobID: it.ev.JobID,
		State: it.ev.State, LogDir: it.ev.LogDir, Start: it.ev.Start, End: it.ev.End}
	if it.res != nil {
		res = *it.res
		res.Rows = nil
	}
	res.Passed = false
	res.Reasons = append(res.Reasons, fmt.Sprintf("%s (gave up after %v)", reason, c.cfg.GiveUpAfter))
	if err := c.cfg.Bus.Publish(ctx, events.ResultSubject(it.ev.RunID, it.ev.TestID), events.ResultID(it.ev.RunID, it.ev.TestID), res); err != nil {
		c.log.Error("publish failed result", "test", it.ev.TestID, "err", err)
		return false
	}
	c.log.Error("collect failed; gave up, the test fails", "test", it.ev.TestID, "err", it.err, "after", c.cfg.GiveUpAfter)
	if err := c.runEnd(ctx, it.ev.RunID); err != nil {
		c.log.Warn("look for the run's end", "run", it.ev.RunID, "err", err)
	}
	c.mu.Lock()
	delete(c.failing, key)
	c.mu.Unlock()
	_ = it.m.Ack()
	obs.Event("collector", obs.Failed)
	obs.Duration("collector", time.Since(it.start))
	return true
}

type item struct {
	m       *bus.Delivery
	ev      events.JobCompleted
	res     *events.Result
	rows    []results.Row
	payload results.CSVPayload
	ready   chan struct{} // closed once judged and claimed
	g       *group
	start   time.Time // when it was taken

	cl  claim  // the result's claim, as this collector last wrote it
	rev uint64 // its revision
	add bool   // its Parquet rows go to the current part file
	err error
}

// claim is the collector's record of one result, kept by the ledger.
type claim = ledger.ResultClaim

// prepare judges a job from its log folder and marks a failed test's folder (which may
// be done again without harm). It fails only when ctx ends first.
func (c *Collector) prepare(ctx context.Context, ev *events.JobCompleted) (*events.Result, []results.Row, error) {
	if hook := prepareHook.Load(); hook != nil {
		(*hook)()
	}
	res, rows, dir, err := judgeEvent(ctx, c.cfg.OutputPath, ev, c.cfg.MaxFailedRequests, c.cfg.TestBudget)
	if err != nil {
		return nil, nil, err
	}
	if !res.Passed && ev.RanToEnd() {
		obs.ParseFailure("collector", "log") // the job ended well; its logs gave no passing result
	}
	if !res.Passed && dir != "" {
		if err := markFailed(dir, res); err != nil {
			c.log.Warn("FAILED.txt not written", "test", ev.TestID, "err", err)
		}
	}
	return res, rows, nil
}

// prepareHook, when set (by tests), runs before a completion is judged.
var prepareHook atomic.Pointer[func()]

// DefaultTestBudget is how long reading one job's log folder may take.
const DefaultTestBudget = time.Minute

// judgeEvent judges a completed job by the spec its event carries (never by a file in
// the job's folder, which the job can write) from its log folder, which must be
// out/slurm_logs/<test>/<run> and no symbolic link. It returns the folder it read ("" if
// none). Reading the folder takes at most budget: a test over it fails with that
// reason; an end of ctx first is an error.
func judgeEvent(ctx context.Context, out string, ev *events.JobCompleted, maxFailed int, budget time.Duration) (*events.Result, []results.Row, string, error) {
	e := *ev
	e.Reasons = slices.Clone(ev.Reasons)
	spec := e.Spec
	if spec == nil {
		spec = &events.JobSpec{TestID: e.TestID}
		if e.State != events.StateInvalid && e.State != events.StateSubmitFailed {
			e.Reasons = append(e.Reasons, "the completed event carries no test spec")
		}
	}
	if e.LogDir != "" {
		if why := checkLogDir(out, &e); why != "" {
			e.Reasons = append(e.Reasons, why)
			e.LogDir = ""
		}
	}
	type judged struct {
		res  *events.Result
		rows []results.Row
	}
	done := make(chan judged, 1)
	go func() {
		res, rows := Judge(&e, spec, maxFailed)
		done <- judged{res, rows}
	}()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case j := <-done:
		return j.res, j.rows, e.LogDir, nil
	case <-ctx.Done():
		return nil, nil, "", ctx.Err()
	case <-timer.C:
		// The reader goes on in the background, within its size caps.
		e.Reasons = append(e.Reasons, fmt.Sprintf("reading the log folder %s took longer than %s", e.LogDir, budget))
		dir := e.LogDir
		e.LogDir = ""
		res, rows := Judge(&e, spec, maxFailed)
		res.LogDir = dir
		return res, rows, dir, nil
	}
}

// checkLogDir says why a completed job's log folder is not read, or "": it must be a
// folder under out/slurm_logs (the run's own, or in debug mode an earlier job's), and
// neither it nor its parent a symbolic link.
func checkLogDir(out string, ev *events.JobCompleted) string {
	logs := filepath.Join(out, "slurm_logs")
	if !events.Within(logs, ev.LogDir) || ev.LogDir == logs {
		return fmt.Sprintf("log folder %q is not under %s: not read", ev.LogDir, logs)
	}
	for dir := ev.LogDir; dir != logs; dir = filepath.Dir(dir) {
		if st, err := os.Lstat(dir); err == nil && st.Mode()&os.ModeSymlink != 0 {
			return fmt.Sprintf("log folder %s is reached through a symbolic link: not read", ev.LogDir)
		}
	}
	return ""
}

// claim creates the result's claim, or reads the one an earlier delivery left.
func (c *Collector) claim(ctx context.Context, it *item) (claim, uint64, error) {
	key := events.Key(it.ev.RunID, it.ev.TestID)
	// Most completions are new: claim first, and read the claim only when one exists.
	var cl claim
	var err error
	if cl.CSV, err = c.csv.Prepare(it.payload); err != nil {
		return cl, 0, err
	}
	cl.Rows = len(it.rows)
	cl, rev, err := c.ledger.ClaimResult(ctx, it.ev.RunID, it.ev.TestID, cl)
	if err != nil {
		return cl, 0, fmt.Errorf("result claim %s: %w", key, err)
	}
	return cl, rev, nil
}

// appendCSV appends the burst's CSV rows, in order and with one write, except those its
// claims show are in the file already, and decides which tests' Parquet rows go to their
// run's part file: not those that an earlier part that was written holds.
func (c *Collector) appendCSV(held []*item, parts map[string]*part) {
	var batch []results.CSVAppend
	var appending []*item
	for _, it := range held {
		it.add = false
		if it.err != nil || len(it.rows) == 0 {
			continue
		}
		part := parts[it.ev.RunID].name
		if !it.cl.Done {
			batch = append(batch, results.CSVAppend{Payload: it.payload, Claim: it.cl.CSV})
			appending = append(appending, it)
			continue
		}
		if it.cl.Parquet == part {
			continue // in the part being gathered now
		}
		if _, err := os.Stat(filepath.Join(results.PartitionDir(c.ParquetRoot(), it.ev.RunID), it.cl.Parquet)); err != nil {
			// Done before, but its part was never written (a crash before the flush).
			it.cl.Parquet, it.add = part, true
		}
	}
	err := c.csv.AppendOnce(batch)
	for k, it := range appending {
		switch {
		case err != nil:
			it.err = fmt.Errorf("append CSV: %w", err)
		case batch[k].Err != nil:
			it.err = fmt.Errorf("append CSV: %w", batch[k].Err)
		default:
			it.cl.CSV = batch[k].Done
			it.cl.Parquet, it.add = parts[it.ev.RunID].name, true
		}
	}
}

// finish records the claim done and publishes the result, each exactly once.
func (c *Collector) finish(ctx context.Context, it *item) error {
	key := events.Key(it.ev.RunID, it.ev.TestID)
	if !it.cl.Done || it.add {
		it.cl.Done, it.cl.Passed = true, it.res.Passed
		rev, err := c.ledger.UpdateResultClaim(ctx, it.ev.RunID, it.ev.TestID, it.cl, it.rev)
		if err != nil {
			return fmt.Errorf("update result claim %s: %w", key, err)
		}
		it.rev = rev
	}
	if err := c.cfg.Bus.Publish(ctx, events.ResultSubject(it.ev.RunID, it.ev.TestID), events.ResultID(it.ev.RunID, it.ev.TestID), it.res); err != nil {
		return err
	}
	c.recordDuration(ctx, it.res)
	return nil
}

// recordDuration adds a job that ran to its end to its test's duration history, which
// the planner orders later runs by. A redelivered result may add its duration twice;
// the history is a hint, so that is harmless, and a failure to record is only logged.
func (c *Collector) recordDuration(ctx context.Context, res *events.Result) {
	if !res.RanToEnd() || res.Duration <= 0 || res.GPUType == "" {
		return
	}
	if err := c.ledger.MutateHistory(ctx, res.TestID, res.GPUType, func(h *events.DurationHistory) error {
		h.Add(res.Duration)
		return nil
	}); err != nil {
		c.log.Warn("record duration", "test", res.TestID, "err", err)
	}
}

// runEnd looks for the run's end: every test has a result when the run has as many
// result subjects as tests. The count is one request, so a run costs one look per burst
// rather than a counter update per test, and a result published twice (a redelivery)
// is not counted twice. At the end the verdicts are read back, the run's finish is
// published (its id makes that once) and recorded.
func (c *Collector) runEnd(ctx context.Context, run string) error {
	rec, err := c.ledger.Run(ctx, run)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("read run %s: %w", run, err)
	}
	if rec.Finished || rec.Tests == 0 {
		return nil
	}
	n, err := c.cfg.Bus.LastPerSubject(ctx, events.RunResultsFilter(run), nil)
	if err != nil {
		return err
	}
	if n < rec.Tests {
		if n > rec.Done {
			_, err = c.ledger.MutateRun(ctx, run, func(r *events.RunRecord) error {
				r.Done = max(r.Done, n)
				return nil
			})
		}
		return err
	}
	var passed, failed int
	if _, err := c.cfg.Bus.LastPerSubject(ctx, events.RunResultsFilter(run), func(m bus.Message) error {
		var v struct {
			Passed bool `json:"passed"`
		}
		if err := json.Unmarshal(m.Data, &v); err != nil {
			return fmt.Errorf("%s: %w", m.Subject, err)
		}
		if v.Passed {
			passed++
		} else {
			failed++
		}
		return nil
	}); err != nil {
		return err
	}
	rec.RunID, rec.Done, rec.Passed, rec.Failed = run, passed+failed, passed, failed
	if err := PublishFinished(ctx, c.cfg.Bus, rec); err != nil {
		return err
	}
	_, err = c.ledger.MutateRun(ctx, run, func(r *events.RunRecord) error {
		r.RunID, r.Done, r.Passed, r.Failed, r.Finished = run, rec.Done, passed, failed, true
		return nil
	})
	return err
}

// PublishFinished announces that every test of a run has its result.
func PublishFinished(ctx context.Context, b *bus.Bus, rec events.RunRecord) error {
	ev := events.RunFinished{Header: events.NewHeader(rec.RunID), Tests: rec.Tests, Passed: rec.Passed, Failed: rec.Failed}
	return b.Publish(ctx, events.RunFinishedSubject(rec.RunID), events.FinishedID(rec.RunID), ev)
}

// markFailed writes FAILED.txt into the job's folder: never through a symbolic link, and
// never into a FIFO or a device the job put there under that name.
func markFailed(dir string, res *events.Result) error {
	text := fmt.Sprintf("test %s FAILED (run %s, job %s, state %s)\n", res.TestID, res.RunID, res.JobID, res.State)
	for _, r := range res.Reasons {
		text += "- " + r + "\n"
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.OpenFile(FailedMarker, os.O_WRONLY|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", filepath.Join(dir, FailedMarker))
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return err
}

// Judge turns a completed job into its verdict and rows; it only reads the log folder.
func Judge(ev *events.JobCompleted, spec *events.JobSpec, maxFailed int) (*events.Result, []results.Row) {
	res := &events.Result{
		Header: events.NewHeader(ev.RunID), TestID: ev.TestID, JobID: ev.JobID, State: ev.State,
		Start: ev.Start, End: ev.End, LogDir: ev.LogDir, GPUType: spec.GPUType, Attempt: ev.Attempt,
	}
	if !ev.Start.IsZero() && !ev.End.IsZero() {
		res.Duration = ev.End.Sub(ev.Start).Seconds()
	}
	res.Reasons = append(res.Reasons, ev.Reasons...)
	if ev.State == events.StateInvalid || ev.State == events.StateSubmitFailed {
		if len(res.Reasons) == 0 {
			res.Reasons = []string{strings.ToLower(ev.State)}
		}
		return res, []results.Row{verdictRow(ev, spec, res, ev.State)}
	}
	if ev.LogDir == "" {
		// No folder to read (refused, or over its time budget): the reasons say why.
		if len(res.Reasons) == 0 {
			res.Reasons = []string{"no log folder"}
		}
		return res, nil
	}
	in := metrics.Input{
		TestType: spec.TestType, Category: spec.Category, Concurrencies: spec.Concurrencies,
		NumGenServers: spec.NumGenServers, MaxFailedRequests: maxFailed, JobState: ev.State,
		Custom: spec.Metrics,
	}
	for _, d := range spec.Datasets {
		in.Datasets = append(in.Datasets, metrics.ResolveDataset(d))
	}
	m := metrics.Judge(ev.LogDir, in)
	res.Partial = m.Partial
	res.Reasons = append(res.Reasons, m.Reasons...)
	state := ev.FinalState()
	if !ev.RanToEnd() {
		res.Reasons = jobEndReason(res.Reasons, ev)
	}
	res.Passed = m.Valid && ev.RanToEnd()
	verdict := "fail"
	if res.Passed {
		verdict = "pass"
	}
	base := results.Row{
		RunID: ev.RunID, TestID: ev.TestID, TestType: spec.TestType, Category: spec.Category,
		Model: spec.Model, Precision: spec.Precision, GPUType: spec.GPUType, Verdict: verdict,
		Reasons: strings.Join(res.Reasons, "; "), JobID: ev.JobID, Attempt: int32(ev.Attempt), SlurmState: state,
		ExitCode: int64(ev.ExitCode), NodeList: ev.NodeList, Start: ev.Start, End: ev.End,
		CtxGPUs: int64(spec.CtxGPUs), GenGPUs: int64(spec.GenGPUs), ConfigHash: spec.ConfigHash,
		ContainerImage: spec.Image, Partial: m.Partial,
	}
	rows := valueRows(res, &m, spec, base)
	if len(spec.References) > 0 && m.Valid {
		applyReferences(res, rows, spec)
	}
	if len(rows) == 0 {
		// No value at all: the test still leaves its record.
		r := verdictRow(ev, spec, res, state)
		r.Partial = m.Partial
		rows = append(rows, r)
	}
	return res, rows
}

// applyReferences holds the rows to the test's references (rows and res.Rows are
// parallel): a regression fails the test with a reason naming the metric, concurrency,
// value and bound; an improvement is flagged; every covered row records its verdict and
// bound. A reference that no value of the test meets is a regression too (the test
// stopped printing the metric), unless it is for another GPU type.
func applyReferences(res *events.Result, rows []results.Row, spec *events.JobSpec) {
	for _, ref := range spec.References {
		if ref.GPU != "" && !strings.EqualFold(ref.GPU, spec.GPUType) {
			continue
		}
		isDerived := slices.Contains(refs.Derived, ref.Metric)
		seen := map[int64]bool{}
		matched := false
		for i := range rows {
			r := &rows[i]
			value := r.Value
			if isDerived {
				v, ok := r.MetricValue(ref.Metric)
				if !ok || seen[r.Concurrency] || !ref.Applies(ref.Metric, int(r.Concurrency), spec.GPUType) {
					continue
				}
				seen[r.Concurrency] = true
				value = v
				r.RefMetric, res.Rows[i].RefMetric = ref.Metric, ref.Metric
			} else if !ref.Applies(r.Metric, int(r.Concurrency), spec.GPUType) {
				continue
			}
			matched = true
			o := refs.Check(ref, ref.Metric, int(r.Concurrency), value)
			r.RefVerdict = refs.Worst(r.RefVerdict, o.Verdict)
			res.Rows[i].RefVerdict = r.RefVerdict
			if o.Verdict == refs.Regression || o.Verdict == refs.Improvement || o.Bound != 0 {
				r.RefBound, res.Rows[i].RefBound = results.Float(o.Bound), results.Float(o.Bound)
			}
			res.RefVerdict = refs.Worst(res.RefVerdict, o.Verdict)
			switch o.Verdict {
			case refs.Regression:
				res.Passed = false
				res.Reasons = append(res.Reasons, "regression: "+o.Message)
			case refs.Improvement:
				res.Improvements = append(res.Improvements, o.Message)
			}
		}
		if !matched {
			where := ref.Metric
			if ref.Concurrency > 0 {
				where = fmt.Sprintf("%s at concurrency %d", ref.Metric, ref.Concurrency)
			}
			res.Passed = false
			res.RefVerdict = refs.Regression
			res.Reasons = append(res.Reasons, "regression: "+where+": the test reported no value for its reference")
		}
	}
	if res.Passed {
		return
	}
	for i := range rows {
		rows[i].Verdict, rows[i].Reasons = "fail", strings.Join(res.Reasons, "; ")
	}
}

// verdictRow is the one row of a test that has no value (invalid, not submitted,
// cancelled, or failed before it measured anything): its verdict, reasons and state,
// with no metric and a NaN value. It goes to the Parquet dataset only; the CSV has
// measured values only, as the seed's has.
func verdictRow(ev *events.JobCompleted, spec *events.JobSpec, res *events.Result, state string) results.Row {
	verdict := "fail"
	if res.Passed {
		verdict = "pass"
	}
	return results.Row{
		RunID: ev.RunID, TestID: ev.TestID, TestType: spec.TestType, Category: spec.Category,
		Model: spec.Model, Precision: spec.Precision, GPUType: spec.GPUType, Verdict: verdict,
		Reasons: strings.Join(res.Reasons, "; "), JobID: ev.JobID, Attempt: int32(ev.Attempt), SlurmState: state,
		ExitCode: int64(ev.ExitCode), NodeList: ev.NodeList, Start: ev.Start, End: ev.End,
		CtxGPUs: int64(spec.CtxGPUs), GenGPUs: int64(spec.GenGPUs), ConfigHash: spec.ConfigHash,
		ContainerImage: spec.Image, Value: math.NaN(),
	}
}

// printedConcurrencies lists, in order, the concurrencies (as the log prints them) of the
// configured concurrencies whose last result block is complete.
func printedConcurrencies(blocks []metrics.Block) []int {
	var out []int
	for i := range blocks {
		b := &blocks[i]
		if b.Warmup || b.Concurrency == 0 || slices.Contains(out, b.LogConcurrency) {
			continue
		}
		if last := blockFor(blocks, b.LogConcurrency); last != nil && last.Complete() {
			out = append(out, b.LogConcurrency)
		}
	}
	return out
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

// jobEndReason puts the job's end in the scheduler's words, with its exit code, in
// place of the parser's shorter note on the state (or after the reasons).
func jobEndReason(reasons []string, ev *events.JobCompleted) []string {
	why := fmt.Sprintf("job %s ended %s (exit code %d)", ev.JobID, cmp.Or(ev.Detail, ev.State), ev.ExitCode)
	for i, r := range reasons {
		if strings.HasPrefix(r, "job ended in state") {
			reasons[i] = why
			return reasons
		}
	}
	return append(reasons, why)
}

// valueRows makes a row (and a result row) of every value: the judged ones, everything
// else the client printed for each finished concurrency, the workers' iteration
// statistics, and the accuracy scores.
func valueRows(res *events.Result, m *metrics.Result, spec *events.JobSpec, base results.Row) []results.Row {
	var rows []results.Row
	gpus := spec.CtxGPUs + spec.GenGPUs
	perRow := func(r *results.Row, b *metrics.Block) {
		if b == nil {
			return
		}
		if v, ok := b.Get(metrics.OutputThroughput); ok && gpus > 0 {
			r.OutputTokSPerGPU = results.Float(v / float64(gpus))
		}
		if v, ok := b.Get(metrics.TotalThroughput); ok && gpus > 0 {
			r.TotalTokSPerGPU = results.Float(v / float64(gpus))
		}
		in, okIn := b.Get(metrics.InputTokens)
		d, okD := b.Get(metrics.Duration)
		if okIn && okD && d > 0 && gpus > 0 {
			r.InputTokSPerGPU = results.Float(in / d / float64(gpus))
		}
		if v, ok := b.Get(metrics.UserThroughput); ok {
			r.TokSPerUser = results.Float(v)
		}
	}
	judged := map[int]map[string]bool{}
	for _, p := range m.Perf {
		// Rows carry the concurrency as the client printed it (the configured value times
		// the gen servers), as the seed's CSV names do.
		c := p.Concurrency * max(spec.NumGenServers, 1)
		r := base
		r.Concurrency, r.Metric, r.Value, r.Unit, r.Passed, r.Judged = int64(c), p.Metric, p.Value, p.Unit, m.Valid, true
		perRow(&r, blockFor(m.Blocks, c))
		rows = append(rows, r)
		res.Rows = append(res.Rows, events.ResultRow{Concurrency: c, Metric: p.Metric, Value: p.Value, Unit: p.Unit, Judged: true})
		if judged[c] == nil {
			judged[c] = map[string]bool{}
		}
		judged[c][p.Metric] = true
	}
	// Everything else the client printed for each configured concurrency that finished.
	for _, c := range printedConcurrencies(m.Blocks) {
		b := blockFor(m.Blocks, c)
		for f := range metrics.NumFields {
			v, ok := b.Get(f)
			name := f.Metric()
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) || judged[c][name] {
				continue
			}
			r := base
			r.Concurrency, r.Metric, r.Value, r.Unit, r.Passed = int64(c), name, v, f.Unit(), m.Valid
			perRow(&r, b)
			rows = append(rows, r)
			res.Rows = append(res.Rows, events.ResultRow{Concurrency: c, Metric: name, Value: v, Unit: f.Unit()})
		}
	}
	// The workers' iteration statistics per point (gen_only and ctx_only slices).
	for _, it := range m.Iterations {
		c := it.Concurrency * max(spec.NumGenServers, 1)
		r := base
		r.Concurrency, r.Metric, r.Value, r.Unit, r.Passed = int64(c), it.Metric, it.Value, it.Unit, m.Valid
		rows = append(rows, r)
		res.Rows = append(res.Rows, events.ResultRow{Concurrency: c, Metric: it.Metric, Value: it.Value, Unit: it.Unit})
	}
	for _, a := range m.Accuracy {
		r := base
		var th *float64
		if !math.IsNaN(a.Threshold) {
			th = results.Float(a.Threshold)
		}
		metric := cmp.Or(a.Metric, "exact_match")
		r.Metric, r.Value, r.Dataset, r.Filter, r.Threshold, r.Passed, r.Unit, r.Judged = metric, a.Value, a.Dataset, a.Filter, th, a.Passed, "fraction", true
		rows = append(rows, r)
		passed := a.Passed
		res.Rows = append(res.Rows, events.ResultRow{Metric: metric, Value: a.Value, Unit: "fraction", Dataset: a.Dataset, Filter: a.Filter, Threshold: th, Passed: &passed, Judged: true})
	}
	return rows
}
