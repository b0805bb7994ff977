package jobscript

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// Fake cluster commands: srun records its argv (NUL-separated, one file per call) and
// the environment its --export list names (as srun passes it: names only, values from
// its own environment; srun.XXXXXX.env), and runs the command after its options with
// only that environment, except that workers and the server sleep until the job stops
// them and the health wait succeeds at once.
const fakeSrun = `#!/bin/bash
f=$(mktemp "${FAKE_LOG}/srun.XXXXXX")
printf '%s\0' "$@" > "$f"
kv=()
while [ $# -gt 0 ]; do
    case "$1" in
        -N|-n) shift 2 ;;
        --export=*)
            IFS=, read -r -a names <<< "${1#--export=}"
            for name in "${names[@]}" FAKE_LOG; do
                [ -n "${!name+x}" ] && kv+=("${name}=${!name}")
            done
            shift ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ "${#kv[@]}" -gt 0 ] || { echo "srun without --export" >&2; exit 3; }
printf '%s\0' "${kv[@]}" > "$f.env"
set -- env -i "${kv[@]}" "$@"
case "$*" in
    *start_worker.sh*|*"trtllm-serve disaggregated"*) exec sleep 30 ;;
    *wait_server.sh*) echo "Server is healthy"; exit 0 ;;
esac
exec "$@"
`

const fakeScontrol = `#!/bin/bash
[ "$1 $2" = "show hostnames" ] || exit 9
printf 'node-b\nnode-a\n'
`

const fakePython = `#!/bin/bash
printf '%s\0' "$@" > "${FAKE_LOG}/python3.argv"
echo "============ Serving Benchmark Result ============"
echo "Median TTFT (ms):                        12.00"
`

const fakeLmEval = `#!/bin/bash
printf '%s\0' "$@" > "${FAKE_LOG}/lm_eval.argv"
printf '%s' "${HF_HOME}" > "${FAKE_LOG}/lm_eval.hf_home"
echo "|gsm8k|      3|flexible-extract|     5|exact_match|↑  |0.95|±  |0.006|"
`

func writeExec(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func argvFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Split(string(b), "\x00")
	return s[:len(s)-1]
}

func hasSeq(argv []string, seq ...string) bool {
	for i := 0; i+len(seq) <= len(argv); i++ {
		if slicesEqual(argv[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The default job script runs end to end against fake srun/scontrol/python3/lm_eval,
// with hostile values in every config field it uses: each reaches its command byte for
// byte and none is ever evaluated.
func TestDefaultScriptRunsWithHostileValues(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not found")
	}
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	fake := filepath.Join(root, "fake")
	logDir := filepath.Join(root, "logs $(touch PWNED0) 'q'")
	for _, d := range []string{bin, fake, logDir} {
		os.MkdirAll(d, 0o755)
	}
	writeExec(t, bin, "srun", fakeSrun)
	writeExec(t, bin, "scontrol", fakeScontrol)
	writeExec(t, bin, "python3", fakePython)
	writeExec(t, bin, "lm_eval", fakeLmEval)

	tc := loadTest(t, goldenConfigs[2]) // accuracy, ctx1 gen1, 2 nodes
	tc.ID = "disagg_accuracy_x$(touch PWNED1)"
	c := &tc.Config
	c.Benchmark.EnableBenchmark = nil // run the client too
	modelPath := "/models/it's \"q\" $(touch PWNED2) `touch PWNED3` ${HOME}\nnext line"
	c.Environment.ModelPath = modelPath
	c.Environment.ContainerImage = "img;$(touch PWNED4)"
	c.Environment.ContainerMount = "/a:/b,'/c d':/e"
	c.Environment.WorkerEnvVar = "A=$(touch${IFS}PWNED5) B='x' C=a,b,ENROOT_ALLOW_DEV=no"
	c.Environment.GenWorkerEnvVar = "ENROOT_ALLOW_DEV=yes"
	c.Benchmark.EnvVar = config.EnvMap{"CLIENT_X": "1,2 $(touch PWNED12)"}
	c.Environment.ServerEnvVar = "S=`touch${IFS}PWNED6`"
	c.Benchmark.DatasetFile = "/d/$(touch PWNED7) x.json"
	c.Accuracy.EnvVar = map[string]string{"HF_HOME": "/hf home/$(touch PWNED8)"}
	c.Accuracy.Tasks = map[string]config.AccuracyTask{"gsm8k": {
		ModelArgsExtra: "x=1,y='$(touch PWNED9)'",
		ExtraKwargs:    map[string]any{"gen_kwargs": "a=$(touch PWNED10)", "limit": 5},
	}}

	j, err := Render(tc, Options{RunID: "r$(touch PWNED11)", LogDir: logDir, GPUType: "GB200"})
	if err != nil {
		t.Fatal(err)
	}
	checkBashSyntax(t, j)
	if err := j.Write(logDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(logDir, j.Script))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_LOG="+fake,
		"SLURM_JOB_ID=42", "SLURM_JOB_NODELIST=node-[a-b]", "SLURM_NNODES=2", "HOME="+root,
		"UNRELATED_SUBMITTER_VAR=leak")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("job script: %v\n%s", err, out.String())
	}

	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(logDir, name))
		if err != nil {
			t.Fatalf("%v\njob output:\n%s", err, out.String())
		}
		return string(b)
	}
	read("8_done_42.txt")
	if got := read(JobInfoFile); !strings.Contains(got, "SLURM_JOB_ID: 42") {
		t.Errorf("job_info.txt lacks the job id:\n%s", got)
	}
	// GEN first on node 0 (node-a, where the server runs), CTX after it on node-b.
	wantServer := "hostname: node-a\nport: 8333\nbackend: pytorch\ncontext_servers:\n  num_instances: 1\n  urls:\n    - node-b:8001\n" +
		"generation_servers:\n  num_instances: 1\n  urls:\n    - node-a:8000\n"
	if got := read(ServerConfigFile); got != wantServer {
		t.Errorf("server_config.yaml:\n%s\nwant:\n%s", got, wantServer)
	}
	bench := read(BenchLogFile)
	for _, want := range []string{"Benchmarking with concurrency 32 ... 32 prompts", "Serving Benchmark Result", "Benchmark with concurrency 32 done"} {
		if !strings.Contains(bench, want) {
			t.Errorf("6_bench.log lacks %q:\n%s", want, bench)
		}
	}
	if got := read("7_accuracy_eval_gsm8k.log"); !strings.Contains(got, "flexible-extract") {
		t.Errorf("accuracy log:\n%s", got)
	}

	py := argvFile(t, filepath.Join(fake, "python3.argv"))
	if !hasSeq(py, "--model", modelPath) || !hasSeq(py, "--dataset-path", c.Benchmark.DatasetFile) ||
		!hasSeq(py, "--num-prompts", "32") || !hasSeq(py, "--max-concurrency", "32") ||
		!hasSeq(py, "--host", "node-a") || !hasSeq(py, "--port", "8333") ||
		!hasSeq(py, "--result-dir", filepath.Join(logDir, "concurrency_32")) {
		t.Errorf("benchmark client argv: %q", py)
	}
	lm := argvFile(t, filepath.Join(fake, "lm_eval.argv"))
	wantArgs := "model=" + modelPath + ",base_url=http://node-a:8333/v1/completions,x=1,y='$(touch PWNED9)'"
	if !hasSeq(lm, "--model_args", wantArgs) || !hasSeq(lm, "--tasks", "gsm8k") || !hasSeq(lm, "--model", "local-completions") ||
		!hasSeq(lm, "--gen_kwargs", "a=$(touch PWNED10)") || !hasSeq(lm, "--limit", "5") {
		t.Errorf("lm_eval argv: %q", lm)
	}
	if b, _ := os.ReadFile(filepath.Join(fake, "lm_eval.hf_home")); string(b) != "/hf home/$(touch PWNED8)" {
		t.Errorf("HF_HOME = %q", b)
	}

	// Every srun call carries the container arguments exactly; each step receives, by
	// --export, the job's step variables and its own, never the rest of the job's
	// environment; values (commas included) arrive byte for byte.
	calls, _ := filepath.Glob(filepath.Join(fake, "srun.*"))
	var workers, servers, clients int
	for _, f := range calls {
		if strings.HasSuffix(f, ".env") {
			continue
		}
		argv := argvFile(t, f)
		env := map[string]string{}
		for _, kv := range argvFile(t, f+".env") {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if !hasSeq(argv, "--container-image=img;$(touch PWNED4)", "--container-mounts=/a:/b,'/c d':/e,"+logDir+":"+logDir, "--container-name=disaggbench-42") {
			t.Errorf("srun without the container arguments: %q", argv)
		}
		if _, ok := env["UNRELATED_SUBMITTER_VAR"]; ok || env["PATH"] == "" || env["HOME"] != root {
			t.Errorf("step environment %q: want PATH and HOME, not the submitter's other variables", env)
		}
		if i := slices.IndexFunc(argv, func(a string) bool { return a == "bash" || a == "trtllm-serve" }); i >= 0 &&
			slices.ContainsFunc(argv[i:], func(a string) bool { return strings.HasPrefix(a, "env") && a != "env" }) {
			t.Errorf("a step sets its environment inside the container: %q", argv)
		}
		if hasSeq(argv, "bash", filepath.Join(logDir, StartWorkerFile)) {
			workers++
			want := map[string]string{"A": "$(touch${IFS}PWNED5)", "B": "'x'", "C": "a,b,ENROOT_ALLOW_DEV=no", "ENROOT_ALLOW_DEV": ""}
			if hasSeq(argv, "bash", filepath.Join(logDir, StartWorkerFile), "GEN") {
				want["ENROOT_ALLOW_DEV"] = "yes"
			}
			for k, v := range want {
				if got, ok := env[k]; got != v || (v != "") != ok {
					t.Errorf("worker %q: %s = %q (set %v), want %q", argv, k, got, ok, v)
				}
			}
			if argv[len(argv)-1] != "0,1,2,3" {
				t.Errorf("worker devices: %q", argv)
			}
		}
		if hasSeq(argv, "trtllm-serve", "disaggregated") {
			servers++
			if env["S"] != "`touch${IFS}PWNED6`" {
				t.Errorf("server env: %q", env)
			}
		}
		if hasSeq(argv, "bash", filepath.Join(logDir, RunBenchmarkFile)) {
			clients++
			if env["CLIENT_X"] != "1,2 $(touch PWNED12)" {
				t.Errorf("client env: %q", env)
			}
		}
	}
	if workers != 2 || servers != 1 || clients != 1 {
		t.Errorf("%d worker, %d server and %d client launches, want 2, 1 and 1", workers, servers, clients)
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "PWNED") {
			t.Errorf("a config value was evaluated: %s exists", p)
		}
		return nil
	})
}

// A worker that dies before the server is healthy fails the job at once, with a reason.
func TestDefaultScriptFailsWhenAWorkerDies(t *testing.T) {
	root := t.TempDir()
	bin, fake, logDir := filepath.Join(root, "bin"), filepath.Join(root, "fake"), filepath.Join(root, "log")
	for _, d := range []string{bin, fake, logDir} {
		os.MkdirAll(d, 0o755)
	}
	// workers exit at once; the health wait never ends.
	writeExec(t, bin, "srun", strings.Replace(strings.Replace(fakeSrun, "exec sleep 30", "exit 1", 1),
		`echo "Server is healthy"; exit 0`, "exec sleep 30", 1))
	writeExec(t, bin, "scontrol", fakeScontrol)
	tc := loadTest(t, goldenConfigs[2])
	j, err := Render(tc, Options{LogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Write(logDir); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(logDir, j.Script))
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_LOG="+fake,
		"SLURM_JOB_ID=7", "SLURM_JOB_NODELIST=x", "SLURM_NNODES=2")
	outb, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("job script: err %v (ctx %v)\n%s", err, ctx.Err(), outb)
	}
	if !strings.Contains(string(outb), "exited before the server was ready") {
		t.Errorf("no reason given:\n%s", outb)
	}
	if _, err := os.Stat(filepath.Join(logDir, "8_done_7.txt")); err == nil {
		t.Error("a failed job left a done marker")
	}
}
