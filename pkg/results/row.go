// Package results owns the two result outputs: the seed framework's CSV
// (perf_script_test_results.csv, same columns and formats) and the richer Parquet dataset
// (hive-style run=<id>/ folders). Both are written from the same Row values, and both
// writers are safe to call from several goroutines and several processes at once.
package results

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the version of Row, stored in every Parquet row and file. Bump it when
// a column changes meaning or type; adding a column does not need a bump.
const SchemaVersion = 1

// Row is one measured value of one test: a (concurrency, metric) pair for a perf test, a
// (dataset, filter) pair for an accuracy test. The test-level fields (verdict, job, timing,
// topology) repeat on every row of a test so that each row stands alone in a query.
type Row struct {
	// RunID is the pipeline run that produced the row; also the hive partition run=<id>.
	RunID string `parquet:"run_id" json:"run_id"`
	// TestID is {test_type}_{category}_{yaml stem}, e.g. disagg_perf_deepseek-r1-fp4_1k1k_...
	TestID string `parquet:"test_id" json:"test_id"`
	// TestType is disagg or wideep.
	TestType string `parquet:"test_type" json:"test_type"`
	// Category is perf, accuracy or stress.
	Category string `parquet:"category" json:"category"`
	// Model is metadata.model_name.
	Model string `parquet:"model" json:"model"`
	// Precision is metadata.precision, e.g. fp4.
	Precision string `parquet:"precision" json:"precision"`
	// GPUType is the GPU type the test ran on, e.g. GB200.
	GPUType string `parquet:"gpu_type" json:"gpu_type"`
	// Concurrency is the client concurrency of a perf row as the log prints it (already
	// multiplied by the number of gen servers); 0 for accuracy rows.
	Concurrency int64 `parquet:"concurrency" json:"concurrency"`
	// Metric is the metric name, e.g. SERVER_MEDIAN_TTFT; for accuracy rows the lm_eval
	// metric (exact_match). It is the CSV's metric_type.
	Metric string `parquet:"metric" json:"metric"`
	// Judged marks the rows the test is judged on (its default or custom metrics, every
	// accuracy row); only they go to the CSV. The other perf rows are the rest of what the
	// client printed for the concurrency (SERVER_P90_TPOT, OUTPUT_THROUGHPUT, ...).
	Judged bool `parquet:"judged" json:"judged"`
	// Value is the measured value in Unit; NaN when the metric was expected but missing.
	Value float64 `parquet:"value" json:"value"`
	// Unit is the unit of Value and Threshold: ms, tok/s, fraction, ...
	Unit string `parquet:"unit" json:"unit"`
	// Dataset is the accuracy dataset (gsm8k, ...); empty for perf rows.
	Dataset string `parquet:"dataset" json:"dataset"`
	// Filter is lm_eval's filter (flexible-extract, strict-match); empty for perf rows.
	Filter string `parquet:"filter" json:"filter"`
	// Threshold is the value the row is judged against, in Unit; null when the row has none.
	Threshold *float64 `parquet:"threshold,optional" json:"threshold"`
	// Passed says whether this row's own check passed: an accuracy value met its threshold,
	// a perf value comes from a complete block without failed requests. The CSV's state
	// column is "valid" exactly when Passed is true.
	Passed bool `parquet:"passed" json:"passed"`
	// Partial marks rows of a test that ended part-way (timeout, failure) and so has
	// values for only some of its concurrencies.
	Partial bool `parquet:"partial" json:"partial"`
	// Verdict is the test's verdict: "pass" or "fail".
	Verdict string `parquet:"verdict" json:"verdict"`
	// Reasons explains a fail verdict, the reasons joined with "; "; empty on pass.
	Reasons string `parquet:"reasons" json:"reasons"`
	// RefVerdict is the row against the test's references: pass, regression,
	// improvement or "insufficient data"; empty when no reference covers it. RefMetric
	// names a derived reference metric (output_tok_s_per_gpu, ...) read from this row, and
	// RefBound the limit the value was held to.
	RefVerdict string   `parquet:"ref_verdict" json:"ref_verdict"`
	RefMetric  string   `parquet:"ref_metric" json:"ref_metric"`
	RefBound   *float64 `parquet:"ref_bound,optional" json:"ref_bound"`
	// JobID is the scheduler's job id.
	JobID string `parquet:"job_id" json:"job_id"`
	// Attempt is the submission the rows come from: 1, or more when the test was
	// submitted again after a node failure or a preemption (the CSV has no such column).
	Attempt int32 `parquet:"attempt" json:"attempt"`
	// SlurmState is the job's final base state, e.g. COMPLETED, TIMEOUT.
	SlurmState string `parquet:"slurm_state" json:"slurm_state"`
	// ExitCode is the job's exit code.
	ExitCode int64 `parquet:"exit_code" json:"exit_code"`
	// NodeList is the job's node list as the scheduler reports it.
	NodeList string `parquet:"node_list" json:"node_list"`
	// Start and End are when the test started and ended (UTC, microsecond precision); the
	// CSV's start_timestamp, end_timestamp and total_time__sec come from them. The zero
	// time means unknown and is stored as null.
	Start time.Time `parquet:"start,timestamp(microsecond),optional" json:"start"`
	End   time.Time `parquet:"end,timestamp(microsecond),optional" json:"end"`
	// CtxGPUs and GenGPUs are the GPUs used by all ctx servers and all gen servers.
	CtxGPUs int64 `parquet:"ctx_gpus" json:"ctx_gpus"`
	GenGPUs int64 `parquet:"gen_gpus" json:"gen_gpus"`
	// OutputTokSPerGPU is output token throughput divided by all GPUs (ctx+gen) and
	// TokSPerUser the per-user throughput at this concurrency: the two axes of the
	// disaggregated-serving Pareto chart. Null on rows without them (accuracy).
	OutputTokSPerGPU *float64 `parquet:"output_tok_s_per_gpu,optional" json:"output_tok_s_per_gpu"`
	TokSPerUser      *float64 `parquet:"tok_s_per_user,optional" json:"tok_s_per_user"`
	// InputTokSPerGPU and TotalTokSPerGPU are the input token throughput (total input
	// tokens over the benchmark duration) and the total token throughput (input plus
	// output) divided by all GPUs; null where the client did not print them.
	InputTokSPerGPU *float64 `parquet:"input_tok_s_per_gpu,optional" json:"input_tok_s_per_gpu"`
	TotalTokSPerGPU *float64 `parquet:"total_tok_s_per_gpu,optional" json:"total_tok_s_per_gpu"`
	// ConfigHash identifies the resolved test configuration (after defaults and overrides).
	ConfigHash string `parquet:"config_hash" json:"config_hash"`
	// ContainerImage is environment.container_image.
	ContainerImage string `parquet:"container_image" json:"container_image"`
	// SMClock and MemClock are the GPU type's locked graphics and memory clocks in MHz
	// (the CSV's sm_clk and mem_clk); 0 when the clocks are not locked.
	SMClock  int64 `parquet:"sm_clk" json:"sm_clk"`
	MemClock int64 `parquet:"mem_clk" json:"mem_clk"`
	// Command is the CSV's command column; empty means the seed's form,
	// "disagg_benchmark --model={model} --{precision} --concurrency={c}", which the
	// writers fill in, so the Parquet column holds what the CSV shows.
	Command string `parquet:"command" json:"command"`
	// SchemaVersion is SchemaVersion when the row was written; 0 is filled in by the writers.
	SchemaVersion int32 `parquet:"schema_version" json:"schema_version"`
}

// CSVRows returns the judged rows, the ones the seed's CSV holds.
func CSVRows(rows []Row) []Row {
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		if r.Judged {
			out = append(out, r)
		}
	}
	return out
}

// Float returns a pointer to v, for Row's nullable fields.
func Float(v float64) *float64 { return &v }

// normalize returns the row as the writers store it: UTC times truncated to microseconds
// (what Parquet keeps), the command filled in and the schema version set.
func (r Row) normalize() Row {
	if r.Command == "" {
		r.Command = "disagg_benchmark --model=" + r.Model + " --" + r.Precision + " --concurrency=" + strconv.FormatInt(r.Concurrency, 10)
	}
	if !r.Start.IsZero() {
		r.Start = r.Start.UTC().Truncate(time.Microsecond)
	}
	if !r.End.IsZero() {
		r.End = r.End.UTC().Truncate(time.Microsecond)
	}
	if r.SchemaVersion == 0 {
		r.SchemaVersion = SchemaVersion
	}
	return r
}

// MetricValue is the row's value of metric: its own value when metric is the row's,
// or one of the derived per-GPU and per-user throughputs (output_tok_s_per_gpu,
// input_tok_s_per_gpu, total_tok_s_per_gpu, tok_s_per_user) this row carries.
func (r *Row) MetricValue(metric string) (float64, bool) {
	var p *float64
	switch metric {
	case "output_tok_s_per_gpu":
		p = r.OutputTokSPerGPU
	case "input_tok_s_per_gpu":
		p = r.InputTokSPerGPU
	case "total_tok_s_per_gpu":
		p = r.TotalTokSPerGPU
	case "tok_s_per_user":
		p = r.TokSPerUser
	default:
		if strings.EqualFold(r.Metric, metric) && !math.IsNaN(r.Value) {
			return r.Value, true
		}
		return 0, false
	}
	if p == nil {
		return 0, false
	}
	return *p, true
}
