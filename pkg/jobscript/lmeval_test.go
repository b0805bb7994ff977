package jobscript

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// extra_kwargs.custom_config becomes --include_path=<log_dir>/lm_eval_configs (never
// --custom_config): the task files are rendered into the job with environment values
// substituted (accuracy.env_var, the job's, the planner's; never a secret), and the job
// script copies them into lm_eval_configs/ before any step runs.
func TestCustomConfigIncludePath(t *testing.T) {
	b, err := os.ReadFile(goldenConfigs[2])
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "disagg", "accuracy")
	tasks := filepath.Join(root, "lm_eval_tasks")
	os.MkdirAll(dir, 0o755)
	os.MkdirAll(tasks, 0o755)
	os.WriteFile(filepath.Join(tasks, "gsm8k_custom.yaml"), []byte(
		"task: gsm8k_custom\ndataset_path: ${HF_HOME}/gsm8k\nextra: $DISAGGBENCH_TEST_CUSTOM_X\nsecret: ${NATS_PASSWORD}\nkept: $UNSET_NAME_X\n"), 0o644)
	os.WriteFile(filepath.Join(tasks, "utils.py"), []byte("def f(x):\n    return '$HF_HOME'\n"), 0o644)
	t.Setenv("DISAGGBENCH_TEST_CUSTOM_X", "from-env")
	t.Setenv("NATS_PASSWORD", "s3cret")
	text := strings.Replace(string(b), "        num_fewshot: 5\n", "        num_fewshot: 5\n        custom_config: ../../lm_eval_tasks\n", 1)
	path := filepath.Join(dir, filepath.Base(goldenConfigs[2]))
	os.WriteFile(path, []byte(text), 0o644)
	tc := loadTest(t, path)

	logDir := filepath.Join(t.TempDir(), "log")
	j, err := Render(tc, Options{RunID: "r", LogDir: logDir, GPUType: "GB200"})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, f := range j.Files {
		files[f.Name] = string(f.Data)
	}
	want := "task: gsm8k_custom\ndataset_path: /lustre/hf_home/gsm8k\nextra: from-env\nsecret: ${NATS_PASSWORD}\nkept: $UNSET_NAME_X\n"
	if got := files["lm_eval_config.gsm8k_custom.yaml"]; got != want {
		t.Errorf("task file:\n%s\nwant:\n%s", got, want)
	}
	if got := files["lm_eval_config.utils.py"]; got != "def f(x):\n    return '$HF_HOME'\n" {
		t.Errorf("utils.py changed: %q", got)
	}
	cmds := files[ClientCmdsFile]
	if !strings.Contains(cmds, "--include_path="+filepath.Join(logDir, "lm_eval_configs")) || strings.Contains(cmds, "custom_config") {
		t.Errorf("client_cmds.sh:\n%s", cmds)
	}
	for name, data := range files {
		if strings.Contains(data, "s3cret") {
			t.Errorf("%s holds a secret", name)
		}
	}

	// The job script's copy lines put them where --include_path looks.
	if err := j.Write(logDir); err != nil {
		t.Fatal(err)
	}
	script := files[DefaultScript]
	i := strings.Index(script, "mkdir -p \"${log_dir}/lm_eval_configs\"")
	if i < 0 {
		t.Fatalf("no copy in the job script:\n%s", script)
	}
	block := script[i : i+strings.Index(script[i:], "\n\n")]
	cmd := exec.Command("bash", "-euc", block)
	cmd.Env = append(os.Environ(), "log_dir="+logDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	entries, _ := os.ReadDir(filepath.Join(logDir, "lm_eval_configs"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"gsm8k_custom.yaml", "utils.py"}) {
		t.Errorf("lm_eval_configs holds %q", names)
	}

	// A task folder outside the config's tree is refused, naming the field.
	tc.Config.Accuracy.Tasks["gsm8k"].ExtraKwargs["custom_config"] = "/etc"
	if _, err := Render(tc, Options{RunID: "r", LogDir: logDir, GPUType: "GB200"}); err == nil ||
		!strings.Contains(err.Error(), "accuracy.tasks.gsm8k.extra_kwargs.custom_config: /etc is outside the config's tree") {
		t.Errorf("outside the tree: %v", err)
	}
}
