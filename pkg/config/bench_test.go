package config

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config/configtest"
)

const benchConfigs = 10_000

// writeBenchConfigs writes n distinct valid configs under dir/{disagg,wideep}/perf/.
func writeBenchConfigs(tb testing.TB, dir string, n int) { configtest.WriteBenchConfigs(tb, dir, n) }

// BenchmarkLoadValidate discovers, loads, resolves and validates 10,000 generated
// configs per iteration and reports ns/config.
func BenchmarkLoadValidate(b *testing.B) {
	dir := b.TempDir()
	writeBenchConfigs(b, dir, benchConfigs)
	env := Env{"SLURM_ACCOUNT": "benchmark"}
	b.ResetTimer()
	for b.Loop() {
		tests, _, err := Discover(dir)
		if err != nil || len(tests) != benchConfigs {
			b.Fatalf("%d tests, %v", len(tests), err)
		}
		for _, t := range tests {
			t.Resolve(nil, env)
			if ps := t.Validate(); HasErrors(ps) {
				b.Fatalf("%s:%s", t.Path, dump(ps))
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchConfigs), "ns/config")
}

// TestWriteBenchConfigs writes the benchmark's configs to $CONFIG_BENCH_DIR (unless it
// exists), so other loaders (the seed's Python one, testdata/seed_loader.py) can be timed
// on the same files, then times loading them here, in wall and CPU time.
func TestWriteBenchConfigs(t *testing.T) {
	dir := os.Getenv("CONFIG_BENCH_DIR")
	if dir == "" {
		t.Skip("set CONFIG_BENCH_DIR to write the benchmark configs")
	}
	if _, err := os.Stat(dir); err != nil {
		writeBenchConfigs(t, dir, benchConfigs)
	}
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	tests, _, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		tt.Resolve(nil, nil)
		if HasErrors(tt.Validate()) {
			t.Fatalf("%s invalid", tt.Path)
		}
	}
	wall := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	t.Logf("loaded and validated %d configs in %v wall (%v/config), %v CPU (%v/config)",
		len(tests), wall, wall/time.Duration(len(tests)), cpu, cpu/time.Duration(len(tests)))
}
