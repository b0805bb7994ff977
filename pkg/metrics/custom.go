package metrics

import (
	"bytes"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

// maxCustomLog bounds how much of one custom metrics log is read: a pattern may span
// lines, so the file is matched whole. maxCustomMatches bounds the matches kept.
const (
	maxCustomLog     = 64 << 20
	maxCustomMatches = 100000
)

// custom applies the custom spec to its log files. It returns the values of each
// configured concurrency (in name order) and the concurrencies in the order first seen.
func (j *judge) custom() (map[int][]float64, []int) {
	s := j.in.Custom
	re, err := pyre.Compile(s.ExtractorPattern)
	if err != nil {
		j.reason("metrics.extractor_pattern: %v", err)
		return nil, nil
	}
	if n := re.NumSubexp(); n != len(s.MetricNames)+1 {
		j.reason("metrics.extractor_pattern has %d groups but metric_names has %d names: it needs %d (one per name, then the concurrency)", n, len(s.MetricNames), len(s.MetricNames)+1)
		return nil, nil
	}
	files := []string{j.file}
	if j.file == "" {
		files, err = j.f.glob(s.LogFile)
		if err != nil {
			j.reason("metrics.log_file %q: %v", s.LogFile, err)
			return nil, nil
		}
		if len(files) == 0 {
			j.reason("metrics.log_file %q matches no file in %s", s.LogFile, j.dir)
			return nil, nil
		}
	}
	values := map[int][]float64{}
	var text []byte
	where := map[int]string{}
	var order []int
	for _, path := range files {
		f, err := j.open(path, maxCustomLog)
		if err == nil {
			var data []byte
			if data, err = readLimited(f, path, maxCustomLog); err == nil {
				text = NormalizeLog(data)
			}
		}
		if err != nil {
			j.reason("metrics log: %v", err)
			continue
		}
		name := filepath.Base(path)
		line, last := 1, 0
		// At most maxCustomMatches: every match FindAll returns is kept in memory, which a
		// pattern matching everywhere in a large file turns into gigabytes.
		matches := re.FindAllSubmatchIndex(text, maxCustomMatches+1)
		if len(matches) > maxCustomMatches {
			j.reason("%s: the pattern matched more than %d times; only the first %d are read", name, maxCustomMatches, maxCustomMatches)
			matches = matches[:maxCustomMatches]
		}
		for _, m := range matches {
			line += bytes.Count(text[last:m[0]], []byte{'\n'})
			last = m[0]
			at := name + ":" + strconv.Itoa(line)
			c, vals, ok := j.customMatch(text, m, at)
			if !ok {
				continue
			}
			if prev, ok := where[c]; ok {
				j.warn("concurrency %d matched more than once (%s and %s); the later match is used", c, prev, at)
			} else {
				order = append(order, c)
			}
			values[c], where[c] = vals, at
		}
	}
	return values, order
}

func group(text []byte, m []int, i int) string {
	a, b := m[2*i+2], m[2*i+3]
	if a < 0 {
		return ""
	}
	return strings.TrimSpace(string(text[a:b]))
}

// NormalizeLog returns text with ANSI escape sequences removed and CRLF and lone CR line
// ends turned into LF, so a pattern sees lines as a reader of the log does.
func NormalizeLog(data []byte) []byte {
	if bytes.IndexByte(data, '\r') < 0 && bytes.IndexByte(data, 0x1b) < 0 {
		return data
	}
	out := make([]byte, 0, len(data))
	if bytes.IndexByte(data, 0x1b) >= 0 {
		out = stripANSI(out, data)
	} else {
		out = append(out, data...)
	}
	w := 0
	for i := 0; i < len(out); i++ {
		c := out[i]
		if c == '\r' {
			if i+1 < len(out) && out[i+1] == '\n' {
				continue
			}
			c = '\n'
		}
		out[w] = c
		w++
	}
	return out[:w]
}

// customMatch reads one match of the custom pattern: the concurrency from its last
// group (in the configured list) and a value per metric name; ok is false when the
// match is skipped (the reason or warning is recorded).
func (j *judge) customMatch(text []byte, m []int, at string) (c int, vals []float64, ok bool) {
	names := j.in.Custom.MetricNames
	k := len(names)
	cs := group(text, m, k)
	n, err := strconv.Atoi(cs)
	if err != nil {
		if f, ferr := strconv.ParseFloat(cs, 64); ferr == nil && f == float64(int(f)) {
			n, err = int(f), nil
		}
	}
	if err != nil || n <= 0 {
		j.reason("%s: the pattern's last group %q is not a concurrency", at, cs)
		return 0, nil, false
	}
	c, ok = j.configConcurrency(n)
	if !ok {
		j.warn("%s: concurrency %d is not in the concurrency list %v (times %d gen servers)", at, n, j.in.Concurrencies, j.g)
		return 0, nil, false
	}
	vals = make([]float64, k)
	for i := range k {
		g := group(text, m, i)
		v, err := strconv.ParseFloat(g, 64)
		if err != nil {
			j.reason("%s: metric %s value %q is not a number", at, names[i], g)
			ok = false
		}
		vals[i] = v
	}
	return c, vals, ok
}
