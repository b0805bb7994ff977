package metrics

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Field is one value of the benchmark client's "Serving Benchmark Result" block.
type Field int

// The fields of a result block, in the order the client prints them, except the ones
// only some clients print (P90 percentiles, goodput), which come last.
const (
	TotalRequests Field = iota
	SuccessfulRequests
	FailedRequests
	Duration
	InputTokens
	GeneratedTokens
	RequestThroughput
	OutputThroughput
	TotalThroughput
	UserThroughput
	MeanTTFT
	MedianTTFT
	StdTTFT
	P99TTFT
	MeanTPOT
	MedianTPOT
	StdTPOT
	P99TPOT
	MeanITL
	MedianITL
	StdITL
	P99ITL
	MeanE2EL
	MedianE2EL
	StdE2EL
	P99E2EL
	P90TTFT
	P90TPOT
	P90ITL
	P90E2EL
	RequestGoodput
	NumFields
)

type fieldInfo struct {
	key    string   // JSON key in Block output; vLLM's result.json name where one exists
	labels []string // labels the client prints (lower case, without the colon)
	json   []string // names in result.json, first preferred
	unit   string
}

var fields = [NumFields]fieldInfo{
	TotalRequests:      {"total_requests", []string{"total requests"}, []string{"total_requests", "num_prompts"}, "count"},
	SuccessfulRequests: {"completed", []string{"successful requests"}, []string{"completed", "successful_requests"}, "count"},
	FailedRequests:     {"failed_requests", []string{"failed requests", "total failed requests"}, []string{"failed_requests", "failed", "num_failed_requests"}, "count"},
	Duration:           {"duration", []string{"benchmark duration (s)"}, []string{"duration"}, "s"},
	InputTokens:        {"total_input_tokens", []string{"total input tokens"}, []string{"total_input_tokens", "total_input"}, "tokens"},
	GeneratedTokens:    {"total_output_tokens", []string{"total generated tokens", "total output tokens"}, []string{"total_output_tokens", "total_output"}, "tokens"},
	RequestThroughput:  {"request_throughput", []string{"request throughput (req/s)"}, []string{"request_throughput"}, "req/s"},
	OutputThroughput:   {"output_throughput", []string{"output token throughput (tok/s)"}, []string{"output_throughput"}, "tok/s"},
	TotalThroughput:    {"total_token_throughput", []string{"total token throughput (tok/s)"}, []string{"total_token_throughput"}, "tok/s"},
	UserThroughput:     {"user_throughput", []string{"user throughput (tok/s)"}, []string{"user_throughput", "tput_user"}, "tok/s"},
	RequestGoodput:     {"request_goodput", []string{"request goodput (req/s)"}, []string{"request_goodput"}, "req/s"},
}

func init() {
	stats := []struct{ key, label string }{{"mean", "mean"}, {"median", "median"}, {"std", "std"}, {"p99", "p99"}}
	for i, m := range []string{"ttft", "tpot", "itl", "e2el"} {
		for j, s := range stats {
			key := s.key + "_" + m + "_ms"
			labels := []string{s.label + " " + m + " (ms)"}
			if s.key == "std" {
				labels = append(labels, "std dev "+m+" (ms)")
			}
			fields[MeanTTFT+Field(4*i+j)] = fieldInfo{key, labels, []string{key}, "ms"}
		}
		key := "p90_" + m + "_ms"
		fields[P90TTFT+Field(i)] = fieldInfo{key, []string{"p90 " + m + " (ms)"}, []string{key}, "ms"}
	}
	for f := range NumFields {
		for _, l := range fields[f].labels {
			i := labelHash([]byte(l))
			for labels[i].lower != "" {
				i = (i + 1) % len(labels)
			}
			labels[i] = labelSlot{lower: l, printed: labelTitle(l), f: f}
		}
	}
}

// labels finds a field by its label, ASCII case ignored: an open-addressed table hashed
// on the label's length and three of its bytes. A block has some twenty labelled lines,
// and a map lookup (two for a label printed in another case than labelTitle's) took a
// fifth of the scan.
var labels [256]labelSlot

type labelSlot struct {
	lower, printed string // the label in lower case, and as labelTitle prints it
	f              Field
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c
}

func labelHash(b []byte) int {
	n := len(b)
	h := uint(n)*0x9e3779b1 ^ uint(lowerByte(b[0]))*0x85eb ^ uint(lowerByte(b[n/2]))*0xc2b3 ^ uint(lowerByte(b[n-1]))*0x27d5
	return int((h ^ h>>8) % uint(len(labels)))
}

// lookupLabel returns the field whose label is b, ASCII case ignored.
func lookupLabel(b []byte) (Field, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for i := labelHash(b); labels[i].lower != ""; i = (i + 1) % len(labels) {
		s := &labels[i]
		if string(b) == s.printed || equalLower(b, s.lower) {
			return s.f, true
		}
	}
	return 0, false
}

// equalLower says b in lower case (ASCII) is lower.
func equalLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if lowerByte(c) != lower[i] {
			return false
		}
	}
	return true
}

// String returns the field's key, as in vLLM's result.json where it has one
// ("median_ttft_ms").
func (f Field) String() string {
	if f < 0 || f >= NumFields {
		return "field(" + strconv.Itoa(int(f)) + ")"
	}
	return fields[f].key
}

// Metric returns the field's name as a result row's metric, in the seed's style:
// SERVER_<STAT>_<LATENCY> for latencies (SERVER_MEDIAN_TTFT, the name the default metrics
// use), the label in upper snake case otherwise (OUTPUT_THROUGHPUT).
func (f Field) Metric() string {
	switch f {
	case TotalRequests:
		return "TOTAL_REQUESTS"
	case SuccessfulRequests:
		return "SUCCESSFUL_REQUESTS"
	case FailedRequests:
		return "FAILED_REQUESTS"
	case Duration:
		return "BENCHMARK_DURATION"
	case InputTokens:
		return "TOTAL_INPUT_TOKENS"
	case GeneratedTokens:
		return "TOTAL_OUTPUT_TOKENS"
	case RequestThroughput:
		return "REQUEST_THROUGHPUT"
	case RequestGoodput:
		return "REQUEST_GOODPUT"
	case OutputThroughput:
		return "OUTPUT_THROUGHPUT"
	case TotalThroughput:
		return "TOTAL_THROUGHPUT"
	case UserThroughput:
		return "USER_THROUGHPUT"
	}
	if f < 0 || f >= NumFields {
		return f.String()
	}
	// "median_ttft_ms" -> "SERVER_MEDIAN_TTFT"
	stat, rest, _ := strings.Cut(fields[f].key, "_")
	lat, _, _ := strings.Cut(rest, "_")
	return "SERVER_" + strings.ToUpper(stat) + "_" + strings.ToUpper(lat)
}

// Label returns the label the client prints for the field, without the colon.
func (f Field) Label() string {
	if f < 0 || f >= NumFields {
		return f.String()
	}
	return labelTitle(fields[f].labels[0])
}

// Unit returns the field's unit: ms, s, tok/s, req/s, tokens or count.
func (f Field) Unit() string {
	if f < 0 || f >= NumFields {
		return ""
	}
	return fields[f].unit
}

func labelTitle(l string) string {
	switch l {
	case "total requests":
		return "Total requests"
	case "successful requests":
		return "Successful requests"
	case "failed requests":
		return "Failed requests"
	case "benchmark duration (s)":
		return "Benchmark duration (s)"
	case "total input tokens":
		return "Total input tokens"
	case "total generated tokens":
		return "Total generated tokens"
	case "request throughput (req/s)":
		return "Request throughput (req/s)"
	case "output token throughput (tok/s)":
		return "Output token throughput (tok/s)"
	case "total token throughput (tok/s)":
		return "Total Token throughput (tok/s)"
	case "user throughput (tok/s)":
		return "User throughput (tok/s)"
	case "request goodput (req/s)":
		return "Request goodput (req/s)"
	}
	// "median ttft (ms)" -> "Median TTFT (ms)"
	b := []byte(l)
	b[0] -= 'a' - 'A'
	sp := bytes.IndexByte(b, ' ')
	end := bytes.LastIndexByte(b, ' ')
	for i := sp + 1; i < end; i++ {
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// Block is one "Serving Benchmark Result" block of the client log.
type Block struct {
	// Concurrency is the test's configured concurrency this block belongs to. ReadBench
	// sets it to LogConcurrency; Judge divides by the number of gen servers and sets 0 for
	// warmups and for concurrencies not in the test's list.
	Concurrency int
	// LogConcurrency is N of the enclosing "Benchmarking with concurrency N" /
	// "Benchmark with concurrency N done" lines (the configured value times the number of
	// gen servers); 0 for a block outside any such pair.
	LogConcurrency int
	// Prompts is the prompt count the start line announces ("... 80 prompts"); 0 if absent.
	Prompts int
	// Line and EndLine are the 1-based lines of the block's header and last line read.
	Line, EndLine int
	// Warmup marks a block that is not a concurrency's result: outside any start/done pair,
	// or followed by another block before the done line.
	Warmup bool
	// Closed says the closing "=====" rule was read; a block cut short lacks it.
	Closed bool
	// Done says the concurrency's done line followed the block.
	Done bool

	// The printed values, named as the Field constants; Has says which were printed.
	// Counts and tokens are whole numbers held as float64; latencies are in ms.
	TotalRequests, SuccessfulRequests, FailedRequests float64
	Duration                                          float64 // seconds
	InputTokens, GeneratedTokens                      float64
	RequestThroughput                                 float64 // req/s
	OutputThroughput, TotalThroughput, UserThroughput float64 // tok/s
	MeanTTFT, MedianTTFT, StdTTFT, P99TTFT            float64
	MeanTPOT, MedianTPOT, StdTPOT, P99TPOT            float64
	MeanITL, MedianITL, StdITL, P99ITL                float64
	MeanE2EL, MedianE2EL, StdE2EL, P99E2EL            float64
	P90TTFT, P90TPOT, P90ITL, P90E2EL                 float64
	RequestGoodput                                    float64 // req/s meeting the SLOs

	present uint64
}

// ptr returns the struct field holding f.
func (b *Block) ptr(f Field) *float64 {
	switch f {
	case TotalRequests:
		return &b.TotalRequests
	case SuccessfulRequests:
		return &b.SuccessfulRequests
	case FailedRequests:
		return &b.FailedRequests
	case Duration:
		return &b.Duration
	case InputTokens:
		return &b.InputTokens
	case GeneratedTokens:
		return &b.GeneratedTokens
	case RequestThroughput:
		return &b.RequestThroughput
	case OutputThroughput:
		return &b.OutputThroughput
	case TotalThroughput:
		return &b.TotalThroughput
	case UserThroughput:
		return &b.UserThroughput
	case MeanTTFT:
		return &b.MeanTTFT
	case MedianTTFT:
		return &b.MedianTTFT
	case StdTTFT:
		return &b.StdTTFT
	case P99TTFT:
		return &b.P99TTFT
	case MeanTPOT:
		return &b.MeanTPOT
	case MedianTPOT:
		return &b.MedianTPOT
	case StdTPOT:
		return &b.StdTPOT
	case P99TPOT:
		return &b.P99TPOT
	case MeanITL:
		return &b.MeanITL
	case MedianITL:
		return &b.MedianITL
	case StdITL:
		return &b.StdITL
	case P99ITL:
		return &b.P99ITL
	case MeanE2EL:
		return &b.MeanE2EL
	case MedianE2EL:
		return &b.MedianE2EL
	case StdE2EL:
		return &b.StdE2EL
	case P99E2EL:
		return &b.P99E2EL
	case P90TTFT:
		return &b.P90TTFT
	case P90TPOT:
		return &b.P90TPOT
	case P90ITL:
		return &b.P90ITL
	case P90E2EL:
		return &b.P90E2EL
	case RequestGoodput:
		return &b.RequestGoodput
	}
	return nil
}

// Get returns a field's value and whether the block printed it.
func (b *Block) Get(f Field) (float64, bool) {
	if f < 0 || f >= NumFields || b.present&(1<<f) == 0 {
		return 0, false
	}
	return *b.ptr(f), true
}

// Has says whether the block printed the field.
func (b *Block) Has(f Field) bool { return f >= 0 && f < NumFields && b.present&(1<<f) != 0 }

// Set records a field's value.
func (b *Block) Set(f Field, v float64) {
	if f < 0 || f >= NumFields {
		return
	}
	*b.ptr(f) = v
	b.present |= 1 << f
}

// Complete says the block was closed and printed the request and token counts.
func (b *Block) Complete() bool {
	return b.Closed && b.Has(SuccessfulRequests) && b.Has(Duration) && b.Has(GeneratedTokens)
}

// Fields returns the printed fields by key ("median_ttft_ms").
func (b *Block) Fields() map[string]float64 {
	m := make(map[string]float64, NumFields)
	for f := range NumFields {
		if v, ok := b.Get(f); ok {
			m[f.String()] = v
		}
	}
	return m
}

// MarshalJSON writes the block with its fields flattened; NaN and infinities become null.
func (b Block) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"concurrency":     b.Concurrency,
		"log_concurrency": b.LogConcurrency,
		"line":            b.Line,
		"end_line":        b.EndLine,
		"warmup":          b.Warmup,
		"closed":          b.Closed,
		"done":            b.Done,
		"complete":        b.Complete(),
	}
	if b.Prompts > 0 {
		m["prompts"] = b.Prompts
	}
	for f := range NumFields {
		if v, ok := b.Get(f); ok {
			m[f.String()] = jsonFloat(v)
		}
	}
	return json.Marshal(m)
}

func jsonFloat(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return v
}

// maxPending bounds the blocks held while a concurrency's run is open; older ones are
// emitted early as warmups so memory stays flat on any input.
const maxPending = 16

// maxLine bounds one line; the rest of a longer line (a progress bar redrawn without a
// newline) is skipped.
const maxLine = 64 << 10

// readBuffer is the read chunk size.
const readBuffer = 256 << 10

// ReadBench reads every result block of a benchmark client log.
func ReadBench(r io.Reader) ([]Block, error) {
	var out []Block
	err := ScanBench(r, func(b Block) error {
		out = append(out, b)
		return nil
	})
	return out, err
}

// ScanBench streams the result blocks of a benchmark client log to fn, in order, holding
// at most a few blocks in memory. A block is tied to its concurrency by the surrounding
// "Benchmarking with concurrency N" and "Benchmark with concurrency N done" lines; the
// last block before the done line is the result, earlier ones are warmups. CR, CRLF and
// ANSI colour codes are ignored. An error from fn stops the scan and is returned.
func ScanBench(r io.Reader, fn func(Block) error) error {
	p := benchParser{emit: fn}
	ls := newLineScanner(r)
	defer ls.release()
	for ls.Scan() {
		if err := p.line(ls.Bytes(), ls.Line()); err != nil {
			return err
		}
	}
	if err := ls.Err(); err != nil {
		return err
	}
	return p.finish()
}

type benchParser struct {
	emit    func(Block) error
	cur     *Block
	curBuf  Block
	inSpan  bool
	span    int // log concurrency of the open span
	prompts int
	pending []Block
	scratch []byte
	lastNo  int
}

func (p *benchParser) line(raw []byte, no int) error {
	p.lastNo = no
	line := raw
	if bytes.IndexByte(line, 0x1b) >= 0 {
		p.scratch = stripANSI(p.scratch[:0], line)
		line = p.scratch
	}
	line = trimASCII(line)
	if len(line) == 0 {
		return nil
	}
	if line[0] == '=' {
		if allByte(line, '=') {
			if p.cur != nil && len(line) >= 20 && p.cur.present != 0 {
				p.cur.Closed = true
				p.cur.EndLine = no
				return p.endBlock()
			}
			return nil
		}
		if bytes.Contains(line, []byte("Benchmark Result")) {
			if err := p.endBlock(); err != nil {
				return err
			}
			p.curBuf = Block{Line: no, EndLine: no, LogConcurrency: p.spanConcurrency(), Prompts: p.spanPrompts()}
			p.curBuf.Concurrency = p.curBuf.LogConcurrency
			p.cur = &p.curBuf
			return nil
		}
	}
	if p.cur != nil && line[0] != '-' {
		if colon := bytes.IndexByte(line, ':'); colon > 0 && colon < 64 {
			if f, ok := lookupLabel(trimASCII(line[:colon])); ok {
				if v, ok := parseNumber(line[colon+1:]); ok {
					p.cur.Set(f, v)
				}
				p.cur.EndLine = no
				return nil
			}
		}
	}
	if p.cur == nil && p.inSpan && len(p.pending) > 0 && hasPrefixFold(line, totalFailed) {
		// The nv_sa flow prints the point's failed requests after its block (upstream's
		// "Total failed requests: N", read from result.json): it belongs to that block.
		if v, ok := parseNumber(line[len(totalFailed):]); ok {
			p.pending[len(p.pending)-1].Set(FailedRequests, v)
		}
		return nil
	}
	if n, prompts, done, ok := parseMarker(line); ok {
		return p.marker(n, prompts, done)
	}
	return nil
}

var totalFailed = []byte("total failed requests:")

func hasPrefixFold(b, prefix []byte) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], prefix)
}

func (p *benchParser) spanConcurrency() int {
	if p.inSpan {
		return p.span
	}
	return 0
}

func (p *benchParser) spanPrompts() int {
	if p.inSpan {
		return p.prompts
	}
	return 0
}

// endBlock files the open block, if any, under the open span or as a warmup.
func (p *benchParser) endBlock() error {
	if p.cur == nil {
		return nil
	}
	b := *p.cur
	p.cur = nil
	if !p.inSpan {
		b.Warmup = true
		return p.emit(b)
	}
	if len(p.pending) == maxPending {
		w := p.pending[0]
		w.Warmup = true
		copy(p.pending, p.pending[1:])
		p.pending = p.pending[:len(p.pending)-1]
		if err := p.emit(w); err != nil {
			return err
		}
	}
	p.pending = append(p.pending, b)
	return nil
}

// closeSpan emits the open span's blocks: the last one is the result, the others warmups.
func (p *benchParser) closeSpan(done bool) error {
	if !p.inSpan {
		return nil
	}
	p.inSpan = false
	for i := range p.pending {
		b := p.pending[i]
		b.Done = done
		b.Warmup = i < len(p.pending)-1
		if err := p.emit(b); err != nil {
			return err
		}
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *benchParser) marker(n, prompts int, done bool) error {
	if err := p.endBlock(); err != nil {
		return err
	}
	if done {
		return p.closeSpan(p.inSpan && n == p.span)
	}
	if err := p.closeSpan(false); err != nil {
		return err
	}
	p.inSpan, p.span, p.prompts = true, n, prompts
	return nil
}

func (p *benchParser) finish() error {
	if p.cur != nil {
		p.cur.EndLine = p.lastNo
	}
	if err := p.endBlock(); err != nil {
		return err
	}
	return p.closeSpan(false)
}

var (
	withConcurrency = []byte("with concurrency ")
	benchmarking    = []byte("Benchmarking ")
	benchmarkWord   = []byte("Benchmark ")
)

// parseMarker recognises "Benchmarking with concurrency N ... P prompts" and
// "Benchmark with concurrency N done", also after a prefix such as a timestamp.
func parseMarker(line []byte) (n, prompts int, done, ok bool) {
	i := bytes.Index(line, withConcurrency)
	if i < 0 {
		return 0, 0, false, false
	}
	before := line[:i]
	start := bytes.HasSuffix(before, benchmarking)
	if !start && !bytes.HasSuffix(before, benchmarkWord) {
		return 0, 0, false, false
	}
	rest := line[i+len(withConcurrency):]
	n, k := leadingInt(rest)
	if k == 0 {
		return 0, 0, false, false
	}
	rest = rest[k:]
	if !start {
		if !bytes.HasPrefix(trimASCII(rest), []byte("done")) {
			return 0, 0, false, false
		}
		return n, 0, true, true
	}
	if j := bytes.Index(rest, []byte(" prompts")); j > 0 {
		k := j
		for k > 0 && rest[k-1] >= '0' && rest[k-1] <= '9' {
			k--
		}
		prompts, _ = leadingInt(rest[k:j])
	}
	return n, prompts, false, true
}

func leadingInt(b []byte) (int, int) {
	n, k := 0, 0
	for k < len(b) && b[k] >= '0' && b[k] <= '9' && k < 9 {
		n = n*10 + int(b[k]-'0')
		k++
	}
	return n, k
}

// parseNumber reads the first whitespace-separated token of b as a number.
func parseNumber(b []byte) (float64, bool) {
	b = trimASCII(b)
	end := 0
	for end < len(b) && b[end] != ' ' && b[end] != '\t' {
		end++
	}
	if end == 0 || end > 40 {
		return 0, false
	}
	if v, ok := fastDecimal(b[:end]); ok {
		return v, true
	}
	v, err := strconv.ParseFloat(string(b[:end]), 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// fastDecimal reads the client's plain decimals ("123", "45.67") exactly: with at most 15
// digits the mantissa and the power of ten are exact, so one correctly rounded division
// gives the same float64 as strconv.ParseFloat. Anything else reports false.
func fastDecimal(b []byte) (float64, bool) {
	var mant uint64
	digits, frac := 0, -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			mant = mant*10 + uint64(c-'0')
			digits++
		case c == '.' && frac < 0 && i > 0:
			frac = i
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 15 || frac == len(b)-1 {
		return 0, false
	}
	v := float64(mant)
	if frac >= 0 {
		v /= pow10[len(b)-1-frac]
	}
	return v, true
}

// spaces8 is eight spaces read as one little-endian word: the client pads its values
// with runs of spaces, skipped a word at a time.
const spaces8 = 0x2020202020202020

func trimASCII(b []byte) []byte {
	for len(b) >= 8 && binary.LittleEndian.Uint64(b) == spaces8 {
		b = b[8:]
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r' || b[0] == '\f' || b[0] == '\v') {
		b = b[1:]
	}
	for len(b) >= 8 && binary.LittleEndian.Uint64(b[len(b)-8:]) == spaces8 {
		b = b[:len(b)-8]
	}
	for len(b) > 0 {
		c := b[len(b)-1]
		if c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v' {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}

func allByte(b []byte, c byte) bool {
	for _, x := range b {
		if x != c {
			return false
		}
	}
	return true
}

// stripANSI appends b to dst without ANSI escape sequences (CSI "ESC [ ... final", OSC
// "ESC ] ... BEL|ESC \", and two-byte escapes).
func stripANSI(dst, b []byte) []byte {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != 0x1b {
			dst = append(dst, c)
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case '[':
			// Parameter and intermediate bytes, then one final byte.
			j := i + 2
			for j < len(b) && b[j] >= 0x20 && b[j] <= 0x3f {
				j++
			}
			if j < len(b) && b[j] >= 0x40 && b[j] <= 0x7e {
				i = j
			} else {
				i = j - 1
			}
		case ']':
			// OSC runs to BEL or ESC \; a newline ends it too and is kept.
			j := i + 2
			for j < len(b) {
				if b[j] == 0x07 {
					break
				}
				if b[j] == '\n' {
					j--
					break
				}
				if b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\' {
					j++
					break
				}
				j++
			}
			i = j
		default:
			// A two-byte escape; a control byte after ESC is not part of it.
			if b[i+1] >= 0x20 {
				i++
			}
		}
	}
	return dst
}

// lineScanner splits input at \n, \r and \r\n, counts lines by \n, and skips the tail of
// any line longer than maxLine.
type lineScanner struct {
	sc       *bufio.Scanner
	buf      *[]byte // from scanBuffers; back there on release
	line     int     // 1-based line of the current token
	next     int     // line number of the next token
	skipping bool
	searched int // bytes at the start of the pending data known to hold no line end
	nlFree   int // bytes at the start of the pending data known to hold no \n
}

// scanBuffers keeps read buffers between scans: a collector judges many small logs, and
// a fresh buffer each time would cost more than the parsing.
var scanBuffers = sync.Pool{New: func() any { b := make([]byte, readBuffer); return &b }}

func newLineScanner(r io.Reader) *lineScanner {
	ls := &lineScanner{next: 1, buf: scanBuffers.Get().(*[]byte)}
	ls.sc = bufio.NewScanner(r)
	// Read in large chunks; lines longer than maxLine are cut by split, not by the buffer.
	ls.sc.Buffer((*ls.buf)[:0], readBuffer)
	ls.sc.Split(ls.split)
	return ls
}

// release hands the buffer back; no token of the scan may be used after it.
func (ls *lineScanner) release() {
	if ls.buf != nil {
		scanBuffers.Put(ls.buf)
		ls.buf = nil
	}
}

func (ls *lineScanner) split(data []byte, atEOF bool) (int, []byte, error) {
	if len(data) == 0 {
		return 0, nil, nil
	}
	// data[:ls.searched] is known to hold no line end: a slow reader that adds a few bytes
	// per call must not make the search quadratic.
	// data[:ls.nlFree] holds no \n either: in a file of bare-\r lines the search for
	// the next \n must not rescan the whole buffer at every \r.
	from := min(ls.searched, len(data))
	nlFrom := max(from, min(ls.nlFree, len(data)))
	nl := bytes.IndexByte(data[nlFrom:], '\n')
	if nl >= 0 {
		nl += nlFrom
	}
	i, window := nl, data[from:]
	if nl >= 0 {
		window = data[from:nl]
	}
	if j := bytes.IndexByte(window, '\r'); j >= 0 {
		i = j + from
	}
	if i >= 0 {
		ls.searched = 0
		ls.nlFree = 0
		if data[i] == '\r' {
			if nl < 0 {
				nl = len(data)
			}
			ls.nlFree = nl - (i + 1)
		}
		ls.line = ls.next
		if data[i] == '\n' {
			ls.next++
		}
		tok := data[:i]
		if ls.skipping || i > maxLine {
			// The tail of an overlong line, or all of one that arrived in one read: dropped
			// alike, whatever the read sizes.
			ls.skipping = false
			tok = data[:0]
		}
		return i + 1, tok, nil
	}
	ls.searched = len(data)
	ls.nlFree = len(data)
	if atEOF {
		ls.searched, ls.nlFree = 0, 0
		ls.line = ls.next
		tok := data
		if ls.skipping || len(data) > maxLine {
			tok = data[:0]
		}
		return len(data), tok, nil
	}
	if len(data) >= maxLine {
		// Overlong: emit nothing, drop what is buffered and skip to the line's end.
		ls.skipping = true
		ls.searched, ls.nlFree = 0, 0
		return len(data), nil, nil
	}
	return 0, nil, nil
}

func (ls *lineScanner) Scan() bool    { return ls.sc.Scan() }
func (ls *lineScanner) Bytes() []byte { return ls.sc.Bytes() }
func (ls *lineScanner) Line() int     { return ls.line }
func (ls *lineScanner) Err() error    { return ls.sc.Err() }
