package main

import (
	"io"
	"os"
	"testing"
)

// BenchmarkParseCommand runs `collector parse` on a client log (PARSE_BENCH_LOG, for
// example 125 MB made by the metrics corpus), its table output discarded.
func BenchmarkParseCommand(b *testing.B) {
	path := os.Getenv("PARSE_BENCH_LOG")
	if path == "" {
		b.Skip("PARSE_BENCH_LOG names the client log to parse")
	}
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	for range b.N {
		if code := runParse([]string{"--type", "disagg", "--category", "perf", path}, io.Discard, io.Discard); code > 1 {
			b.Fatalf("exit %d", code)
		}
	}
}
