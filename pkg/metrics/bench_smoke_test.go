package metrics

import (
	"strings"
	"testing"
)

func TestSmokeBench(t *testing.T) {
	log := "Benchmarking with concurrency 8 ... 80 prompts\r\n" +
		"============ Serving Benchmark Result ============\n" +
		"\x1b[32mSuccessful requests:                     80        \x1b[0m\n" +
		"Benchmark duration (s):                  12.34     \n" +
		"Total generated tokens:                  1000      \n" +
		"Median TTFT (ms):                        55.10     \n" +
		"==================================================\n" +
		"Benchmark with concurrency 8 done\n"
	bs, err := ReadBench(strings.NewReader(log))
	if err != nil || len(bs) != 1 {
		t.Fatal(err, bs)
	}
	b := bs[0]
	if v, _ := b.Get(MedianTTFT); v != 55.10 || !b.Complete() || !b.Done || b.LogConcurrency != 8 || b.Prompts != 80 {
		t.Fatalf("%+v", b)
	}
	t.Log(MedianTTFT.Label(), StdE2EL.Label(), TotalThroughput.Label())
}
