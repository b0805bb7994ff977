package metrics

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

// Input is what Judge needs to know about a test and its job.
type Input struct {
	TestType string // disagg | wideep
	Category string // perf | stress | accuracy
	// Custom is the test's own metrics section as written; Judge fills the fields it
	// leaves out from the defaults of type and category (testspec.Resolve). nil reads
	// the default metrics from the client log's result blocks.
	Custom *testspec.MetricsSpec
	// Concurrencies is the test's concurrency_list as configured. Empty means: whatever
	// concurrencies the log shows.
	Concurrencies []int
	// NumGenServers is hardware.num_gen_servers; the client log prints each concurrency
	// multiplied by it. Zero counts as 1.
	NumGenServers int
	// MaxFailedRequests is how many failed requests a concurrency may have and still be
	// valid (0 by default); negative skips the check.
	MaxFailedRequests int
	Datasets          []Dataset // accuracy datasets
	// JobState is the job's final SLURM state (COMPLETED, TIMEOUT, FAILED, CANCELLED, ...);
	// empty when unknown. Any state but COMPLETED makes the result partial and invalid,
	// while still recording what finished.
	JobState string
}

// PerfRow is one metric of one concurrency. Concurrency is the configured value (the
// YAML's concurrency_list entry), not the client's printed value, which is multiplied by
// num_gen_servers; Block.LogConcurrency keeps the printed one.
type PerfRow struct {
	Concurrency int
	Metric      string // SERVER_MEDIAN_TTFT, or the custom metric name
	Value       float64
	Unit        string // ms for the default metrics; empty for custom metrics
}

// AccuracyRow is the verdict for one dataset, filter and run. Value, Expected and
// Threshold are in the unit lm_eval prints (a fraction for exact_match).
type AccuracyRow struct {
	Dataset, Filter string
	Value           float64
	Expected        float64
	Threshold       float64 // NaN when not judged
	Passed          bool
	Judged          bool   // false when no dataset was configured for the task
	Metric          string // exact_match, or acc when the task has no exact_match
	Run             int    // 1-based results table within File
	File            string // base name of the log file
}

// Result is the verdict on one job's logs.
type Result struct {
	Valid bool
	// Partial says the job ended early (JobState other than COMPLETED) or only some of the
	// configured concurrencies finished; the rows hold what did finish.
	Partial  bool
	Reasons  []string // every condition that makes the result invalid
	Warnings []string // facts worth reading that do not invalidate the result
	Perf     []PerfRow
	Accuracy []AccuracyRow
	Blocks   []Block // every client result block read, warmups included
	// Iterations are statistics of the workers' per-concurrency iteration-log slices
	// (gen_only and ctx_only iterations), when the job left them; never judged.
	Iterations []IterRow
}

// ClientLog and AccuracyLogGlob are the seed's log names in a job's log folder.
const (
	ClientLog       = testspec.ClientLog
	AccuracyLogGlob = testspec.AccuracyLogGlob
)

// defaultMetric is a default perf metric: its seed name and the block field it reads.
type defaultMetric struct {
	name  string
	field Field
}

// defaultMetrics are the block fields of a test type's default metrics
// (testspec.DefaultMetrics names them) for perf and stress; nil for accuracy or an
// unknown pair.
func defaultMetrics(testType, category string) []defaultMetric {
	if category != "perf" && category != "stress" || testType != "disagg" && testType != "wideep" {
		return nil
	}
	names := testspec.DefaultMetrics(testType, category).MetricNames
	ms := make([]defaultMetric, 0, len(names))
	for _, n := range names {
		f, ok := fieldByMetric()[n]
		if !ok {
			panic("metrics: default metric " + n + " is no field of the client's result block")
		}
		ms = append(ms, defaultMetric{n, f})
	}
	return ms
}

// fieldByMetric finds a block field by its metric name (Field.Metric). Built on first
// use: the latency fields' names are set by bench.go's init, after package variables.
var fieldByMetric = sync.OnceValue(func() map[string]Field {
	m := make(map[string]Field, NumFields)
	for f := range NumFields {
		m[f.Metric()] = f
	}
	return m
})

// Judge reads a job's logs and gives the verdict. logDir is the job's log folder, or a
// single log file (the client log for perf, an lm_eval log for accuracy, the custom
// metrics log when in.Custom is set). It never fails: every problem is a reason.
//
// A folder is read as its job left it, which the job controls: only regular files
// inside it, symbolic links never leading out, each opened without blocking and within
// a size cap. A FIFO, a device, a huge file or a link out of the folder is a reason.
func Judge(logDir string, in Input) Result {
	if in.Custom != nil {
		m := testspec.Resolve(in.TestType, in.Category, in.Custom)
		in.Custom = &m
	}
	j := &judge{in: in, dir: logDir, g: max(in.NumGenServers, 1)}
	if st, err := os.Stat(logDir); err != nil {
		j.reason("log path: %v", err)
		return j.finish()
	} else if !st.IsDir() {
		j.file = logDir
	} else {
		if j.f, err = openFolder(logDir); err != nil {
			j.reason("log folder: %v", err)
			return j.finish()
		}
		defer j.f.close()
	}
	switch in.Category {
	case "accuracy":
		j.accuracy()
	case "perf", "stress":
		j.perf()
		j.iterations(in.Concurrencies)
	default:
		j.reason("unknown category %q (want perf, stress or accuracy)", in.Category)
	}
	return j.finish()
}

type judge struct {
	in   Input
	dir  string
	file string  // set when the path is a single file
	f    *folder // the log folder, when it is one
	g    int
	res  Result

	jsonSkipWarned bool
}

func (j *judge) reason(format string, args ...any) {
	j.res.Reasons = append(j.res.Reasons, fmt.Sprintf(format, args...))
}

func (j *judge) warn(format string, args ...any) {
	j.res.Warnings = append(j.res.Warnings, fmt.Sprintf(format, args...))
}

func (j *judge) jobEndedEarly() bool {
	s := strings.ToUpper(strings.TrimSpace(j.in.JobState))
	return s != "" && s != "COMPLETED"
}

func (j *judge) finish() Result {
	if j.jobEndedEarly() {
		j.res.Partial = true
		j.res.Reasons = append([]string{"job ended in state " + j.in.JobState}, j.res.Reasons...)
	}
	j.res.Valid = len(j.res.Reasons) == 0
	return j.res
}

// configConcurrency maps a printed concurrency to the configured one: the client prints
// concurrency * num_gen_servers.
func (j *judge) configConcurrency(n int) (int, bool) {
	list := j.in.Concurrencies
	if len(list) == 0 {
		if n%j.g == 0 {
			return n / j.g, true
		}
		return n, false
	}
	if n%j.g == 0 && slices.Contains(list, n/j.g) {
		return n / j.g, true
	}
	return n, false
}

func (j *judge) path(name string) string {
	if j.file != "" {
		return j.file
	}
	return filepath.Join(j.dir, name)
}

// open opens a log (name relative to the folder, or the single file) under the folder's
// rules.
func (j *judge) open(name string, limit int64) (*os.File, error) {
	if j.file != "" {
		return openPath(j.file, limit)
	}
	return j.f.open(name, limit)
}

// stat is os.Stat within the folder (or of the single file).
func (j *judge) stat(name string) (os.FileInfo, error) {
	if j.file != "" {
		return os.Stat(j.file)
	}
	return j.f.stat(name)
}

func (j *judge) perf() {
	defaults := defaultMetrics(j.in.TestType, j.in.Category)
	if j.in.Custom == nil && defaults == nil {
		j.reason("no default metrics for test type %q and category %q", j.in.TestType, j.in.Category)
		return
	}
	var blocks map[int]*Block
	clientPath := j.path(ClientLog)
	haveClient := true
	if j.in.Custom != nil && j.file != "" {
		haveClient = false // the single file given is the custom log
	} else if _, err := j.stat(ClientLog); err != nil {
		haveClient = false
		if j.in.Custom == nil {
			j.reason("client log: %v", err)
			return
		}
		j.warn("no %s: request counts not checked", ClientLog)
	}
	if haveClient {
		blocks = j.readBlocks(ClientLog)
	}
	list := j.in.Concurrencies
	if j.in.Custom != nil {
		values, order := j.custom()
		if len(list) == 0 {
			list = order
		}
		if len(list) == 0 {
			j.reason("custom metrics: no concurrency found")
		}
		done := 0
		for _, c := range list {
			vals, ok := values[c]
			if !ok {
				j.reason("concurrency %d: custom pattern found no match", c)
				continue
			}
			done++
			for i, name := range j.in.Custom.MetricNames {
				j.res.Perf = append(j.res.Perf, PerfRow{Concurrency: c, Metric: name, Value: vals[i]})
			}
			if haveClient {
				j.gateBlock(c, blocks[c], nil)
			}
		}
		j.markPartial(done, len(list))
		return
	}
	if len(list) == 0 {
		for c := range blocks {
			list = append(list, c)
		}
		slices.Sort(list)
		if len(list) == 0 {
			j.reason("%s: no result block tied to a 'Benchmarking with concurrency N' line", filepath.Base(clientPath))
			return
		}
	}
	done := 0
	for _, c := range list {
		b := blocks[c]
		j.gateBlock(c, b, defaults)
		if b == nil || !b.Complete() {
			continue
		}
		done++
		for _, m := range defaults {
			if v, ok := b.Get(m.field); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				j.res.Perf = append(j.res.Perf, PerfRow{Concurrency: c, Metric: m.name, Value: v, Unit: m.field.Unit()})
			}
		}
		j.compareJSON(c, b)
	}
	j.markPartial(done, len(list))
}

func (j *judge) markPartial(done, total int) {
	if done > 0 && done < total {
		j.res.Partial = true
	}
}

// readBlocks reads the client log and returns the result block of each configured
// concurrency; all blocks go to Result.Blocks.
func (j *judge) readBlocks(name string) map[int]*Block {
	path := j.path(name)
	f, err := j.open(name, maxLogFile)
	if err != nil {
		j.reason("client log: %v", err)
		return nil
	}
	defer f.Close()
	byC := map[int]*Block{}
	var size int64
	if st, err := f.Stat(); err == nil {
		size = st.Size()
	}
	lr := &limitedReader{r: f, left: maxLogFile, name: path, limit: maxLogFile}
	store := blockStore{size: size, read: func() int64 { return lr.limit - lr.left }}
	base := filepath.Base(path)
	err = ScanBench(lr, func(b Block) error {
		if !b.Warmup && b.LogConcurrency > 0 {
			c, ok := j.configConcurrency(b.LogConcurrency)
			b.Concurrency = c
			if !ok {
				b.Concurrency = 0 // not a configured concurrency
				j.warn("%s:%d: concurrency %d is not in the concurrency list %v (times %d gen servers)", base, b.Line, b.LogConcurrency, j.in.Concurrencies, j.g)
			}
		} else {
			b.Concurrency = 0
		}
		store.add(b)
		return nil
	})
	j.res.Blocks = store.join(j.res.Blocks)
	if err != nil {
		j.reason("client log %s: %v", path, err)
	}
	// A long log may repeat its concurrencies thousands of times: a first walk sizes their
	// warnings, a second writes them into one buffer, and the list grows once.
	eachRepeat := func(fn func(b *Block, prevLine int)) {
		clear(byC)
		for i := range j.res.Blocks {
			b := &j.res.Blocks[i]
			if b.Warmup || b.Concurrency == 0 {
				continue
			}
			if prev, ok := byC[b.Concurrency]; ok {
				fn(b, prev.Line)
			}
			byC[b.Concurrency] = b
		}
	}
	const (
		repeatA = ": concurrency "
		repeatB = " ran more than once (lines "
		repeatC = " and "
		repeatD = "); the later result is used"
	)
	var num [20]byte
	itoa := func(v int) []byte { return strconv.AppendInt(num[:0], int64(v), 10) }
	count, length := 0, 0
	eachRepeat(func(b *Block, prevLine int) {
		count++
		length += len(base) + len(repeatA) + len(itoa(b.Concurrency)) + len(repeatB) + len(itoa(prevLine)) + len(repeatC) + len(itoa(b.Line)) + len(repeatD)
	})
	if count > 0 {
		var sb strings.Builder
		sb.Grow(length)
		ends := make([]int, 0, count)
		eachRepeat(func(b *Block, prevLine int) {
			sb.WriteString(base)
			sb.WriteString(repeatA)
			sb.Write(itoa(b.Concurrency))
			sb.WriteString(repeatB)
			sb.Write(itoa(prevLine))
			sb.WriteString(repeatC)
			sb.Write(itoa(b.Line))
			sb.WriteString(repeatD)
			ends = append(ends, sb.Len())
		})
		all, start := sb.String(), 0
		j.res.Warnings = slices.Grow(j.res.Warnings, count)
		for _, end := range ends {
			j.res.Warnings = append(j.res.Warnings, all[start:end])
			start = end
		}
	}
	return byC
}

// blockStore gathers the blocks of one log. One slice grown by append would allocate
// (and clear) about five times its final size, as append grows large slices by a
// quarter; chunks joined at the end, twice, and each fresh page costs a fault. So a long
// log is sized from its own density: once sizeAfter blocks are in, one slice with room
// for the whole file (at the density of the bytes read so far) takes them, and the
// blocks are written once. A log that turns out denser than its start goes on in chunks.
type blockStore struct {
	size   int64        // the file's size; 0 when unknown
	read   func() int64 // bytes read from the file so far
	sized  bool
	chunks [][]Block
	cur    []Block
	n      int // blocks stored
}

// sizeAfter is the number of blocks read before the store sizes itself; maxGrowth bounds
// the room it makes, as a multiple of the blocks read.
const (
	sizeAfter = 1024
	maxGrowth = 64
)

func (s *blockStore) add(b Block) {
	if len(s.cur) == cap(s.cur) {
		s.grow()
	}
	s.cur = append(s.cur, b)
	s.n++
}

func (s *blockStore) grow() {
	if s.cur == nil {
		s.cur = make([]Block, 0, 64)
		return
	}
	if !s.sized && s.n >= sizeAfter && s.size > 0 {
		s.sized = true
		if want := s.room(); want > s.n {
			all := make([]Block, 0, want)
			for _, c := range s.chunks {
				all = append(all, c...)
			}
			s.cur = append(all, s.cur...)
			s.chunks = nil
			return
		}
	}
	s.chunks = append(s.chunks, s.cur)
	s.cur = make([]Block, 0, min(2*cap(s.cur), 4096))
}

// room is the number of blocks the whole file holds at the density read so far, with a
// sixteenth to spare for unevenness; 0 when it cannot tell.
func (s *blockStore) room() int {
	read := s.read()
	// The scanner holds at most a read buffer of what was read: the blocks came from at
	// least read-readBuffer bytes.
	parsed := max(read-readBuffer, read/2)
	if parsed <= 0 || read >= s.size {
		return 0
	}
	est := float64(s.n) * float64(s.size) / float64(parsed)
	return int(min(est+est/16+64, float64(maxGrowth*s.n)))
}

// join returns head followed by the stored blocks.
func (s *blockStore) join(head []Block) []Block {
	// A log whose blocks stopped early (a long tail of server output) leaves the sized
	// slice mostly empty: the result keeps only what it holds.
	if len(head) == 0 && len(s.chunks) == 0 && len(s.cur) >= cap(s.cur)/4*3 {
		return s.cur
	}
	return slices.Concat(append(append([][]Block{head}, s.chunks...), s.cur)...)
}

// gateBlock applies the validity gate to one concurrency's block.
func (j *judge) gateBlock(c int, b *Block, need []defaultMetric) {
	printed := c * j.g
	if b == nil {
		if j.jobEndedEarly() {
			j.reason("concurrency %d: no result block for concurrency %d: the job ended (%s) before it finished", c, printed, j.in.JobState)
			return
		}
		j.reason("concurrency %d: no result block between 'Benchmarking with concurrency %d' and its done line", c, printed)
		return
	}
	where := fmt.Sprintf("concurrency %d (%s:%d)", c, ClientLog, b.Line)
	if !b.Closed {
		j.reason("%s: result block is truncated (no closing ===== line; last line read %d)", where, b.EndLine)
	}
	if !b.Done {
		j.reason("%s: no 'Benchmark with concurrency %d done' line after the block", where, printed)
	}
	succ, hasSucc := b.Get(SuccessfulRequests)
	if !hasSucc {
		j.reason("%s: no Successful requests line", where)
	}
	if failed, ok := b.Get(FailedRequests); ok && j.in.MaxFailedRequests >= 0 && failed > float64(j.in.MaxFailedRequests) {
		j.reason("%s: %g failed requests (at most %d allowed)", where, failed, j.in.MaxFailedRequests)
	}
	if tok, ok := b.Get(GeneratedTokens); !ok {
		j.reason("%s: no Total generated tokens line", where)
	} else if !(tok > 0) {
		j.reason("%s: generated tokens is %g, not above zero", where, tok)
	}
	total, hasTotal := b.Get(TotalRequests)
	if !hasTotal && b.Prompts > 0 {
		total, hasTotal = float64(b.Prompts), true
	}
	if hasTotal && b.Prompts > 0 && total != float64(b.Prompts) {
		j.reason("%s: total requests %g but %d prompts were announced", where, total, b.Prompts)
	}
	if hasSucc && hasTotal && succ != total {
		j.reason("%s: successful requests %g != total requests %g", where, succ, total)
	} else if hasSucc && !hasTotal {
		j.warn("%s: total request count not printed; successful requests not compared", where)
	}
	for _, m := range need {
		v, ok := b.Get(m.field)
		switch {
		case !ok:
			j.reason("%s: %s missing from the block (metric %s)", where, m.field.Label(), m.name)
		case math.IsNaN(v) || math.IsInf(v, 0):
			j.reason("%s: %s is %g (metric %s)", where, m.field.Label(), v, m.name)
		}
	}
}

// compareJSON reads concurrency_<c>/result.json (a file, or a folder of .json files, as
// --result-dir leaves it) and flags fields that disagree with the log.
func (j *judge) compareJSON(c int, b *Block) {
	if j.file != "" {
		return
	}
	if len(j.in.Concurrencies) == 0 {
		// The folders are named by configured concurrency, unknown without the list.
		if !j.jsonSkipWarned {
			j.jsonSkipWarned = true
			j.warn("no concurrency list: concurrency_<c>/result.json files not compared")
		}
		return
	}
	rel := filepath.Join("concurrency_"+strconv.Itoa(c), "result.json")
	st, err := j.f.stat(rel)
	if err != nil {
		return
	}
	if st.IsDir() {
		files, _ := j.f.glob(rel + "/*.json")
		if len(files) == 0 {
			return
		}
		rel = files[len(files)-1]
	}
	f, err := j.f.open(rel, maxJSONFile)
	if err != nil {
		j.reason("%s: %v", rel, err)
		return
	}
	data, err := readLimited(f, rel, maxJSONFile)
	if err != nil {
		j.reason("%s: %v", rel, err)
		return
	}
	m, err := decodeResultJSON(data)
	if err != nil {
		j.reason("%s: not valid JSON: %v", rel, err)
		return
	}
	if mc, ok := m["max_concurrency"]; ok && mc != float64(b.LogConcurrency) {
		j.reason("concurrency %d: %s is for concurrency %g but the log's block is for %d", c, rel, mc, b.LogConcurrency)
		return
	}
	for f := range NumFields {
		logV, ok := b.Get(f)
		if !ok {
			continue
		}
		for _, key := range fields[f].json {
			jv, ok := m[key]
			if !ok {
				continue
			}
			// The log rounds to two decimals.
			if math.Abs(logV-jv) > 0.0051+1e-9*math.Abs(jv) && !(math.IsNaN(logV) && math.IsNaN(jv)) {
				j.reason("concurrency %d: %s is %.6g in %s but %.6g in %s", c, f.Label(), logV, ClientLog, jv, rel)
			}
			break
		}
	}
}

// decodeResultJSON returns the numeric top-level fields of a benchmark result.json.
func decodeResultJSON(data []byte) (map[string]float64, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		var f float64
		if json.Unmarshal(v, &f) == nil {
			out[k] = f
		}
	}
	return out, nil
}
