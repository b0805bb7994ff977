package jobscript

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// pathsConfig writes a copy of the wideep golden config with its environment section
// replaced, and loads it.
func pathsConfig(t *testing.T, env string) (*config.Test, string) {
	t.Helper()
	b, err := os.ReadFile(goldenConfigs[1])
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, "environment:\n"), strings.Index(s, "profiling:\n")
	text := s[:i] + "environment:\n" + env + s[j:]
	dir := filepath.Join(t.TempDir(), "wideep", "perf")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, filepath.Base(goldenConfigs[1]))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, _ := config.LoadFile(path)
	tc.Resolve(nil, nil)
	if ps := tc.Validate(); config.HasErrors(ps) {
		t.Fatalf("invalid: %v", ps)
	}
	return tc, text
}

// planner validate's path checks: a path outside the container mounts is an error at
// its field's line; a missing model under a visible folder is an error, under a folder
// this machine cannot see a warning; paths inside the mounts that exist pass.
func TestCheckPaths(t *testing.T) {
	host := t.TempDir()
	model := filepath.Join(host, "models", "m")
	os.MkdirAll(model, 0o755)
	env := "  container_image: img\n" +
		"  container_mount: " + host + ":/data,/nonexistent-root-xyz:/remote\n" +
		"  model_path: /data/models/m\n" +
		"  work_dir: /elsewhere/work\n" +
		"  trtllm_wheel_path: /remote/wheels/t.whl\n"
	tc, text := pathsConfig(t, env)
	ps := CheckPaths(tc)
	if len(ps) != 1 || ps[0].Field != "environment.work_dir" || ps[0].Warning ||
		ps[0].Line != strings.Count(text[:strings.Index(text, "  work_dir:")], "\n")+1 ||
		!strings.Contains(ps[0].Message, "outside every environment.container_mount destination (/data, /remote)") {
		t.Fatalf("problems %v", ps)
	}
	if s := ps[0].String(); !strings.HasPrefix(s, tc.Path+":") {
		t.Errorf("problem %q does not name the file", s)
	}

	// A missing model where this machine sees its folder: an error.
	tc, _ = pathsConfig(t, strings.Replace(env, "/data/models/m", "/data/models/missing", 1))
	ps = CheckPaths(tc)
	if len(ps) != 2 || ps[0].Field != "environment.model_path" || ps[0].Warning || !strings.Contains(ps[0].Message, "does not exist") {
		t.Errorf("missing model: %v", ps)
	}
	// A dataset whose folder this machine cannot see: a warning only.
	tc, _ = pathsConfig(t, strings.Replace(env, "/elsewhere/work", "/data/work", 1))
	tc.Config.Benchmark.DatasetFile = "/remote/datasets/d.json"
	ps = CheckPaths(tc)
	if len(ps) != 1 || ps[0].Field != "benchmark.dataset_file" || !ps[0].Warning {
		t.Errorf("unseen dataset: %v", ps)
	}
	// Emulated jobs use no container: nothing to check.
	tc.Config.Environment.Emulate = true
	if ps := CheckPaths(tc); len(ps) != 0 {
		t.Errorf("emulated: %v", ps)
	}
}

// World sizes and ports that do not fit the allocation are refused when rendering (and
// so by planner validate), naming the field.
func TestAllocationFit(t *testing.T) {
	tc := loadTest(t, goldenConfigs[1]) // gen 1 x 16, ctx 2 x 4; 4 GPUs a node
	// A 6-GPU ctx server would span two nodes without filling them.
	tc.Config.WorkerConfig.Ctx.TensorParallelSize = 6
	_, err := Render(tc, goldenOptions(tc))
	if err == nil || !strings.Contains(err.Error(), "worker_config.ctx.tensor_parallel_size: CTX server 0 has 6 GPUs") {
		t.Errorf("6-GPU ctx server: %v", err)
	}
	ps := Check(tc, "GB200")
	if len(ps) != 1 || ps[0].Field != "worker_config.ctx.tensor_parallel_size" || ps[0].Line == 0 {
		t.Errorf("check: %v", ps)
	}
	// More servers than worker ports below the disaggregated server's.
	tc = loadTest(t, goldenConfigs[1])
	tc.Config.WorkerConfig.Ctx.TensorParallelSize = 1
	tc.Config.Hardware.NumCtxServers = 400
	if _, err := Render(tc, goldenOptions(tc)); err == nil || !strings.Contains(err.Error(), "reach the disaggregated server's port 8333") {
		t.Errorf("401 servers: %v", err)
	}
}
