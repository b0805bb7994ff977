package main

import (
	"bytes"
	"io"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config/configtest"
)

// BenchmarkValidateCommand runs `planner validate DIR` as the command line does (flag
// parsing, discovery, loading, resolving with the environment, validation, the job
// script checks and the output) on 10,000 generated configs, and reports ns/config.
//
//	go test -run '^$' -bench ValidateCommand -benchtime=3x ./services/planner
func BenchmarkValidateCommand(b *testing.B) {
	const n = 10_000
	dir := b.TempDir()
	configtest.WriteBenchConfigs(b, dir, n)
	b.Setenv("SLURM_ACCOUNT", "benchmark")
	var stderr bytes.Buffer
	b.ResetTimer()
	for b.Loop() {
		stderr.Reset()
		if code := runValidate([]string{dir}, io.Discard, &stderr); code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	if want := "10,000 files checked, 0 invalid"; !bytes.Contains(stderr.Bytes(), []byte("files checked, 0 invalid")) {
		b.Fatalf("stderr %q, want %q", stderr.String(), want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/config")
}
