package pyre

import "testing"

// The seed framework's two extractor patterns, in its own verbose Python syntax.
const seedDisaggPattern = `
    Median\ TTFT\ \(ms\):\s+([\d.]+)        # median time to first token
    (?:.*\n)*?                              # any lines
    .*Median\ E2EL\ \(ms\):\s+([\d.]+)      # median end-to-end latency
    (?:.*\n)*?                              # any lines
    .*Benchmark\ with\ concurrency\ (\d+)\ done
`

const seedAccuracyPattern = `\|([a-zA-Z0-9_-]+)\|.*?\|([\w-]+)\|.*?\|exact_match\|.*?\|([0-9.]+)\|`

// FuzzCompile: any pattern is translated or refused without panic; an accepted
// one compiles and runs.
func FuzzCompile(f *testing.F) {
	for _, p := range []string{seedDisaggPattern, seedAccuracyPattern, `(?i)a(?P<x>b)c\1`, `(?<=a)b`, `[\]a-z#]+ # c`,
		`a{,3}`, `(?x-i:a)`, `\u00e9\N{X}`, `(?#c)(?:.*\n)*?`, `a*+`, `\101\0\x4`, `(?`, `[`, `\`} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		re, err := Compile(pattern)
		if (err == nil) != (Check(pattern) == nil) {
			t.Fatal("Check and Compile disagree")
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		re.FindAllStringSubmatchIndex("Median TTFT (ms): 12.5\nBenchmark with concurrency 4 done\n|gsm8k|x|", -1)
	})
}
