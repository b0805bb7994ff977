package config

import (
	"slices"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/testspec"
)

func TestMetricsOverrideFieldByField(t *testing.T) {
	text := edit(t, baseYAML(t), "  multi_round: 8\n", "  multi_round: 8\n  metrics:\n    log_file: custom.log\n")
	tt, ps := loadValidate(t, "x.yaml", text)
	if HasErrors(ps) {
		t.Fatal(dump(ps))
	}
	m, d := tt.Metrics(), testspec.DefaultMetrics("disagg", "perf")
	if m.LogFile != "custom.log" || m.ExtractorPattern != d.ExtractorPattern || !slices.Equal(m.MetricNames, d.MetricNames) {
		t.Errorf("metrics = %+v", m)
	}
	// The returned names are a copy.
	m.MetricNames[0] = "changed"
	if testspec.DefaultMetrics("disagg", "perf").MetricNames[0] == "changed" {
		t.Error("DefaultMetrics shares its slice")
	}
}

func TestHash(t *testing.T) {
	a, _ := LoadBytes("cfg/disagg/perf/x.yaml", []byte(baseYAML(t)))
	// Same config written differently: list form, a comment, sections reordered.
	other := edit(t, baseYAML(t), `"1 2 4 8 16 32"`, "[1, 2, 4, 8, 16, 32] # same")
	i := strings.Index(other, "hardware:")
	j := strings.Index(other, "environment:")
	other = other[i:j] + other[:i] + other[j:]
	b, ps := LoadBytes("cfg/disagg/perf/y.yaml", []byte(other))
	if HasErrors(ps) {
		t.Fatal(dump(ps))
	}
	if a.Hash() != b.Hash() || len(a.Hash()) != 16 {
		t.Errorf("hash %s != %s", a.Hash(), b.Hash())
	}
	c, _ := LoadBytes("cfg/disagg/perf/x.yaml", []byte(edit(t, baseYAML(t), "free_gpu_memory_fraction: 0.85", "free_gpu_memory_fraction: 0.8")))
	if c.Hash() == a.Hash() {
		t.Error("a carried-through option change does not change the hash")
	}
	d, _ := LoadBytes("cfg/wideep/perf/x.yaml", []byte(baseYAML(t)))
	if d.Hash() == a.Hash() {
		t.Error("test type does not change the hash")
	}
}
