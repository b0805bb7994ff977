package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	idPerfA = "disagg_perf_alpha_1k1k"
	idPerfB = "disagg_perf_beta_8k1k"
	idAcc   = "disagg_accuracy_alpha_1k1k"
	idWide  = "wideep_perf_gamma_1k1k"
	idH100  = "wideep_stress_h100only"
	idBad   = "disagg_perf_broken"
)

const accuracySections = `
accuracy:
  enable_accuracy_test: true
  tasks:
    gsm8k:
      model: local-completions
`

// baseYAML is a valid disagg perf config.
func baseYAML(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../pkg/config/testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces one exact occurrence of old with new in s.
func edit(t testing.TB, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("edit: %q occurs %d times", old, strings.Count(s, old))
	}
	return strings.Replace(s, old, new, 1)
}

// writeFile writes data to dir/rel, creating folders.
func writeFile(t testing.TB, dir, rel, data string) string {
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

// setupTree writes a config folder with a mix of tests and returns its path.
func setupTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "test_configs")
	base := baseYAML(t)
	acc := edit(t, base+accuracySections, "  supported_gpus: [GB200]\n",
		"  supported_gpus: [GB200]\n  accuracy:\n    datasets:\n      - dataset_name: gsm8k\n        expected_value: 0.9454\n")
	writeFile(t, dir, "disagg/perf/alpha_1k1k.yaml", base)
	writeFile(t, dir, "disagg/perf/beta_8k1k.yaml", edit(t, base, "  supported_gpus: [GB200]", "  supported_gpus: [GB200_NVL72, GB300]"))
	writeFile(t, dir, "disagg/accuracy/alpha_1k1k.yaml", acc)
	writeFile(t, dir, "wideep/perf/gamma_1k1k.yaml", base)
	writeFile(t, dir, "wideep/stress/h100only.yaml", edit(t, acc, "  supported_gpus: [GB200]", "  supported_gpus: [H100]"))
	writeFile(t, dir, "disagg/perf/broken.yaml", edit(t, base, "  streaming: true", "  streaming: false"))
	writeFile(t, dir, "templates/template.yaml", "not: a test\n")
	writeFile(t, dir, "disagg/stray.yaml", base)
	writeFile(t, dir, "disagg/perf/notes.txt", "ignored")
	writeFile(t, root, "testlist/mine.txt", "# comment\n\n"+idPerfA+"  # trailing comment\n"+
		"test_disagg.py::TestDisaggBenchmark::test_accuracy["+idAcc+"]\n"+
		"perf/disagg/test_disagg.py::TestDisaggBenchmark::test_benchmark["+idWide+"]\n")
	return dir
}

func TestRunList(t *testing.T) {
	dir := setupTree(t)
	t.Setenv("GPU_TYPE", "")
	var out, errb bytes.Buffer
	code := runList([]string{"--config-dir", dir, "-m", "perf", "-k", "not broken"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := out.String(); got != idPerfA+"\n"+idPerfB+"\n"+idWide+"\n" {
		t.Errorf("stdout = %q", got)
	}
	code = runList([]string{"--config-dir", dir}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "invalid "+idBad) || !strings.Contains(errb.String(), "skipped "+idH100) {
		t.Errorf("exit %d, stderr %s", code, errb.String())
	}
	if code := runList([]string{"--bogus"}, &out, &errb); code != 2 {
		t.Errorf("bad flag exit %d", code)
	}
}

func TestRunValidate(t *testing.T) {
	dir := setupTree(t)
	var out, errb bytes.Buffer
	if code := runValidate([]string{filepath.Join(dir, "disagg", "perf", "alpha_1k1k.yaml")}, &out, &errb); code != 0 || out.Len() != 0 {
		t.Errorf("valid file: exit %d, out %q", code, out.String())
	}
	out.Reset()
	code := runValidate([]string{dir}, &out, &errb)
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	broken := filepath.Join(dir, "disagg", "perf", "broken.yaml")
	wantLine := broken + ":14:14: benchmark.streaming: must be true"
	if !slices.Contains(lines, wantLine) {
		t.Errorf("want %q in:\n%s", wantLine, out.String())
	}
	if code := runValidate([]string{filepath.Join(dir, "missing.yaml")}, &out, &errb); code != 1 {
		t.Errorf("missing file exit %d", code)
	}
}

func TestRunConfigShow(t *testing.T) {
	dir := setupTree(t)
	t.Setenv("SLURM_ACCOUNT", "envacct")
	var out, errb bytes.Buffer
	code := runConfigShow([]string{idPerfA, "--config-dir", dir}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"# test: " + idPerfA, "account: envacct", "#   slurm.account: env SLURM_ACCOUNT",
		"concurrency_list: [1, 2, 4, 8, 16, 32]", "resolved_metrics:", "SERVER_MEDIAN_TTFT", "free_gpu_memory_fraction: 0.85"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	errb.Reset()
	if code := runConfigShow([]string{"--config-dir", dir, "disagg_perf_alpah_1k1k"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "did you mean "+idPerfA) {
		t.Errorf("unknown id: exit %d, %s", code, errb.String())
	}
	if code := runConfigShow(nil, &out, &errb); code != 2 {
		t.Errorf("no id: exit %d", code)
	}
}

func TestListRepoConfigs(t *testing.T) {
	t.Setenv("GPU_TYPE", "")
	var out bytes.Buffer
	runList([]string{"--config-dir", "../../test_configs", "-m", "accuracy", "-k", "wideep"}, &out, nil)
	if got, want := out.String(), "wideep_accuracy_deepseek-r1-fp4_1k1k_ctx1_gen1_dep16_bs32_eplb288_mtp3_ccb-NIXL\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}
