package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config/configtest"
)

var (
	baseYAML  = configtest.BaseYAML
	edit      = configtest.Edit
	writeFile = configtest.WriteFile
	setupTree = configtest.SetupTree
)

const (
	idPerfA = configtest.IDPerfA
	idPerfB = configtest.IDPerfB
	idAcc   = configtest.IDAcc
	idWide  = configtest.IDWide
	idH100  = configtest.IDH100
	idBad   = configtest.IDBad
)

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

// planner validate checks the paths a job uses against the container mounts: one
// outside them is an error naming its file, line, column and field.
func TestRunValidatePaths(t *testing.T) {
	dir := setupTree(t)
	file := filepath.Join(dir, "disagg", "perf", "alpha_1k1k.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "environment:\n", "environment:\n  container_mount: /lustre:/lustre\n", 1)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := runValidate([]string{file}, &out, &errb); code != 1 {
		t.Errorf("exit %d: %s", code, out.String())
	}
	i := strings.Index(text, "  model_path:")
	want := fmt.Sprintf("%s:%d:15: environment.model_path: /models/", file, strings.Count(text[:i], "\n")+1)
	if !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "outside every environment.container_mount destination (/lustre)") {
		t.Errorf("want %q..., got:\n%s", want, out.String())
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
