package metrics

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

// seedDisaggPattern is the seed's default disagg perf pattern as it writes it for Python's
// re with re.VERBOSE | re.MULTILINE: lazy skips between the medians and the done line.
const seedDisaggPattern = `
    Median\ TTFT\ \(ms\):\s+([\d.]+)        # median time to first token
    (?:.*\n)*?                              # any lines
    .*Median\ E2EL\ \(ms\):\s+([\d.]+)      # median end-to-end latency
    (?:.*\n)*?                              # any lines
    .*Benchmark\ with\ concurrency\ (\d+)\ done
`

const seedAccuracyPattern = `\|([a-zA-Z0-9_-]+)\|.*?\|([\w-]+)\|.*?\|exact_match\|.*?\|([0-9.]+)\|`

// On a log without warmups the seed's pattern and the block reader agree.
func TestSeedPatternAgreesWithoutWarmups(t *testing.T) {
	var spans []span
	for i, c := range []int{1, 2, 4, 8} {
		spans = append(spans, span{conc: c, prompts: 10 * c, run: makeRun(c, 10*c, float64(i))})
	}
	log := clientLog(spans, false)
	log = log[strings.Index(log, "Benchmarking"):] // no warmup before the first span
	re, err := pyre.Compile(seedDisaggPattern)
	if err != nil {
		t.Fatal(err)
	}
	var seed []string
	for _, m := range re.FindAllStringSubmatch(log, -1) {
		seed = append(seed, m[3]+" "+m[1]+" "+m[2])
	}
	bs, _ := ReadBench(strings.NewReader(log))
	var ours []string
	for _, b := range bs {
		ours = append(ours, strconv.Itoa(b.LogConcurrency)+" "+strconv.FormatFloat(b.MedianTTFT, 'f', 2, 64)+" "+strconv.FormatFloat(b.MedianE2EL, 'f', 2, 64))
	}
	if strings.Join(seed, "\n") != strings.Join(ours, "\n") || len(ours) != 4 {
		t.Errorf("seed pattern:\n%s\nblock reader:\n%s", strings.Join(seed, "\n"), strings.Join(ours, "\n"))
	}
}

// With warmups (no E2EL section) the seed's pattern pairs the warmup's TTFT with the
// run's E2EL; the block reader does not.
func TestSeedPatternWarmupDefect(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "jobs", "disagg_ok", ClientLog))
	if err != nil {
		t.Fatal(err)
	}
	re, _ := pyre.Compile(seedDisaggPattern)
	m := re.FindStringSubmatch(string(data))
	if m == nil || m[1] != "7766.66" || m[2] != "10500.00" || m[3] != "2" {
		t.Fatalf("seed pattern first match %q, expected the warmup pairing", m)
	}
	res := Judge(filepath.Join("testdata", "jobs", "disagg_ok"), Input{TestType: "disagg", Category: "perf", Concurrencies: []int{1, 2, 4}, NumGenServers: 2})
	if res.Perf[0].Value != 180 {
		t.Errorf("block reader first TTFT %v, want 180", res.Perf[0].Value)
	}
}

// The translation gives Go the same matches Python's re finds, where python3 exists.
func TestTranslateMatchesPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	ok, _ := os.ReadFile(filepath.Join("testdata", "jobs", "disagg_ok", ClientLog))
	acc, _ := os.ReadFile(filepath.Join("testdata", "jobs", "accuracy_gsm8k", "7_accuracy_eval_gsm8k.log"))
	cases := []struct{ Pattern, Text string }{
		{seedDisaggPattern, string(ok)},
		{seedAccuracyPattern, string(acc)},
		{`(?i) median \s+ ttft [^:]*: \s* ([\d.]+)`, string(ok)},
		{`^Mean\ (\w+)\ \(ms\):[ ]+([\d.]+)$`, string(ok)},
		{`(?s)Benchmarking(.{0,40}?)prompts`, string(ok)},
		{`(?P<c>\d+)\ prompts # comment`, string(ok)},
		{`\| ([a-z]+) [ ]* \| (?: [^|]* \|){3} ([a-z_]+)`, string(acc)},
		{`([#\ ]+)x(?#inline)`, "a # #x b"},
		{`a{,2}b{1,}c{2}`, "aabbbcc abcc c"},
		{`[]a-c]+`, "x]abca]y"},
		{`\x41\101\u0042(\d)\Z`, "ABB1\nAAB2"},
		{`(?x: a b ) (?-x: c d)`, "abc d"},
		{`(?i:TTFT)\b`, "ttft TTFTs Ttft"},
		{`\d+(?:\.\d+)? \s* ms`, "12 ms 3.5ms 7"},
	}
	in, _ := json.Marshal(cases)
	script := `
import json, re, sys
out = []
for c in json.load(sys.stdin):
    rx = re.compile(c["Pattern"], re.VERBOSE | re.MULTILINE)
    out.append([[g or "" for g in ([m.group(0)] + list(m.groups()))] for m in rx.finditer(c["Text"])])
json.dump(out, sys.stdout)
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	outData, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want [][][]string
	if err := json.Unmarshal(outData, &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		re, err := pyre.Compile(c.Pattern)
		if err != nil {
			t.Errorf("case %d %q: %v", i, c.Pattern, err)
			continue
		}
		got := re.FindAllStringSubmatch(c.Text, -1)
		if len(got) == 0 && len(want[i]) == 0 {
			continue
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want[i])
		if string(gj) != string(wj) {
			t.Errorf("case %d %q (Go %q):\nGo:     %.400s\nPython: %.400s", i, c.Pattern, re.String(), gj, wj)
		}
	}
}
