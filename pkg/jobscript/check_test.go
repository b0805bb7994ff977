package jobscript

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// Every config the repository holds that validates (rules and Check) must render: a
// test that validates and then fails in render or the submitter is the bug this guards.
func TestEveryValidConfigRenders(t *testing.T) {
	t.Setenv(TemplateDirsEnv, "")
	roots := []string{"../../test_configs", "../../examples", "testdata/configs"}
	tests, _, err := config.LoadPaths(roots)
	if err != nil {
		t.Fatal(err)
	}
	valid, seed := 0, 0
	for _, tc := range tests {
		tc.Resolve(nil, nil)
		ps := tc.Validate()
		if !config.HasErrors(ps) {
			ps = append(ps, Check(tc, config.DefaultGPUType)...)
		}
		if strings.HasPrefix(tc.Path, "../../test_configs/") {
			seed++
			if config.HasErrors(ps) {
				t.Errorf("the seed's config %s is not valid: %v", tc.Path, ps)
			}
		}
		if config.HasErrors(ps) {
			continue
		}
		valid++
		dir := filepath.Join(t.TempDir(), tc.ID)
		o := Options{RunID: "r1", LogDir: dir, GPUType: config.DefaultGPUType, JobName: "j", Comment: "c"}
		if NeedsTools(tc) {
			o.Tools = "/opt/bin/disaggbench-tools" // a run installs them; the path is all a render needs
		}
		j, err := Render(tc, o)
		if err != nil {
			t.Errorf("%s validates but does not render: %v", tc.Path, err)
			continue
		}
		if err := j.Write(dir); err != nil {
			t.Errorf("%s: %v", tc.Path, err)
		}
	}
	if seed < 9 || valid < seed+4 {
		t.Errorf("found %d seed configs and %d valid configs in all; the folders moved?", seed, valid)
	}
}

// script_file: disaggr_torch.slurm, bare or with the seed's folder prefix, in slurm or
// metadata, is the built-in job script.
func TestSeedScriptFileIsBuiltin(t *testing.T) {
	for _, v := range []string{"disaggr_torch.slurm", "examples/disaggregated/slurm/benchmark/disaggr_torch.slurm"} {
		for _, meta := range []bool{false, true} {
			tc := loadTest(t, goldenConfigs[0])
			if meta {
				tc.Config.Metadata.ScriptFile = v
			} else {
				tc.Config.Slurm.ScriptFile = v
			}
			j, err := Render(tc, goldenOptions(tc))
			if err != nil {
				t.Fatalf("%q: %v", v, err)
			}
			if j.Script != DefaultScript || !strings.HasSuffix(j.Request.Script, "/"+DefaultScript) {
				t.Errorf("%q: script %q", v, j.Script)
			}
		}
	}
}

// templateTree is a config tree: ROOT/test_configs/disagg/perf/x.yaml, with a good
// template at ROOT/templates/ok.sh.tmpl.
func templateTree(t *testing.T) (root string, tc *config.Test) {
	root = t.TempDir()
	cfgDir := filepath.Join(root, "test_configs", "disagg", "perf")
	os.MkdirAll(cfgDir, 0o755)
	os.MkdirAll(filepath.Join(root, "templates"), 0o755)
	os.WriteFile(filepath.Join(root, "templates", "ok.sh.tmpl"), []byte("#!/bin/bash\necho {{.Test.ID}}\n"), 0o644)
	tc = loadTest(t, goldenConfigs[0])
	tc.Path = filepath.Join(cfgDir, "x.yaml")
	return root, tc
}

// A config cannot make a job out of a file it has no business reading: /proc, /sys and
// /dev (even through a link), files outside its tree, hidden files, special files and
// huge files are refused, at once and with the field named; a folder named in
// DISAGGBENCH_TEMPLATE_DIRS is allowed.
func TestTemplatePathRefusesPrying(t *testing.T) {
	t.Setenv(TemplateDirsEnv, "")
	root, tc := templateTree(t)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.tmpl"), []byte("secret"), 0o644)
	os.Symlink("/proc/self/environ", filepath.Join(root, "templates", "env.tmpl"))
	os.Symlink(filepath.Join(outside, "secret.tmpl"), filepath.Join(root, "templates", "link.tmpl"))
	os.MkdirAll(filepath.Join(root, ".ssh"), 0o755)
	os.WriteFile(filepath.Join(root, ".ssh", "id.tmpl"), []byte("key"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(root, "templates", "fifo.tmpl"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "templates", "big.tmpl"), make([]byte, maxTemplateSize+1), 0o644)
	cases := []struct{ path, want string }{
		{"/proc/self/environ", "under /proc"},
		{"/sys/kernel/hostname", "under /sys"},
		{"/dev/zero", "under /dev"},
		{"../../../templates/env.tmpl", "under /proc"},
		{"../../../templates/link.tmpl", "outside the config's tree"},
		{filepath.Join(outside, "secret.tmpl"), "outside the config's tree"},
		{"../../../.ssh/id.tmpl", "hidden"},
		{"../../../templates/fifo.tmpl", "not a regular file"},
		{"../../../templates/big.tmpl", "larger than"},
	}
	for _, c := range cases {
		tc.Config.Slurm.ScriptFile = c.path
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		done := make(chan error, 1)
		go func() { _, err := Render(tc, Options{LogDir: "/l"}); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "slurm.script_file") {
				t.Errorf("%s: err = %v, want %q", c.path, err, c.want)
			}
			if ps := Check(tc, "GB200"); len(ps) != 1 || ps[0].Field != "slurm.script_file" {
				t.Errorf("%s: Check = %v, want one slurm.script_file problem", c.path, ps)
			}
		case <-ctx.Done():
			t.Fatalf("%s: rendering blocked", c.path)
		}
		cancel()
	}
	tc.Config.Slurm.ScriptFile = "../../../templates/ok.sh.tmpl"
	if _, err := Render(tc, Options{LogDir: "/l"}); err != nil {
		t.Errorf("a template in the tree: %v", err)
	}
	tc.Config.Slurm.ScriptFile = filepath.Join(outside, "secret.tmpl")
	t.Setenv(TemplateDirsEnv, "relative/dir"+string(filepath.ListSeparator)+outside)
	if _, err := Render(tc, Options{LogDir: "/l"}); err != nil {
		t.Errorf("a template in $%s: %v", TemplateDirsEnv, err)
	}
}

// Check refuses what Render refuses, at the field's line and column in the file.
func TestCheckPlacesRenderErrors(t *testing.T) {
	root, _ := templateTree(t)
	src, err := os.ReadFile(goldenConfigs[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "test_configs", "disagg", "perf", "x.yaml")
	os.WriteFile(filepath.Join(root, "templates", "bad.tmpl"), []byte("{{.NoSuchField}}"), 0o644)
	for _, c := range []struct{ script, want string }{
		{"nope.tmpl", "does not exist"},
		{"../../../templates/bad.tmpl", "NoSuchField"},
	} {
		data := strings.Replace(string(src), "slurm:\n", "slurm:\n  script_file: "+c.script+"\n", 1)
		os.WriteFile(path, []byte(data), 0o644)
		tc, _ := config.LoadFile(path)
		tc.Resolve(nil, nil)
		if ps := tc.Validate(); config.HasErrors(ps) {
			t.Fatalf("%v", ps)
		}
		ps := Check(tc, "GB200")
		line := strings.Count(data[:strings.Index(data, "script_file:")], "\n") + 1
		if len(ps) != 1 || ps[0].Line != line || ps[0].Col != 16 || ps[0].Field != "slurm.script_file" || !strings.Contains(ps[0].Message, c.want) {
			t.Errorf("%s: %v, want one problem at %d:16 containing %q", c.script, ps, line, c.want)
		}
	}
}
