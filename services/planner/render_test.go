package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
	"github.com/disaggbench/disaggbench/pkg/scheduler/slurm"
)

const quickPerf = "../../examples/quickstart/test_configs/disagg/perf/tinyllama-1.1b_1k128_ctx1_gen2_tep1_bs8_eplb0_mtp0_ccb-NIXL.yaml"

// clearEnv unsets the environment overrides the planner honours, so that a developer's
// or CI's settings do not change what is rendered.
func clearEnv(t *testing.T) {
	for _, k := range config.HonouredEnv {
		t.Setenv(k, "")
	}
}

func loadTest(t testing.TB, path string) *config.Test {
	t.Helper()
	tc, _ := config.LoadFile(path)
	tc.Resolve(nil, nil)
	if ps := tc.Validate(); config.HasErrors(ps) {
		for _, p := range ps {
			t.Log(p.String())
		}
		t.Fatalf("%s is not valid", path)
	}
	return tc
}

func TestRunRender(t *testing.T) {
	clearEnv(t)
	out := filepath.Join(t.TempDir(), "job dir")
	var stdout, stderr bytes.Buffer
	code := runRender([]string{"--config", quickPerf, "--out", out, "--run-id", "r1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	line := strings.TrimSuffix(stdout.String(), "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "sbatch --parsable ") {
		t.Fatalf("stdout is not one sbatch line: %q", stdout.String())
	}
	// The printed line is exactly the argv the slurm scheduler runs.
	tc := loadTest(t, quickPerf)
	tc.Resolve(nil, nil)
	// The emulation's stand-ins were installed beside the job's files, once.
	tools, err := jobscript.InstallTools(filepath.Join(out, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	if bins, _ := filepath.Glob(filepath.Join(out, "bin", "*")); len(bins) != 1 || bins[0] != tools {
		t.Errorf("render installed %q, want only %s", bins, tools)
	}
	j, err := jobscript.Render(tc, jobscript.Options{RunID: "r1", LogDir: out, GPUType: "GB200", Comment: "run=r1 test=" + tc.ID, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"sbatch"}, slurm.SbatchArgs(j.Request)...)
	cmd := exec.Command("bash", "--noprofile", "--norc", "-c", "printf '%s\\0' "+strings.TrimPrefix(line, "sbatch "))
	got, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"sbatch"}, strings.Split(strings.TrimSuffix(string(got), "\x00"), "\x00")...)
	if !slices.Equal(argv, want) {
		t.Errorf("printed argv\n %q\nwant\n %q", argv, want)
	}
	for _, w := range []string{"--nodes=3", "--ntasks=3", "--ntasks-per-node=1", "--gres=gpu:4", "--partition=debug", "--time=00:10:00", "--output=" + out + "/slurm-%j.out"} {
		if !slices.Contains(argv, w) {
			t.Errorf("sbatch argv lacks %q: %q", w, argv)
		}
	}
	if argv[len(argv)-1] != filepath.Join(out, jobscript.DefaultScript) {
		t.Errorf("script %q", argv[len(argv)-1])
	}
	for _, f := range j.Files {
		b, err := os.ReadFile(filepath.Join(out, f.Name))
		if err != nil || !bytes.Equal(b, f.Data) {
			t.Errorf("%s: %v (content equal %v)", f.Name, err, bytes.Equal(b, f.Data))
		}
	}

	// GPU_TYPE (or --gpu-type) picks the resources: H100 has none.
	t.Setenv("GPU_TYPE", "H100")
	stdout.Reset()
	if code := runRender([]string{"--config", quickPerf, "--out", out}, &stdout, &stderr); code != 0 || strings.Contains(stdout.String(), "--gres") {
		t.Errorf("H100: exit %d, %s", code, stdout.String())
	}
	stdout.Reset()
	if code := runRender([]string{"--config", quickPerf, "--out", out, "--gpu-type", "GB200"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "--gres=gpu:4") {
		t.Errorf("--gpu-type GB200: exit %d, %s", code, stdout.String())
	}
}

func TestRunRenderRefuses(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	src, err := os.ReadFile(quickPerf)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "disagg", "perf", "bad.yaml")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, bytes.Replace(src, []byte("streaming: true"), []byte("streaming: false"), 1), 0o644)
	out := filepath.Join(dir, "out")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no flags", nil, 2, "--out is required"},
		{"no out", []string{"--config", quickPerf}, 2, "--out is required"},
		{"stray argument", []string{"--config", quickPerf, "--out", out, "extra"}, 2, `unexpected argument "extra"`},
		{"config with a selection", []string{"--config", quickPerf, "--out", out, "-k", "x"}, 2, "does not go with"},
		{"unknown flag", []string{"--config", quickPerf, "--out", out, "--bogus"}, 2, "bogus"},
		{"invalid config", []string{"--config", bad, "--out", out}, 1, "benchmark.streaming"},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml"), "--out", out}, 1, "nope.yaml"},
		{"unknown gpu", []string{"--config", quickPerf, "--out", out, "--gpu-type", "TPU9"}, 1, "TPU9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runRender(tt.args, &stdout, &stderr)
			if code != tt.code || stdout.Len() > 0 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want %q)", code, tt.code, stdout.String(), stderr.String(), tt.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("files were written for a refused render")
			}
		})
	}
}

// planner render takes a selection and writes one folder per test; every config of the
// repository renders, and a stray argument runs nothing.
func TestRunRenderSelection(t *testing.T) {
	clearEnv(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := runRender([]string{"--config-dir", "../../test_configs", "--test-list", "disagg", "-m", "perf", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	ids, err := config.ReadTestList("../../testlist/disagg.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range ids {
		if !strings.HasPrefix(id, "disagg_perf_") {
			if _, err := os.Stat(filepath.Join(out, id)); err == nil {
				t.Errorf("%s rendered; -m perf leaves it out", id)
			}
			continue
		}
		n++
		if _, err := os.Stat(filepath.Join(out, id, jobscript.DefaultScript)); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if !strings.Contains(stdout.String(), "--chdir="+filepath.Join(out, id)+" ") {
			t.Errorf("no sbatch line for %s in %s", id, stdout.String())
		}
	}
	if n == 0 {
		t.Fatal("the list holds no perf test")
	}
	out2 := filepath.Join(t.TempDir(), "x")
	stderr.Reset()
	if code := runRender([]string{"--out", out2, "stray"}, &stdout, &stderr); code != 2 {
		t.Errorf("stray argument: exit %d", code)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("a refused command wrote files")
	}
}
