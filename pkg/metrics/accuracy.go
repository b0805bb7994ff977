package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

// Dataset is one accuracy dataset's expected score and hypothesis-test parameters.
//
// Units, fixed per field so no value is ever guessed: Expected (and every value, threshold
// and verdict derived from it) is in the unit lm_eval prints for exact_match, a fraction in
// [0, 1] (gsm8k 0.9454). Sigma is the per-sample standard deviation in percentage points,
// as the seed's defaults write it (gsm8k 50); it is divided by 100 once, in Threshold.
// Validate refuses values outside those units.
type Dataset struct {
	Name   string // lm_eval task name (dataset_name)
	Filter string // lm_eval filter (filter_type); empty judges every filter the log prints

	Expected       float64 // reference score, a fraction
	Alpha          float64 // false-failure rate of the one-sided test
	Beta           float64 // false-pass rate; kept with the dataset, not used by the threshold
	Sigma          float64 // per-sample standard deviation, percentage points
	NumSamples     int
	HigherIsBetter bool
	ThresholdType  string // "hypothesis_test" (the only one); empty means the same
}

// ThresholdHypothesisTest is the only threshold type.
const ThresholdHypothesisTest = "hypothesis_test"

var datasetDefaults = map[string]Dataset{
	"gsm8k":         {Alpha: 0.05, Beta: 0.2, Sigma: 50, NumSamples: 1319},
	"mmlu":          {Alpha: 0.05, Beta: 0.2, Sigma: 50, NumSamples: 4096},
	"humaneval":     {Alpha: 0.002, Beta: 0.2, Sigma: 15.08, NumSamples: 164},
	"gpqa_diamond":  {Alpha: 0.05, Beta: 0.2, Sigma: 50, NumSamples: 198},
	"aime25":        {Alpha: 0.05, Beta: 0.2, Sigma: 50, NumSamples: 30},
	"cnn_dailymail": {Alpha: 0.002, Beta: 0.2, Sigma: 11.06, NumSamples: 512},
}

// DatasetDefaults returns the seed's hypothesis-test parameters for a dataset (gsm8k,
// mmlu, humaneval, gpqa_diamond, aime25, cnn_dailymail; any other name gets alpha 0.05,
// beta 0.2, sigma 50, 1000 samples), higher-is-better, with Expected unset.
func DatasetDefaults(name string) Dataset {
	d, ok := datasetDefaults[strings.ToLower(name)]
	if !ok {
		d = Dataset{Alpha: 0.05, Beta: 0.2, Sigma: 50, NumSamples: 1000}
	}
	d.Name = name
	d.HigherIsBetter = true
	d.ThresholdType = ThresholdHypothesisTest
	return d
}

// ResolveDataset returns a dataset as a test writes it (config, job spec) with the
// dataset's defaults for every parameter it leaves out: the one conversion the
// collector and `collector parse` both use.
func ResolveDataset(d testspec.AccuracyDataset) Dataset {
	out := DatasetDefaults(d.DatasetName)
	out.Expected, out.Filter = d.ExpectedValue, d.FilterType
	if d.ThresholdType != "" {
		out.ThresholdType = d.ThresholdType
	}
	if d.Alpha != nil {
		out.Alpha = *d.Alpha
	}
	if d.Beta != nil {
		out.Beta = *d.Beta
	}
	if d.Sigma != nil {
		out.Sigma = *d.Sigma
	}
	if d.NumSamples != nil {
		out.NumSamples = *d.NumSamples
	}
	if d.HigherIsBetter != nil {
		out.HigherIsBetter = *d.HigherIsBetter
	}
	return out
}

// Validate checks the dataset's values are in range and in their units.
func (d Dataset) Validate() error {
	switch {
	case d.Name == "":
		return fmt.Errorf("dataset_name is empty")
	case d.ThresholdType != "" && d.ThresholdType != ThresholdHypothesisTest:
		return fmt.Errorf("dataset %s: threshold_type %q is not supported (only %q)", d.Name, d.ThresholdType, ThresholdHypothesisTest)
	case math.IsNaN(d.Expected) || d.Expected < 0 || d.Expected > 1:
		return fmt.Errorf("dataset %s: expected_value %g must be a fraction in [0, 1] as lm_eval prints it (write 0.9454, not 94.54)", d.Name, d.Expected)
	case !(d.Alpha > 0 && d.Alpha < 0.5):
		return fmt.Errorf("dataset %s: alpha %g must be in (0, 0.5)", d.Name, d.Alpha)
	case d.Beta < 0 || d.Beta >= 1:
		return fmt.Errorf("dataset %s: beta %g must be in [0, 1)", d.Name, d.Beta)
	case !(d.Sigma > 1 && d.Sigma <= 100):
		return fmt.Errorf("dataset %s: sigma %g must be in percentage points, in (1, 100] (gsm8k's default is 50); a value of 1 or less reads as a fraction", d.Name, d.Sigma)
	case d.NumSamples <= 0:
		return fmt.Errorf("dataset %s: num_samples %d must be positive", d.Name, d.NumSamples)
	}
	return nil
}

// Threshold returns the pass threshold in the unit of Expected: with
// scale = sqrt(2*sigma^2/n) (sigma as a fraction), higher-is-better passes at or above
// expected + z(alpha)*scale, where z(alpha) is the lower-tail normal quantile (negative);
// lower-is-better passes at or below expected - z(alpha)*scale.
func (d Dataset) Threshold() float64 {
	sigma := d.Sigma / 100
	scale := math.Sqrt(2 * sigma * sigma / float64(d.NumSamples))
	z := NormInv(d.Alpha)
	if d.HigherIsBetter {
		return d.Expected + z*scale
	}
	return d.Expected - z*scale
}

// Pass says whether value passes the dataset's threshold.
func (d Dataset) Pass(value float64) bool {
	if math.IsNaN(value) {
		return false
	}
	if d.HigherIsBetter {
		return value >= d.Threshold()
	}
	return value <= d.Threshold()
}

// NormInv is the inverse of the standard normal CDF: NormInv(0.05) = -1.6448536...
// It returns -Inf at 0, +Inf at 1 and NaN outside [0, 1]. Acklam's rational
// approximation, refined by one Halley step, is accurate to about 1e-15.
func NormInv(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0 || p > 1:
		return math.NaN()
	case p == 0:
		return math.Inf(-1)
	case p == 1:
		return math.Inf(1)
	case p > 0.5:
		// 1-p is exact here; refining in the lower tail keeps full precision near 1.
		return -NormInv(1 - p)
	}
	a := [...]float64{-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00}
	b := [...]float64{-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01, -1.328068155288572e+01}
	c := [...]float64{-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00}
	d := [...]float64{7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00}
	const plow = 0.02425
	var x float64
	switch {
	case p < plow:
		q := math.Sqrt(-2 * math.Log(p))
		x = (((((c[0]*q+c[1])*q+c[2])*q+c[3])*q+c[4])*q + c[5]) / ((((d[0]*q+d[1])*q+d[2])*q+d[3])*q + 1)
	default:
		q := p - 0.5
		r := q * q
		x = (((((a[0]*r+a[1])*r+a[2])*r+a[3])*r+a[4])*r + a[5]) * q / (((((b[0]*r+b[1])*r+b[2])*r+b[3])*r+b[4])*r + 1)
	}
	// Halley refinement against the exact CDF.
	e := 0.5*math.Erfc(-x/math.Sqrt2) - p
	u := e * math.Sqrt(2*math.Pi) * math.Exp(x*x/2)
	return x - u/(1+x*u/2)
}

// EvalRow is one row of an lm_eval results table.
type EvalRow struct {
	Run    int    // 1-based run (results table) within the file
	Line   int    // 1-based line in the file
	Group  bool   // from a "Groups" table
	Task   string // task name, carried down from the group's first row; leading "- " removed
	Filter string
	NShot  string
	Metric string
	Value  float64 // NaN when lm_eval printed N/A
	Stderr float64 // NaN when absent
}

// ReadEval reads every lm_eval results table in r ("|Tasks|Version|Filter|n-shot|Metric|
// |Value| |Stderr|", with or without the direction column). The task name appears only
// on a task's first row; later rows inherit it. Each "Tasks" table starts a run; a
// "Groups" table that follows it belongs to the same run.
func ReadEval(r io.Reader) ([]EvalRow, error) {
	var out []EvalRow
	err := ScanEval(r, func(row EvalRow) error {
		out = append(out, row)
		return nil
	})
	return out, err
}

// ScanEval streams ReadEval's rows to fn.
func ScanEval(r io.Reader, fn func(EvalRow) error) error {
	ls := newLineScanner(r)
	defer ls.release()
	var (
		scratch   []byte
		run       int
		inTable   bool
		lastTasks bool // the previous table of this run was a Tasks table
		cols      evalCols
		task      string
		cells     [][]byte
	)
	for ls.Scan() {
		line := ls.Bytes()
		if bytes.IndexByte(line, 0x1b) >= 0 {
			scratch = stripANSI(scratch[:0], line)
			line = scratch
		}
		line = trimASCII(line)
		if len(line) == 0 || line[0] != '|' {
			if len(line) > 0 {
				inTable = false
			}
			continue
		}
		cells = splitCells(cells[:0], line)
		if !inTable {
			c, kind, ok := headerCols(cells)
			if !ok {
				continue
			}
			switch {
			case kind == "tasks" || !lastTasks:
				run++
			}
			lastTasks = kind == "tasks"
			inTable, cols, task = true, c, ""
			continue
		}
		if isSeparatorRow(cells) {
			continue
		}
		get := func(i int) string {
			if i < 0 || i >= len(cells) {
				return ""
			}
			return string(trimASCII(cells[i]))
		}
		if t := get(cols.task); t != "" {
			task = strings.TrimSpace(strings.TrimLeft(t, "- "))
		}
		if task == "" {
			continue
		}
		row := EvalRow{Run: run, Line: ls.Line(), Group: !lastTasks, Task: task,
			Filter: get(cols.filter), NShot: get(cols.nshot), Metric: get(cols.metric),
			Value: math.NaN(), Stderr: math.NaN()}
		if v, err := strconv.ParseFloat(get(cols.value), 64); err == nil {
			row.Value = v
		}
		if v, err := strconv.ParseFloat(get(cols.stderr), 64); err == nil {
			row.Stderr = v
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return ls.Err()
}

type evalCols struct{ task, filter, nshot, metric, value, stderr int }

func splitCells(dst [][]byte, line []byte) [][]byte {
	line = line[1:]
	if n := len(line); n > 0 && line[n-1] == '|' {
		line = line[:n-1]
	}
	for {
		i := bytes.IndexByte(line, '|')
		if i < 0 {
			return append(dst, line)
		}
		dst = append(dst, line[:i])
		line = line[i+1:]
	}
}

func headerCols(cells [][]byte) (evalCols, string, bool) {
	c := evalCols{-1, -1, -1, -1, -1, -1}
	kind := ""
	for i, cell := range cells {
		switch strings.ToLower(string(trimASCII(cell))) {
		case "tasks":
			c.task, kind = i, "tasks"
		case "groups":
			c.task, kind = i, "groups"
		case "filter":
			c.filter = i
		case "n-shot":
			c.nshot = i
		case "metric":
			c.metric = i
		case "value":
			c.value = i
		case "stderr":
			c.stderr = i
		}
	}
	return c, kind, kind != "" && c.metric >= 0 && c.value >= 0
}

func isSeparatorRow(cells [][]byte) bool {
	for _, c := range cells {
		for _, x := range trimASCII(c) {
			if x != '-' && x != ':' {
				return false
			}
		}
	}
	return true
}

// accuracy judges the lm_eval logs against the configured datasets. Every run of every
// dataset and filter must pass.
func (j *judge) accuracy() {
	if j.in.Custom != nil {
		j.warn("custom metrics are not applied to accuracy tests; lm_eval tables are read instead")
	}
	all, n := j.evalTables()
	if n == 0 {
		return
	}
	if len(j.in.Datasets) == 0 {
		j.warn("no accuracy datasets configured: values recorded without verdicts")
		for _, fr := range all {
			for _, r := range fr.rows {
				if r.Metric == "exact_match" {
					j.res.Accuracy = append(j.res.Accuracy, AccuracyRow{Dataset: r.Task, Filter: r.Filter,
						Value: r.Value, Threshold: math.NaN(), Metric: r.Metric, Run: r.Run, File: fr.name})
				}
			}
		}
		if len(j.res.Accuracy) == 0 {
			j.reason("no exact_match rows in the lm_eval tables")
		}
		return
	}
	for _, d := range j.in.Datasets {
		j.judgeDataset(d, all)
	}
}

// fileRows are the lm_eval table rows of one accuracy log.
type fileRows struct {
	name string
	rows []EvalRow
}

// evalTables reads the lm_eval tables of every accuracy log, a Groups table's repeats
// of its Tasks rows dropped; n counts the rows (0: a reason was given).
func (j *judge) evalTables() (all []fileRows, n int) {
	files := []string{j.file}
	if j.file == "" {
		files, _ = j.f.glob(AccuracyLogGlob)
		if len(files) == 0 {
			j.reason("no accuracy log %s in %s", AccuracyLogGlob, j.dir)
			return nil, 0
		}
	}
	for _, path := range files {
		f, err := j.open(path, maxLogFile)
		if err != nil {
			j.reason("accuracy log: %v", err)
			continue
		}
		rows, err := ReadEval(&limitedReader{r: f, left: maxLogFile, name: path, limit: maxLogFile})
		f.Close()
		if err != nil {
			j.reason("accuracy log %s: %v", path, err)
		}
		if len(rows) == 0 {
			j.warn("%s: no lm_eval results table", filepath.Base(path))
		}
		n += len(rows)
		all = append(all, fileRows{filepath.Base(path), dedupGroups(rows)})
	}
	if n == 0 {
		j.reason("no lm_eval results table in %d accuracy log(s)", len(files))
	}
	return all, n
}

// dedupGroups drops the rows a Groups table repeats from the Tasks table of the same run.
func dedupGroups(rows []EvalRow) []EvalRow {
	type key struct {
		run                  int
		task, filter, metric string
	}
	seen := map[key]bool{}
	out := rows[:0]
	for _, r := range rows {
		k := key{r.Run, strings.ToLower(r.Task), r.Filter, r.Metric}
		if !seen[k] {
			seen[k] = true
			out = append(out, r)
		}
	}
	return out
}

// judgeDataset judges one configured dataset against every log's rows.
func (j *judge) judgeDataset(d Dataset, all []fileRows) {
	if err := d.Validate(); err != nil {
		j.reason("%v", err)
		return
	}
	thr := d.Threshold()
	var filters []string
	found := 0
	for _, fr := range all {
		metric := pickMetric(fr.rows, d.Name)
		for _, r := range fr.rows {
			if !strings.EqualFold(r.Task, d.Name) || r.Metric != metric {
				continue
			}
			if !slices.Contains(filters, r.Filter) {
				filters = append(filters, r.Filter)
			}
			if d.Filter != "" && r.Filter != d.Filter {
				continue
			}
			found++
			row := AccuracyRow{Dataset: d.Name, Filter: r.Filter, Value: r.Value, Expected: d.Expected,
				Threshold: thr, Passed: d.Pass(r.Value), Judged: true, Metric: r.Metric, Run: r.Run, File: fr.name}
			j.res.Accuracy = append(j.res.Accuracy, row)
			if !row.Passed {
				cmp := "<"
				if !d.HigherIsBetter {
					cmp = ">"
				}
				j.reason("%s %s (%s run %d, line %d): %s %.4f %s threshold %.4f (expected %.4f, alpha %g, sigma %g, n %d)",
					d.Name, r.Filter, fr.name, r.Run, r.Line, r.Metric, r.Value, cmp, thr, d.Expected, d.Alpha, d.Sigma, d.NumSamples)
			}
		}
	}
	switch {
	case found > 0:
	case len(filters) > 0:
		j.reason("%s: filter %q not in the lm_eval tables (found %s)", d.Name, d.Filter, strings.Join(filters, ", "))
	default:
		j.reason("%s: no exact_match or acc row in the lm_eval tables", d.Name)
	}
}

// pickMetric chooses the metric judged for a task: exact_match, or acc when the task
// prints no exact_match (mmlu).
func pickMetric(rows []EvalRow, task string) string {
	acc := false
	for _, r := range rows {
		if strings.EqualFold(r.Task, task) {
			if r.Metric == "exact_match" {
				return "exact_match"
			}
			acc = acc || r.Metric == "acc"
		}
	}
	if acc {
		return "acc"
	}
	return "exact_match"
}
