// Package plan prepares a run: it selects, resolves, validates and renders the run's
// tests, resolves their references, and publishes the run and its batches. Following a
// run to its end is package progress.
package plan

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
	"github.com/disaggbench/disaggbench/pkg/ledger"
)

// DefaultBatchSize is the seed's default window.
const DefaultBatchSize = 5

// maxBatchBytes keeps each batch message well under NATS's default 1 MiB payload limit.
const maxBatchBytes = 512 << 10

// Options of a run.
type Options struct {
	Selection  config.Selection
	BatchSize  int // < 0: DISAGG_BATCH_SIZE, else 5; 0: no limit
	Policy     string
	Scheduler  string
	OutputPath string
	RunID      string // empty: a new id
	// Order of submission: OrderFile, OrderLPT, or empty for LPT when any selected test
	// has a duration history and file order otherwise.
	Order string
	// QueueAhead: with a sliding window full, one more job is submitted held on the
	// window's jobs (events.BatchOf.QueueAhead).
	QueueAhead bool
}

// Submission orders.
const (
	OrderFile = "file" // the selection's order: test ids sorted
	OrderLPT  = "lpt"  // longest expected duration first
)

// Plan is a run ready to publish.
type Plan struct {
	RunID     string
	Started   events.RunStarted
	Specs     []events.JobSpec
	Invalid   []events.JobCompleted
	Selected  *config.Selected
	BatchSize int
	Policy    string
	// Order is the submission order asked for; Publish settles "" to file or lpt and
	// counts the tests whose history it found in Known.
	Order      string
	Known      int
	QueueAhead bool
}

// NewRunID is sortable by time and unique enough: 20261127-014512-3fa9c2.
func NewRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// BatchSize resolves the window: flag > DISAGG_BATCH_SIZE > 5.
func BatchSize(flag int, env config.Env) (int, error) {
	if flag >= 0 {
		return flag, nil
	}
	if v := env["DISAGG_BATCH_SIZE"]; v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("DISAGG_BATCH_SIZE=%q: want a whole number >= 0", v)
		}
		return n, nil
	}
	return DefaultBatchSize, nil
}

// Prepare selects and renders a run's tests. Invalid tests become INVALID completions,
// never silent drops.
func Prepare(opts Options, env config.Env) (*Plan, error) {
	policy := cmp.Or(opts.Policy, events.PolicySliding)
	if policy != events.PolicySliding && policy != events.PolicyBarrier {
		return nil, fmt.Errorf("--policy %q: want sliding or barrier", opts.Policy)
	}
	size, err := BatchSize(opts.BatchSize, env)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(cmp.Or(opts.OutputPath, env["OUTPUT_PATH"], "output"))
	if err != nil {
		return nil, err
	}
	sel, err := config.Select(opts.Selection, env)
	if err != nil {
		return nil, err
	}
	run := cmp.Or(opts.RunID, NewRunID())
	gpu := cmp.Or(sel.GPUType, config.DefaultGPUType)
	if opts.Order != "" && opts.Order != OrderFile && opts.Order != OrderLPT {
		return nil, fmt.Errorf("--order %q: want file or lpt", opts.Order)
	}
	p := &Plan{RunID: run, Selected: sel, BatchSize: size, Policy: policy, Order: opts.Order, QueueAhead: opts.QueueAhead}
	var tools string
	var toolsErr error
	toolsDone := false
	hist := &history{root: filepath.Join(out, "results")}
	for _, t := range sel.Tests {
		if jobscript.NeedsTools(t) && !toolsDone {
			// Installed once a run, only when a test runs the stand-ins.
			tools, toolsErr = jobscript.InstallTools(filepath.Join(out, "bin"))
			toolsDone = true
		}
		if jobscript.NeedsTools(t) && toolsErr != nil {
			p.Invalid = append(p.Invalid, invalid(run, t, []string{toolsErr.Error()}))
			continue
		}
		spec, err := Spec(t, run, out, gpu, env, tools)
		if err != nil {
			p.Invalid = append(p.Invalid, invalid(run, t, []string{err.Error()}))
			continue
		}
		if len(t.Config.References) > 0 {
			if spec.References, err = resolveReferences(t.Config.References, spec, hist); err != nil {
				return nil, err
			}
		}
		spec.Index = len(p.Specs)
		p.Specs = append(p.Specs, *spec)
	}
	for _, inv := range sel.Invalid {
		var reasons []string
		for _, pr := range inv.Problems {
			if !pr.Warning {
				reasons = append(reasons, pr.String())
			}
		}
		p.Invalid = append(p.Invalid, invalid(run, inv.Test, reasons))
	}
	host, _ := os.Hostname()
	p.Started = events.RunStarted{
		Header: events.NewHeader(run), Tests: len(p.Specs) + len(p.Invalid), Invalid: len(p.Invalid),
		BatchSize: size, Policy: policy, Scheduler: opts.Scheduler, GPUType: gpu, Output: out,
		Batches: len(chunk(p.Specs, size)), Host: host, Debug: debugOn(env),
		Selection: describe(opts.Selection),
	}
	for _, s := range sel.Skipped {
		p.Started.Skipped = append(p.Started.Skipped, events.Skip{TestID: s.ID, Reason: s.Reason})
	}
	for _, s := range p.Specs {
		p.Started.TestIDs = append(p.Started.TestIDs, s.TestID)
	}
	for _, inv := range p.Invalid {
		p.Started.TestIDs = append(p.Started.TestIDs, inv.TestID)
	}
	return p, nil
}

func describe(s config.Selection) string {
	var parts []string
	for _, kv := range [][2]string{{"config-dir", s.ConfigDir}, {"test-list", s.TestList}, {"-k", s.K}, {"-m", s.Marker}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, " ")
}

func invalid(run string, t *config.Test, reasons []string) events.JobCompleted {
	spec := &events.JobSpec{TestID: t.ID, TestType: t.Type, Category: t.Category, ConfigPath: t.Path,
		Model: t.Config.Metadata.ModelName, Precision: t.Config.Metadata.Precision}
	return events.JobCompleted{Header: events.NewHeader(run), TestID: t.ID, Index: -1,
		State: events.StateInvalid, Reasons: reasons, Spec: spec, End: time.Now().UTC()}
}

// LogDir is where a test's files go: OUTPUT_PATH/slurm_logs/<test>/<run>, so an earlier
// run's folder is never touched.
func LogDir(out, test, run string) string {
	return filepath.Join(out, "slurm_logs", test, run)
}

// JobName carries the run and test id, so a restarted submitter finds the job by name.
func JobName(base, run, test string) string {
	return cmp.Or(base, "disaggbench") + "." + run + "." + test
}

// Spec resolves and renders one test into the job the submitter will run; tools is
// the stand-ins' binary (jobscript.InstallTools), needed when jobscript.NeedsTools.
func Spec(t *config.Test, run, out, gpu string, env config.Env, tools string) (*events.JobSpec, error) {
	c := &t.Config
	logDir := LogDir(out, t.ID, run)
	job, err := jobscript.Render(t, jobscript.Options{
		RunID: run, LogDir: logDir, GPUType: gpu,
		JobName: JobName(c.Slurm.JobName, run, t.ID),
		Comment: events.JobComment(run, t.ID),
		Tools:   tools,
	})
	if err != nil {
		return nil, err
	}
	spec := &events.JobSpec{
		TestID: t.ID, TestType: t.Type, Category: t.Category, ConfigPath: t.Path, ConfigHash: t.Hash(),
		Model: c.Metadata.ModelName, Precision: c.Metadata.Precision, GPUType: gpu,
		CtxGPUs: c.CtxGPUs(), GenGPUs: c.GenGPUs(), NumGenServers: c.Hardware.NumGenServers,
		NumCtxServers: c.Hardware.NumCtxServers, ISL: c.Benchmark.InputLength, OSL: c.Benchmark.OutputLength,
		Backend: backend(c),
		Image:   c.Environment.ContainerImage, Concurrencies: c.Benchmark.ConcurrencyList,
		LogDir: logDir, Request: job.Request,
		// As written: the judge fills what they leave out, as for `collector parse`.
		Metrics: c.CustomMetrics(),
	}
	if a := c.Metadata.Accuracy; a != nil {
		spec.Datasets = slices.Clone(a.Datasets)
	}
	for _, f := range job.Files {
		spec.Files = append(spec.Files, events.File{Name: f.Name, Data: f.Data, Mode: uint32(f.Mode)})
	}
	return spec, nil
}

// backend is the KV cache transceiver backend (UCX, NIXL, ...), the gen workers' or else
// the ctx workers'.
func backend(c *config.Config) string {
	for _, w := range []*config.Worker{&c.WorkerConfig.Gen, &c.WorkerConfig.Ctx} {
		if t := w.CacheTransceiverConfig; t != nil && t.Backend != "" {
			return strings.ToUpper(t.Backend)
		}
	}
	return ""
}

// chunk splits the run's jobs into batch messages: the run's batch size (or one batch
// with no limit), further split so that no message grows past maxBatchBytes.
func chunk(specs []events.JobSpec, size int) [][]json.RawMessage {
	var out [][]json.RawMessage
	var cur []json.RawMessage
	bytes := 0
	for i, s := range specs {
		data, _ := json.Marshal(s)
		n := len(data)
		boundary := size > 0 && i%size == 0
		if len(cur) > 0 && (boundary || bytes+n > maxBatchBytes) {
			out = append(out, cur)
			cur, bytes = nil, 0
		}
		cur = append(cur, data)
		bytes += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Publish records the run and publishes its start, its batches and its invalid tests.
func (p *Plan) Publish(ctx context.Context, b *bus.Bus) error {
	rec := events.RunRecord{RunID: p.RunID, Started: p.Started.Time, Tests: p.Started.Tests, BatchSize: p.BatchSize, Policy: p.Policy}
	if _, err := ledger.New(b).MutateRun(ctx, p.RunID, func(r *events.RunRecord) error {
		done, passed, failed := r.Done, r.Passed, r.Failed
		*r = rec
		r.Done, r.Passed, r.Failed = done, passed, failed
		return nil
	}); err != nil {
		return fmt.Errorf("record run: %w", err)
	}
	if err := b.Publish(ctx, events.RunStartedSubject(p.RunID), events.StartedID(p.RunID), p.Started); err != nil {
		return err
	}
	if err := p.order(ctx, b); err != nil {
		return err
	}
	chunks := chunk(p.Specs, p.BatchSize)
	for k, jobs := range chunks {
		// The jobs as chunk encoded them: each is encoded once.
		ev := events.BatchOf[json.RawMessage]{Header: events.NewHeader(p.RunID), Index: k, Total: len(chunks),
			BatchSize: p.BatchSize, Policy: p.Policy, Tests: len(p.Specs), Jobs: jobs, QueueAhead: p.QueueAhead}
		if err := b.Publish(ctx, events.BatchSubject(p.RunID, k), events.BatchID(p.RunID, k), ev); err != nil {
			return err
		}
	}
	for i := range p.Invalid {
		inv := &p.Invalid[i]
		if err := b.Publish(ctx, events.JobSubject(p.RunID, inv.TestID, events.KindCompleted), events.CompletedID(p.RunID, inv.TestID), inv); err != nil {
			return err
		}
	}
	if p.Started.Tests == 0 {
		return errors.New("no test selected")
	}
	return nil
}

// order settles the submission order. For lpt it reads the tests' duration histories
// (one pass over the history bucket) and sorts the jobs longest expected first, which
// keeps a window's slots busy to the end instead of leaving one long job for last: a
// test without history is expected to take the median of those with one, or its time
// limit when none has.
func (p *Plan) order(ctx context.Context, b *bus.Bus) error {
	if p.Order == OrderFile || len(p.Specs) < 2 {
		p.Order = cmp.Or(p.Order, OrderFile)
		return nil
	}
	hist, err := ledger.New(b).AllHistory(ctx)
	if err != nil {
		return fmt.Errorf("read duration history: %w", err)
	}
	expected := make(map[string]float64, len(p.Specs))
	var known []float64
	for _, s := range p.Specs {
		if h, ok := hist[events.HistoryKey(s.TestID, s.GPUType)]; ok && len(h.Seconds) > 0 {
			expected[s.TestID] = h.Median()
			known = append(known, h.Median())
		}
	}
	p.Known = len(known)
	if p.Known == 0 && p.Order == "" {
		p.Order = OrderFile
		return nil
	}
	p.Order = OrderLPT
	fallback := events.DurationHistory{Seconds: known}.Median()
	for _, s := range p.Specs {
		if _, ok := expected[s.TestID]; !ok {
			expected[s.TestID] = cmp.Or(fallback, s.TimeLimit.Seconds())
		}
	}
	slices.SortStableFunc(p.Specs, func(x, y events.JobSpec) int {
		return cmp.Compare(expected[y.TestID], expected[x.TestID])
	})
	for i := range p.Specs {
		p.Specs[i].Index = i
	}
	return nil
}

func debugOn(env config.Env) bool {
	on, _ := config.DebugMode(nil, env)
	return on
}
