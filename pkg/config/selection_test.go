package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func ids(ts []*Test) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestDiscover(t *testing.T) {
	dir := setupTree(t)
	tests, problems, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{idAcc, idPerfA, idPerfB, idBad, idWide, idH100}
	slices.Sort(want)
	if got := ids(tests); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].File, "stray.yaml") || !problems[0].Warning {
		t.Errorf("folder problems:%s", dump(problems))
	}
	for _, tt := range tests {
		if tt.ID == idAcc && (tt.Type != "disagg" || tt.Category != "accuracy") {
			t.Errorf("type/category of %s = %s/%s", tt.ID, tt.Type, tt.Category)
		}
	}
	if _, _, err := Discover(filepath.Join(dir, "nope")); err == nil {
		t.Error("missing folder accepted")
	}
}

func TestDiscoverDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "disagg/perf/x.yaml", baseYAML(t))
	writeFile(t, dir, "disagg/perf/x.yml", baseYAML(t))
	tests, _, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) != 2 {
		t.Fatalf("want both files, got %d", len(tests))
	}
	for _, tt := range tests {
		ps := tt.Validate()
		if !HasErrors(ps) || !strings.Contains(ps[0].Message, "is also the id of") {
			t.Errorf("%s: duplicate id not reported:%s", tt.Path, dump(ps))
		}
	}
}

func TestSelect(t *testing.T) {
	dir := setupTree(t)
	cases := []struct {
		name    string
		sel     Selection
		env     Env
		want    []string
		skipped []string
		invalid []string
	}{
		{name: "all on GB200", want: []string{idAcc, idPerfA, idPerfB, idWide}, skipped: []string{idH100}, invalid: []string{idBad}},
		{name: "GB200_NVL72 counts as GB200", env: Env{"GPU_TYPE": "GB200_NVL72"}, want: []string{idAcc, idPerfA, idPerfB, idWide}, skipped: []string{idH100}, invalid: []string{idBad}},
		{name: "H100 by env", env: Env{"GPU_TYPE": "H100"}, want: []string{idH100}, skipped: []string{idAcc, idPerfA, idPerfB, idWide}, invalid: []string{idBad}},
		{name: "flag beats env", sel: Selection{GPUType: "GB300"}, env: Env{"GPU_TYPE": "H100"}, want: []string{idPerfB}, skipped: []string{idAcc, idPerfA, idWide, idH100}, invalid: []string{idBad}},
		{name: "-m perf", sel: Selection{Marker: "perf"}, want: []string{idPerfA, idPerfB, idWide}, invalid: []string{idBad}},
		{name: "-m not perf", sel: Selection{Marker: "not perf"}, env: Env{"GPU_TYPE": "H100"}, want: []string{idH100}, skipped: []string{idAcc}},
		{name: "-k substring", sel: Selection{K: "ALPHA"}, want: []string{idAcc, idPerfA}},
		{name: "-k and not", sel: Selection{K: "alpha and not accuracy"}, want: []string{idPerfA}},
		{name: "-k or parens", sel: Selection{K: "(gamma or beta) and 1k1k"}, want: []string{idWide}},
		{name: "-k and -m", sel: Selection{K: "1k1k", Marker: "perf or accuracy"}, want: []string{idAcc, idPerfA, idWide}},
		{name: "test list under testlist/", sel: Selection{TestList: "mine.txt"}, want: []string{idAcc, idPerfA, idWide}},
		{name: "test list and -k", sel: Selection{TestList: "mine.txt", K: "wideep"}, want: []string{idWide}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.sel.ConfigDir = dir
			res, err := Select(tc.sel, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res.Tests); !slices.Equal(got, tc.want) {
				t.Errorf("tests = %v, want %v", got, tc.want)
			}
			var skipped, invalid []string
			for _, s := range res.Skipped {
				skipped = append(skipped, s.ID)
				if !strings.Contains(s.Reason, "not supported on") {
					t.Errorf("skip reason %q", s.Reason)
				}
			}
			for _, i := range res.Invalid {
				invalid = append(invalid, i.Test.ID)
				if !HasErrors(i.Problems) {
					t.Errorf("invalid without errors: %s", i.Test.ID)
				}
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("skipped = %v, want %v", skipped, tc.skipped)
			}
			if !slices.Equal(invalid, tc.invalid) {
				t.Errorf("invalid = %v, want %v", invalid, tc.invalid)
			}
		})
	}
}

func TestSelectErrors(t *testing.T) {
	dir := setupTree(t)
	list := writeFile(t, t.TempDir(), "l.txt", "disagg_perf_alpah_1k1k\n"+idPerfA+"\ntotally_unrelated_name_xyz\n")
	cases := []struct {
		sel  Selection
		env  Env
		want string
	}{
		{Selection{TestList: list}, nil, "did you mean " + idPerfA},
		{Selection{TestList: list}, nil, "totally_unrelated_name_xyz"},
		{Selection{TestList: "nope.txt"}, nil, "nope.txt"},
		{Selection{}, Env{"GPU_TYPE": "A100"}, `unknown GPU type "A100"`},
		{Selection{K: "alpha and"}, nil, "-k"},
		{Selection{K: "(alpha"}, nil, "missing ')'"},
		{Selection{Marker: "slow"}, nil, `unknown marker "slow"`},
		{Selection{ConfigDir: "/nonexistent/dir"}, nil, "config folder"},
	}
	for _, tc := range cases {
		if tc.sel.ConfigDir == "" {
			tc.sel.ConfigDir = dir
		}
		_, err := Select(tc.sel, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Select(%+v) error = %v, want %q", tc.sel, err, tc.want)
		}
	}
	// Only when no listed id is known is the config folder suspected (a list run
	// against the wrong --config-dir).
	if _, err := Select(Selection{TestList: list, ConfigDir: dir}, nil); err == nil || strings.Contains(err.Error(), "--config-dir") {
		t.Errorf("a list with one known id: %v, want no --config-dir hint", err)
	}
	other := writeFile(t, t.TempDir(), "other.txt", "some_other_tree_test_a\nsome_other_tree_test_b\n")
	_, err := Select(Selection{TestList: other, ConfigDir: dir}, nil)
	if err == nil || !strings.Contains(err.Error(), "none of them is among the") || !strings.Contains(err.Error(), dir+": is --config-dir") {
		t.Errorf("a list with no known id: %v, want the --config-dir hint naming %s", err, dir)
	}
}

func TestReadTestList(t *testing.T) {
	p := writeFile(t, t.TempDir(), "l.txt", "# header\n\n  a_b_c  \nx#y\ntest_disagg.py::TestDisaggBenchmark::test_stress[s_t_u]\n"+
		"perf/disagg/test_disagg.py::TestDisaggBenchmark::test_benchmark[v_w] TIMEOUT (90)\n")
	got, err := ReadTestList(p)
	if err != nil || !slices.Equal(got, []string{"a_b_c", "x#y", "s_t_u", "v_w"}) {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"two words\n", "test_disagg.py::X::test_benchmark\n", "test_x[]\n", "t.py::x[a]b\n"} {
		p := writeFile(t, t.TempDir(), "l.txt", "ok\n"+bad)
		if _, err := ReadTestList(p); err == nil || !strings.Contains(err.Error(), ":2:") {
			t.Errorf("%q: error = %v, want one naming line 2", bad, err)
		}
	}
}

func TestPrecedence(t *testing.T) {
	dir := setupTree(t)
	env := Env{"SLURM_PARTITION": "envpart", "SLURM_ACCOUNT": "envacct", "MODEL_DIR": "/m", "HF_HOME_DIR": "/hf", "CONTAINER_IMAGE": ""}
	flags := Env{"SLURM_PARTITION": "flagpart"}
	res, err := Select(Selection{ConfigDir: dir, K: "disagg_perf_alpha", Flags: flags}, env)
	if err != nil || len(res.Tests) != 1 {
		t.Fatalf("%v %v", err, res)
	}
	tt := res.Tests[0]
	c := tt.Config
	if c.Slurm.Partition != "flagpart" || tt.Sources["slurm.partition"] != "flag --slurm-partition" {
		t.Errorf("partition %q from %q", c.Slurm.Partition, tt.Sources["slurm.partition"])
	}
	if c.Slurm.Account != "envacct" || tt.Sources["slurm.account"] != "env SLURM_ACCOUNT" {
		t.Errorf("account %q from %q", c.Slurm.Account, tt.Sources["slurm.account"])
	}
	if c.Environment.ContainerImage != "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc2" || tt.Sources["environment.container_image"] != "" {
		t.Errorf("empty env value must not override the file: %q", c.Environment.ContainerImage)
	}
	if c.Environment.ModelPath != "/m/DeepSeek-R1-0528-FP4-v2" || !strings.Contains(tt.Sources["environment.model_path"], "env MODEL_DIR") {
		t.Errorf("model path %q from %q", c.Environment.ModelPath, tt.Sources["environment.model_path"])
	}
	if c.Accuracy.EnvVar["HF_HOME"] != "/hf" {
		t.Errorf("HF_HOME = %q", c.Accuracy.EnvVar["HF_HOME"])
	}
	if c.Metadata.BenchmarkType != "1k1k" || tt.Sources["metadata.benchmark_type"] == "" {
		t.Errorf("benchmark_type default %q", c.Metadata.BenchmarkType)
	}
	// A bad value from the environment is reported against the field, naming its source.
	res, err = Select(Selection{ConfigDir: dir, K: "disagg_perf_alpha"}, Env{"SLURM_ACCOUNT": "bad account"})
	if err != nil || len(res.Invalid) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	msg := res.Invalid[0].Problems[0].String()
	if !strings.Contains(msg, "slurm.account") || !strings.Contains(msg, "(value from env SLURM_ACCOUNT)") {
		t.Errorf("problem = %s", msg)
	}
}

func TestSettings(t *testing.T) {
	if n, err := BatchSize(nil, nil); n != 5 || err != nil {
		t.Errorf("default batch size %d %v", n, err)
	}
	if n, _ := BatchSize(Env{"DISAGG_BATCH_SIZE": "0"}, Env{"DISAGG_BATCH_SIZE": "9"}); n != 0 {
		t.Errorf("flag 0 must win: %d", n)
	}
	if n, _ := BatchSize(nil, Env{"DISAGG_BATCH_SIZE": "9"}); n != 9 {
		t.Errorf("env 9: %d", n)
	}
	if _, err := BatchSize(nil, Env{"DISAGG_BATCH_SIZE": "-1"}); err == nil || !strings.Contains(err.Error(), "env DISAGG_BATCH_SIZE") {
		t.Errorf("negative batch size: %v", err)
	}
	if on, id := DebugMode(nil, Env{"DEBUG_MODE": "1", "DEBUG_JOB_ID": "42"}); !on || id != "42" {
		t.Errorf("debug mode %v %q", on, id)
	}
	if OutputPath(Env{"OUTPUT_PATH": "/f"}, Env{"OUTPUT_PATH": "/e"}) != "/f" || OutputPath(nil, nil) != "output" {
		t.Error("output path precedence")
	}
	if GPUType(nil, Env{"GPU_TYPE": "gb200_x"}) != "GB200" {
		t.Error("GPU type normalization")
	}
}

// TestRepoConfigs checks the committed configs and test lists: every config valid and
// free of warnings, every list entry a known test, all.txt naming every test.
func TestRepoConfigs(t *testing.T) {
	tests, problems, err := Discover("../../test_configs")
	if err != nil {
		t.Fatal(err)
	}
	if len(tests) < 8 || len(problems) > 0 {
		t.Fatalf("%d tests, folder problems:%s", len(tests), dump(problems))
	}
	kinds := map[string]bool{}
	for _, tt := range tests {
		tt.Resolve(nil, nil)
		if ps := tt.Validate(); len(ps) > 0 {
			t.Errorf("%s:%s", tt.ID, dump(ps))
		}
		kinds[tt.Type+"/"+tt.Category] = true
	}
	for _, k := range []string{"disagg/perf", "disagg/accuracy", "wideep/perf", "wideep/accuracy"} {
		if !kinds[k] {
			t.Errorf("no %s config", k)
		}
	}
	all := ids(tests)
	for _, name := range []string{"all.txt", "disagg.txt", "wideep.txt", "debug.txt"} {
		res, err := Select(Selection{ConfigDir: "../../test_configs", TestList: name}, Env{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(res.Tests) == 0 || len(res.Invalid) > 0 || len(res.Skipped) > 0 {
			t.Errorf("%s: %d tests, %d invalid, %d skipped", name, len(res.Tests), len(res.Invalid), len(res.Skipped))
		}
		if name == "all.txt" && !slices.Equal(ids(res.Tests), all) {
			t.Errorf("all.txt = %v, want %v", ids(res.Tests), all)
		}
	}
	if _, err := os.Stat("../../testlist/all.txt"); err != nil {
		t.Error(err)
	}
}

// LoadEach hands out each file's test with the problems LoadPaths gives it, the
// duplicate ids included, at the file's index.
func TestLoadEachMatchesLoadPaths(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "disagg/perf/x.yaml", baseYAML(t))
	writeFile(t, dir, "disagg/perf/x.yml", baseYAML(t))
	writeFile(t, dir, "disagg/perf/y.yaml", baseYAML(t))
	writeFile(t, dir, "wideep/perf/bad.yaml", "metadata: [")
	x := filepath.Join(dir, "disagg", "perf", "x.yaml")
	paths := []string{dir, x} // x.yaml twice: its own duplicate too
	want, _, err := LoadPaths(paths)
	if err != nil {
		t.Fatal(err)
	}
	files, _, err := ConfigFiles(paths)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]*Test, len(files))
	var mu sync.Mutex
	LoadEach(files, func(i int, tt *Test) {
		mu.Lock()
		defer mu.Unlock()
		if got[i] != nil {
			t.Errorf("index %d handed out twice", i)
		}
		got[i] = tt
	})
	if len(got) != 5 || len(want) != len(got) {
		t.Fatalf("LoadEach: %d tests, LoadPaths: %d, want 5", len(got), len(want))
	}
	dups := 0
	for i := range want {
		w, g := dump(want[i].Validate()), dump(got[i].Validate())
		if got[i].Path != want[i].Path || g != w {
			t.Errorf("%d: LoadEach %s:%s\nLoadPaths %s:%s", i, got[i].Path, g, want[i].Path, w)
		}
		dups += strings.Count(g, "is also the id of")
	}
	if dups != 3 {
		t.Errorf("%d duplicate-id problems, want 3 (x.yaml twice and x.yml)", dups)
	}
}
