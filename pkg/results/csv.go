package results

import (
	"bytes"
	"encoding/csv"
	"math"
	"strconv"
	"strings"
	"time"
)

// CSVFile is the CSV's file name under the output path, as the seed framework names it.
const CSVFile = "perf_script_test_results.csv"

// CSVHeader is the seed framework's column list, in its order.
var CSVHeader = []string{
	"network_name", "network_hash", "sm_clk", "mem_clk", "gpu_idx", "perf_case_name",
	"test_name", "original_test_name", "perf_metric", "total_time__sec", "start_timestamp",
	"end_timestamp", "state", "command", "threshold", "absolute_threshold", "metric_type",
}

// csvTime is the seed's timestamp layout (%Y-%m-%d %H:%M:%S).
const csvTime = "2006-01-02 15:04:05"

// CSVRecords renders rows as CSV records (without the header), one per row, column by
// column as the seed framework fills them, with its defect fixed:
//
//   - Every name column derives from the pytest-style node name the seed used,
//     base = "{func}[{test_id}]_con:{c}", where func is test_benchmark (perf),
//     test_accuracy (accuracy) or test_stress (stress).
//   - network_name is "{test_id}_con:{c}": the bracket content plus the concurrency
//     suffix, which is what the seed meant to write; its regex looked for "-con-N" while
//     the names end in "_con:N", so it always fell back to the whole base name (defect 7).
//   - network_hash, perf_case_name, test_name and original_test_name are the base name.
//   - sm_clk and mem_clk are the GPU type's locked clocks (0 when not locked), as the seed.
//   - gpu_idx is empty (the seed writes NaN, which pandas writes as an empty field).
//   - perf_metric is Value, written as Python writes a float (1122.63, 100.0); NaN is empty.
//   - total_time__sec is End-Start in seconds with microsecond resolution; empty when
//     either time is unknown.
//   - start_timestamp and end_timestamp use %Y-%m-%d %H:%M:%S in UTC (the seed wrote its
//     host's local time; UTC keeps a replay on another host byte-identical).
//   - state is "valid" when the row passed its own check and "invalid" otherwise (the seed
//     only ever wrote rows of tests whose regex matched, all "valid").
//   - command is Row.Command, or (also in the Parquet rows) the seed's
//     "disagg_benchmark --model={model} --{precision} --concurrency={c}".
//   - threshold is empty (the seed's relative regression threshold, never set); an
//     accuracy row's pass line is absolute and goes to absolute_threshold.
//   - metric_type is Metric.
//
// A row with no Metric (a test's verdict without any value) has no CSV line.
func CSVRecords(rows []Row) [][]string {
	out := make([][]string, 0, len(rows))
	for _, r := range rows {
		if r.Metric == "" {
			continue
		}
		out = append(out, csvRecord(r.normalize()))
	}
	return out
}

func csvRecord(r Row) []string {
	c := strconv.FormatInt(r.Concurrency, 10)
	suffix := "_con:" + c
	base := nodeFunc(r.Category) + "[" + r.TestID + "]" + suffix
	cmd := r.Command // normalize filled in the seed's form
	state := "invalid"
	if r.Passed {
		state = "valid"
	}
	total, start, end := "", "", ""
	if !r.Start.IsZero() {
		start = r.Start.Format(csvTime)
	}
	if !r.End.IsZero() {
		end = r.End.Format(csvTime)
	}
	if !r.Start.IsZero() && !r.End.IsZero() {
		total = pyFloat(r.End.Sub(r.Start).Round(time.Microsecond).Seconds())
	}
	abs := ""
	if r.Threshold != nil {
		abs = pyFloat(*r.Threshold)
	}
	// Text cells that a spreadsheet would run as a formula are neutralised as OWASP
	// recommends (a leading '); the numbers are not text and are left alone.
	return []string{
		noFormula(r.TestID + suffix), // network_name
		noFormula(base),              // network_hash
		strconv.FormatInt(r.SMClock, 10),
		strconv.FormatInt(r.MemClock, 10),
		"", // gpu_idx
		noFormula(base),
		noFormula(base),
		noFormula(base),
		pyFloat(r.Value),
		total,
		start,
		end,
		state,
		noFormula(cmd),
		"", // threshold
		abs,
		noFormula(r.Metric),
	}
}

// noFormula prefixes a text cell that starts with '=', '+', '-', '@', tab or carriage
// return with a single quote, so that a spreadsheet shows it instead of running it.
func noFormula(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// nodeFunc is the seed's pytest test function for a category.
func nodeFunc(category string) string {
	switch category {
	case "perf", "":
		return "test_benchmark"
	default:
		return "test_" + category
	}
}

// pyFloat formats v as Python's repr (and so pandas' to_csv) does: the shortest string
// that reads back as v, always with a decimal point in fixed notation, and in exponent
// notation outside 1e-4 <= |v| < 1e16. NaN is written as an empty field, as pandas does.
func pyFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return ""
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	if v == 0 {
		if math.Signbit(v) {
			return "-0.0"
		}
		return "0.0"
	}
	if a := math.Abs(v); a < 1e-4 || a >= 1e16 {
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.ContainsRune(s, '.') {
		s += ".0"
	}
	return s
}

// encodeCSV renders records as CSV bytes with "\n" line ends.
func encodeCSV(records [][]string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.WriteAll(records) // writing to a bytes.Buffer cannot fail
	return b.Bytes()
}

// csvHeaderLine is the header line as written to the file.
var csvHeaderLine = encodeCSV([][]string{CSVHeader})
