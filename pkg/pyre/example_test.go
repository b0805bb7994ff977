package pyre_test

import (
	"fmt"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

func ExampleCompile() {
	re, err := pyre.Compile(`
		Median\ TTFT\ \(ms\):\s+([\d.]+)   # verbose, as the seed writes it
		(?:.*\n)*?
		.*Benchmark\ with\ concurrency\ (\d+)\ done`)
	fmt.Println(err)
	fmt.Println(re.FindStringSubmatch("Median TTFT (ms):   12.5\n...\nBenchmark with concurrency 8 done")[1:])
	_, err = pyre.Compile(`(?<=TTFT)\s+(\d+)`)
	fmt.Println(err)
	// Output:
	// <nil>
	// [12.5 8]
	// extractor pattern at offset 0 ("(?<=TTFT)\\s+"): lookbehind (?<=...) is not supported by Go's regexp; match the text and use a group instead
}
