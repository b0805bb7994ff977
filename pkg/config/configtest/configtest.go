// Package configtest holds fixtures for tests of test configs: a valid base config, a
// config tree with a mix of tests, and small editing helpers.
package configtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Test ids of the tree SetupTree writes.
const (
	IDPerfA = "disagg_perf_alpha_1k1k"
	IDPerfB = "disagg_perf_beta_8k1k"
	IDAcc   = "disagg_accuracy_alpha_1k1k"
	IDWide  = "wideep_perf_gamma_1k1k"
	IDH100  = "wideep_stress_h100only"
	IDBad   = "disagg_perf_broken"
)

// AccuracySections turn the base config into an accuracy test's.
const AccuracySections = `
accuracy:
  enable_accuracy_test: true
  tasks:
    gsm8k:
      model: local-completions
`

// BaseYAML is a valid disagg perf config (pkg/config/testdata/base.yaml).
func BaseYAML(t testing.TB) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(here), "..", "testdata", "base.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Edit replaces one exact occurrence of old with new in s.
func Edit(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}

// WriteFile writes data to dir/rel, creating folders.
func WriteFile(t testing.TB, dir, rel, data string) string {
	t.Helper()
	p := filepath.Join(dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// SetupTree writes a config folder with a mix of tests and returns its path.
func SetupTree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "test_configs")
	base := BaseYAML(t)
	acc := Edit(t, base+AccuracySections, "  supported_gpus: [GB200]\n",
		"  supported_gpus: [GB200]\n  accuracy:\n    datasets:\n      - dataset_name: gsm8k\n        expected_value: 0.9454\n")
	WriteFile(t, dir, "disagg/perf/alpha_1k1k.yaml", base)
	WriteFile(t, dir, "disagg/perf/beta_8k1k.yaml", Edit(t, base, "  supported_gpus: [GB200]", "  supported_gpus: [GB200_NVL72, GB300]"))
	WriteFile(t, dir, "disagg/accuracy/alpha_1k1k.yaml", acc)
	WriteFile(t, dir, "wideep/perf/gamma_1k1k.yaml", base)
	WriteFile(t, dir, "wideep/stress/h100only.yaml", Edit(t, acc, "  supported_gpus: [GB200]", "  supported_gpus: [H100]"))
	WriteFile(t, dir, "disagg/perf/broken.yaml", Edit(t, base, "  streaming: true", "  streaming: false"))
	WriteFile(t, dir, "templates/template.yaml", "not: a test\n")
	WriteFile(t, dir, "disagg/stray.yaml", base)
	WriteFile(t, dir, "disagg/perf/notes.txt", "ignored")
	WriteFile(t, root, "testlist/mine.txt", "# comment\n\n"+IDPerfA+"  # trailing comment\n"+
		"test_disagg.py::TestDisaggBenchmark::test_accuracy["+IDAcc+"]\n"+
		"perf/disagg/test_disagg.py::TestDisaggBenchmark::test_benchmark["+IDWide+"]\n")
	return dir
}

// WriteBenchConfigs writes n distinct valid configs under dir/{disagg,wideep}/perf/, as
// the loading benchmarks use (valid with SLURM_ACCOUNT set).
func WriteBenchConfigs(tb testing.TB, dir string, n int) {
	tb.Helper()
	base := BaseYAML(tb)
	for i := range n {
		typ := "disagg"
		if i%2 == 1 {
			typ = "wideep"
		}
		bs := 16 + i%48
		text := strings.Replace(base, "    max_batch_size: 32\n    max_num_tokens: 32\n", fmt.Sprintf("    max_batch_size: %d\n    max_num_tokens: %d\n", bs, bs), 1)
		text = strings.Replace(text, `"1 2 4 8 16 32"`, fmt.Sprintf(`"1 2 4 8 %d"`, bs), 1)
		text = strings.Replace(text, "free_gpu_memory_fraction: 0.85", fmt.Sprintf("free_gpu_memory_fraction: 0.%d", 50+i%45), 1)
		name := fmt.Sprintf("model-%05d_1k1k_ctx1_gen4_tep8_bs%d_eplb0_mtp0_ccb-NIXL.yaml", i, bs)
		WriteFile(tb, dir, filepath.Join(typ, "perf", name), text)
	}
}
