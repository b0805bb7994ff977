// Package events is the only contract between the pipeline's stages: the event types, the
// subjects they travel on, and the message ids that make every publish idempotent.
//
// Every subject lives under "bench.":
//
//	bench.runs.<run>.started            RunStarted
//	bench.runs.<run>.finished           RunFinished
//	bench.batches.<run>.<k>             Batch
//	bench.jobs.<run>.<test>.submitted   JobSubmitted
//	bench.jobs.<run>.<test>.state       JobState
//	bench.jobs.<run>.<test>.completed   JobCompleted
//	bench.results.<run>.<test>          Result
//
// Test ids become subject tokens through Token, which keeps [A-Za-z0-9_-] and escapes
// everything else, so "llama-3.1-8b" stays one token.
package events

import (
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/refs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/scheduler"
	"github.com/disaggbench/disaggbench/pkg/testspec"
)

// Version is the schema version carried by every event as "v".
const Version = 1

// Stream is the JetStream stream that holds every event.
const Stream = "BENCH"

// Subjects is the stream's subject filter.
const Subjects = "bench.>"

// Token makes s safe as one NATS subject token and one KV key token: letters, digits,
// '_' and '-' stay; every other byte becomes "=XX" (hex). The mapping is one to one.
func Token(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "=%02X", c)
		}
	}
	if b.Len() == 0 {
		return "=00"
	}
	return b.String()
}

// Untoken reverses Token.
func Untoken(t string) string {
	if t == "=00" {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] == '=' && i+2 < len(t) {
			var c byte
			if _, err := fmt.Sscanf(t[i+1:i+3], "%02X", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(t[i])
	}
	return b.String()
}

// Subject builders.
func RunStartedSubject(run string) string  { return "bench.runs." + Token(run) + ".started" }
func RunFinishedSubject(run string) string { return "bench.runs." + Token(run) + ".finished" }
func BatchSubject(run string, k int) string {
	return fmt.Sprintf("bench.batches.%s.%d", Token(run), k)
}
func JobSubject(run, test, what string) string {
	return "bench.jobs." + Token(run) + "." + Token(test) + "." + what
}
func ResultSubject(run, test string) string {
	return "bench.results." + Token(run) + "." + Token(test)
}

// RunFilter matches every event of one run.
func RunFilter(run string) string { return "bench.*." + Token(run) + ".>" }

// RunResultsFilter matches the results of one run's tests.
func RunResultsFilter(run string) string { return "bench.results." + Token(run) + ".*" }

// RunJobsFilter matches one kind of job event of one run's tests.
func RunJobsFilter(run, kind string) string { return "bench.jobs." + Token(run) + ".*." + kind }

// JobKindFilter matches one kind of job event of every run.
func JobKindFilter(kind string) string { return "bench.jobs.*.*." + kind }

// Patterns over every run, for the per-role permissions on a shared server: each matches
// what the builder or filter it names gives for any run.
const (
	EveryEventFilter      = "bench.>"               // every subject of the stream
	AnyRunFilter          = "bench.*.*.>"           // RunFilter
	AnyRunResultsFilter   = "bench.results.*.*"     // RunResultsFilter, ResultSubject
	AnyRunResultsPrefix   = "bench.results.*.>"     // a run's results, written as a prefix
	AnyRunStartedSubject  = "bench.runs.*.started"  // RunStartedSubject
	AnyRunFinishedSubject = "bench.runs.*.finished" // RunFinishedSubject
)

// Filters for the stages' durable consumers.
const (
	BatchFilter     = "bench.batches.>"
	SubmittedFilter = "bench.jobs.*.*.submitted"
	CompletedFilter = "bench.jobs.*.*.completed"
	ResultFilter    = "bench.results.>"
)

// Job event kinds (the last subject token of bench.jobs.*).
const (
	KindSubmitted = "submitted"
	KindState     = "state"
	KindCompleted = "completed"
	KindProblem   = "problem"
)

// Key is the KV key of one test of one run: "<run>.<test>", both tokenised.
func Key(run, test string) string { return Token(run) + "." + Token(test) }

// HistoryKey is the key of a test's duration history on a GPU type (KV bucket
// bench_history).
func HistoryKey(test, gpuType string) string { return Token(test) + "." + Token(gpuType) }

// HistoryLength is how many of a test's latest durations its history keeps.
const HistoryLength = 5

// DurationHistory is a test's latest run times on one GPU type, oldest first, in
// seconds: what the planner orders a run's jobs by (longest expected first).
type DurationHistory struct {
	Seconds []float64 `json:"seconds"`
}

// Add appends a duration, keeping the latest HistoryLength.
func (h *DurationHistory) Add(seconds float64) {
	h.Seconds = append(h.Seconds, seconds)
	if n := len(h.Seconds); n > HistoryLength {
		h.Seconds = append(h.Seconds[:0], h.Seconds[n-HistoryLength:]...)
	}
}

// Median of the history; 0 when it is empty.
func (h DurationHistory) Median() float64 {
	if len(h.Seconds) == 0 {
		return 0
	}
	s := slices.Clone(h.Seconds)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// States a job can end in besides SLURM's own.
const (
	// StateQuotaWait: the scheduler refused the submission for a per-user or
	// per-account limit; the submitter tries again as the limit frees up. Not an end.
	StateQuotaWait = "WAITING_FOR_QUOTA"
	// StateRetry: the job ended on a failure of its nodes (NODE_FAIL, BOOT_FAIL) or was
	// preempted, and the watcher submitted the test again, without those nodes. Not an end.
	StateRetry = "RETRYING"
	// StateInvalid: the test's config failed validation; it was never submitted.
	StateInvalid = "INVALID"
	// StateSubmitFailed: the scheduler refused the job for good.
	StateSubmitFailed = "SUBMIT_FAILED"
)

// Policies for admitting a run's jobs.
const (
	PolicySliding = "sliding" // refill a slot as soon as a job ends
	PolicyBarrier = "barrier" // the next batch only after the whole previous one ended
)

// Header carries what every event has.
type Header struct {
	V     int       `json:"v"`
	RunID string    `json:"run_id"`
	Time  time.Time `json:"time"`
}

// NewHeader stamps an event of run now.
func NewHeader(run string) Header { return Header{V: Version, RunID: run, Time: time.Now().UTC()} }

// RunStarted opens a run.
type RunStarted struct {
	Header
	Tests     int      `json:"tests"`   // every test the run will report on (valid and invalid)
	Invalid   int      `json:"invalid"` // of which failed validation
	Skipped   []Skip   `json:"skipped,omitempty"`
	Batches   int      `json:"batches"`
	BatchSize int      `json:"batch_size"` // 0: no limit
	Policy    string   `json:"policy"`
	Scheduler string   `json:"scheduler,omitempty"`
	GPUType   string   `json:"gpu_type"`
	Output    string   `json:"output_path"`
	TestIDs   []string `json:"test_ids,omitempty"`
	Selection string   `json:"selection,omitempty"` // how the tests were chosen, for people
	Host      string   `json:"host,omitempty"`
	Debug     bool     `json:"debug_mode,omitempty"`
}

// Skip is a test left out of a run, with the reason.
type Skip struct {
	TestID string `json:"test_id"`
	Reason string `json:"reason"`
}

// RunFinished closes a run once every test has a result.
type RunFinished struct {
	Header
	Tests  int `json:"tests"`
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// File is one file of a job, relative to its log folder.
type File struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
	Mode uint32 `json:"mode"`
}

// JobSpec is one test of a run, ready to submit: the planner resolved, validated and
// rendered it. Metrics and Datasets are the test's sections as written, in the config's
// own types: the judge fills what they leave out (a metrics field, a dataset parameter)
// from the defaults, the same way for this spec and for `collector parse`.
type JobSpec struct {
	Index         int                        `json:"index"` // position in the run, from 0
	TestID        string                     `json:"test_id"`
	TestType      string                     `json:"test_type"`
	Category      string                     `json:"category"`
	ConfigPath    string                     `json:"config_path"`
	ConfigHash    string                     `json:"config_hash"`
	Model         string                     `json:"model"`
	Precision     string                     `json:"precision"`
	GPUType       string                     `json:"gpu_type"`
	CtxGPUs       int                        `json:"ctx_gpus"`
	GenGPUs       int                        `json:"gen_gpus"`
	NumGenServers int                        `json:"num_gen_servers"`
	NumCtxServers int                        `json:"num_ctx_servers,omitempty"`
	ISL           int                        `json:"isl,omitempty"`     // benchmark.input_length
	OSL           int                        `json:"osl,omitempty"`     // benchmark.output_length
	Backend       string                     `json:"backend,omitempty"` // the KV cache transceiver: UCX, NIXL, ...
	Image         string                     `json:"container_image,omitempty"`
	Concurrencies []int                      `json:"concurrencies,omitempty"`
	Metrics       *testspec.MetricsSpec      `json:"metrics,omitempty"`
	References    []Reference                `json:"references,omitempty"`
	Datasets      []testspec.AccuracyDataset `json:"datasets,omitempty"`
	TimeLimit     time.Duration              `json:"time_limit"` // the watcher cancels after this
	LogDir        string                     `json:"log_dir"`
	Request       scheduler.JobRequest       `json:"request"`
	Files         []File                     `json:"files,omitempty"`
}

// Batch is a slice of a run's jobs, in run order.
type Batch = BatchOf[JobSpec]

// BatchOf is a batch whose jobs are J: JobSpec, or json.RawMessage for jobs encoded once
// by the planner (which measures each job's size to split batches).
type BatchOf[J any] struct {
	Header
	Index     int    `json:"index"`
	Total     int    `json:"total"`
	BatchSize int    `json:"batch_size"` // the run's window; 0: no limit
	Policy    string `json:"policy"`
	Tests     int    `json:"tests"` // jobs in the whole run
	Jobs      []J    `json:"jobs"`
	// QueueAhead (sliding window): with the window full, one more job is submitted held
	// until any of the window's jobs ends (sbatch --dependency=afterany:A?afterany:B), so
	// the scheduler starts it the moment a slot frees instead of after the watcher has
	// seen the end; at most BatchSize jobs run at once all the same. Only for schedulers
	// that hold jobs on others (slurm.Dependent).
	QueueAhead bool `json:"queue_ahead,omitempty"`
}

// JobSubmitted: the scheduler took the job.
type JobSubmitted struct {
	Header
	TestID    string        `json:"test_id"`
	Index     int           `json:"index"`
	JobID     string        `json:"job_id"`
	Scheduler string        `json:"scheduler"`
	LogDir    string        `json:"log_dir"`
	Submitted time.Time     `json:"submitted"`
	TimeLimit time.Duration `json:"time_limit"`
	Debug     bool          `json:"debug_mode,omitempty"`
	JobName   string        `json:"job_name,omitempty"`
	// LedgerRev is the revision of the job's ledger entry as submitted: the watcher
	// records the job's end over it without reading it first.
	LedgerRev uint64 `json:"ledger_rev,omitempty"`
	// Spec is what the collector judges the test by (JobSpec.Judged); the watcher
	// passes it on in the completed event.
	Spec *JobSpec `json:"spec,omitempty"`
	// Attempt counts the test's submissions: 1 for the first (0 in older events means
	// 1); the watcher submits again after a node failure or a preemption.
	Attempt int `json:"attempt,omitempty"`
	// Exclude is the nodes the job was kept off (sbatch --exclude): those of the
	// earlier attempts' failures, as SLURM host lists.
	Exclude []string `json:"exclude,omitempty"`
	// Request is the scheduler request as first submitted (the batch's, without
	// Exclude): what the watcher submits again.
	Request *scheduler.JobRequest `json:"request,omitempty"`
}

// AttemptOf returns an event's attempt number, 1 when it carries none.
func AttemptOf(n int) int { return max(n, 1) }

// JobState: the scheduler reports a new state for the job.
type JobState struct {
	Header
	TestID string `json:"test_id"`
	JobID  string `json:"job_id"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Attempt is the job's attempt number (JobSubmitted.Attempt); 0 when unknown.
	Attempt int `json:"attempt,omitempty"`
}

// Problem: a stage cannot make progress on a test (its results cannot be written, a
// folder is not writable, ...) and keeps trying until GiveUp; then the test fails with
// the reason.
type Problem struct {
	Header
	TestID string    `json:"test_id"`
	Stage  string    `json:"stage"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	// GiveUp is when the test fails unless the stage recovers; zero: it waits.
	GiveUp time.Time `json:"give_up"`
	// Resolved: the stage makes progress on the test again (the watcher says so; the
	// submitter's next event and the result say it for the others).
	Resolved bool `json:"resolved,omitempty"`
}

// ProblemID is one problem event per test, stage and minute of trouble.
func ProblemID(run, test, stage string, n int) string {
	return JobSubject(run, test, KindProblem) + "." + stage + "." + strconv.Itoa(n)
}

// JobCompleted: the job is over, for whatever reason.
type JobCompleted struct {
	Header
	TestID   string    `json:"test_id"`
	Index    int       `json:"index"`
	JobID    string    `json:"job_id,omitempty"`
	State    string    `json:"state"`            // final SLURM state, INVALID or SUBMIT_FAILED
	Detail   string    `json:"detail,omitempty"` // e.g. "CANCELLED by 0"
	ExitCode int       `json:"exit_code"`
	Signal   int       `json:"signal,omitempty"`
	Submit   time.Time `json:"submit,omitzero"`
	Start    time.Time `json:"start,omitzero"`
	End      time.Time `json:"end,omitzero"`
	NodeList string    `json:"node_list,omitempty"`
	LogDir   string    `json:"log_dir,omitempty"`
	Reasons  []string  `json:"reasons,omitempty"` // why it failed before running, or timed out
	// Attempt is the attempt that ended (JobSubmitted.Attempt); 0 when never submitted.
	Attempt int `json:"attempt,omitempty"`
	// Spec is what the collector judges the test by (JobSpec.Judged), as the planner
	// rendered it: never read from the job's folder.
	Spec *JobSpec `json:"spec,omitempty"`
}

// FinalState is the job's final state without what SLURM appends to it ("CANCELLED by
// 1000" is CANCELLED).
func (e *JobCompleted) FinalState() string { return scheduler.BaseState(e.State) }

// RanToEnd reports whether the job ended COMPLETED (exit code 0).
func (e *JobCompleted) RanToEnd() bool { return e.FinalState() == scheduler.Completed }

// ResultRow is one number of a result.
type ResultRow struct {
	Concurrency int      `json:"concurrency,omitempty"`
	Metric      string   `json:"metric"`
	Value       float64  `json:"value"`
	Unit        string   `json:"unit,omitempty"`
	Dataset     string   `json:"dataset,omitempty"`
	Filter      string   `json:"filter,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	Passed      *bool    `json:"passed,omitempty"`
	// Judged marks the rows the verdict rests on (the test's default or custom metrics,
	// every accuracy row); the other perf rows are the rest of what the client printed.
	Judged bool `json:"judged,omitempty"`
	// RefVerdict is the row against the test's references: pass, regression,
	// improvement or "insufficient data"; empty when no reference covers it. RefMetric
	// names the reference's metric when it is a derived one (output_tok_s_per_gpu, ...)
	// read from this row's concurrency, and RefBound is the limit it was held to.
	RefVerdict string   `json:"ref_verdict,omitempty"`
	RefMetric  string   `json:"ref_metric,omitempty"`
	RefBound   *float64 `json:"ref_bound,omitempty"`
}

// Reference is one of a test's references as the planner resolved it (a baseline's
// value read from the results dataset); see pkg/refs.
type Reference = refs.Reference

// Result is the collector's verdict on one test.
type Result struct {
	Header
	TestID   string      `json:"test_id"`
	JobID    string      `json:"job_id,omitempty"`
	State    string      `json:"state"`
	Passed   bool        `json:"passed"`
	Partial  bool        `json:"partial,omitempty"`
	Reasons  []string    `json:"reasons,omitempty"`
	Rows     []ResultRow `json:"rows,omitempty"`
	Start    time.Time   `json:"start,omitzero"`
	End      time.Time   `json:"end,omitzero"`
	Duration float64     `json:"duration_s"`
	Attempt  int         `json:"attempt,omitempty"` // the job's attempt (JobCompleted.Attempt)
	LogDir   string      `json:"log_dir,omitempty"`
	GPUType  string      `json:"gpu_type,omitempty"`
	// RefVerdict is the worst of the rows' reference verdicts; Improvements name the
	// values better than their reference by more than its tolerance.
	RefVerdict   string   `json:"ref_verdict,omitempty"`
	Improvements []string `json:"improvements,omitempty"`
}

// RanToEnd reports whether the test's job ended COMPLETED, whatever its verdict.
func (r *Result) RanToEnd() bool { return scheduler.BaseState(r.State) == scheduler.Completed }

// Verdict is "PASSED" or "FAILED".
func (r *Result) Verdict() string {
	if r.Passed {
		return "PASSED"
	}
	return "FAILED"
}

// Ledger phases of a JobRecord.
const (
	PhaseClaimed   = "claimed"   // a submitter owns the test and is submitting it
	PhaseSubmitted = "submitted" // the scheduler has it
	PhaseCompleted = "completed" // it is over; a completed event was published
)

// JobRecord is the run ledger's entry for one test (KV bucket bench_jobs, key Key(run,
// test)). The submitter creates it before it submits (the claim), the watcher marks it
// completed.
type JobRecord struct {
	RunID     string        `json:"run_id"`
	TestID    string        `json:"test_id"`
	Index     int           `json:"index"`
	Phase     string        `json:"phase"`
	JobID     string        `json:"job_id,omitempty"`
	JobName   string        `json:"job_name,omitempty"`
	State     string        `json:"state,omitempty"`
	LogDir    string        `json:"log_dir,omitempty"`
	Submitted time.Time     `json:"submitted,omitzero"`
	TimeLimit time.Duration `json:"time_limit,omitempty"`
	Owner     string        `json:"owner,omitempty"`
	Claimed   time.Time     `json:"claimed,omitzero"` // when Owner took or last renewed the claim
	Debug     bool          `json:"debug_mode,omitempty"`
	// Attempt is the submission JobID is (JobSubmitted.Attempt); 0 means 1; Exclude
	// the nodes that submission was kept off (JobSubmitted.Exclude).
	Attempt int      `json:"attempt,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// After is the job ids a queued-ahead job was held on (BatchOf.QueueAhead).
	After []string `json:"after,omitempty"`
}

// RunRecord is a run's entry in the bench_runs bucket.
type RunRecord struct {
	RunID     string    `json:"run_id"`
	Started   time.Time `json:"started"`
	Tests     int       `json:"tests"`
	BatchSize int       `json:"batch_size"`
	Policy    string    `json:"policy"`
	Done      int       `json:"done"`
	Passed    int       `json:"passed"`
	Failed    int       `json:"failed"`
	Finished  bool      `json:"finished"`
	Cancelled bool      `json:"cancelled,omitempty"` // planner cancel ended it
}

// Message ids: one per event, so a repeat is dropped by JetStream.
func StartedID(run string) string      { return RunStartedSubject(run) }
func FinishedID(run string) string     { return RunFinishedSubject(run) }
func BatchID(run string, k int) string { return BatchSubject(run, k) }
func SubmittedID(run, test, job string) string {
	return JobSubject(run, test, KindSubmitted) + "#" + job
}
func StateID(run, test, job, detail string) string {
	return JobSubject(run, test, KindState) + "#" + job + "#" + detail
}
func CompletedID(run, test string) string { return JobSubject(run, test, KindCompleted) }
func ResultID(run, test string) string    { return ResultSubject(run, test) }

// JobFile is the job's spec without its files, written by the submitter into the job's
// log folder for people to read. The pipeline never reads it back: the job can write
// its own folder.
const JobFile = "job.json"
