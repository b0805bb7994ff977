package submit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disaggbench/disaggbench/pkg/events"
)

func TestWriteFilesFreshAndExistingFolders(t *testing.T) {
	root := t.TempDir()
	spec := events.JobSpec{TestID: "disagg_perf_x", LogDir: filepath.Join(root, "slurm_logs", "disagg_perf_x", "run1"),
		Files: []events.File{
			{Name: "job.sh", Data: []byte("#!/bin/bash\necho hi\n"), Mode: 0o755},
			{Name: "config.yaml", Data: []byte("a: 1\n")},
			{Name: "extra.txt", Data: []byte("x\n"), Mode: 0o600},
		}}
	check := func(when string) {
		t.Helper()
		for _, f := range spec.Files {
			path := filepath.Join(spec.LogDir, f.Name)
			data, err := os.ReadFile(path)
			if err != nil || string(data) != string(f.Data) {
				t.Fatalf("%s: %s = %q, %v", when, f.Name, data, err)
			}
			want := os.FileMode(f.Mode)
			if want == 0 {
				want = 0o644
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != want {
				t.Errorf("%s: %s has mode %v, want %v", when, f.Name, st.Mode().Perm(), want)
			}
		}
		var got events.JobSpec
		data, err := os.ReadFile(filepath.Join(spec.LogDir, events.JobFile))
		if err != nil || json.Unmarshal(data, &got) != nil || got.TestID != spec.TestID || got.Files != nil {
			t.Fatalf("%s: %s = %s, %v", when, events.JobFile, data, err)
		}
		entries, _ := os.ReadDir(spec.LogDir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s: temporary file %s left behind", when, e.Name())
			}
		}
	}
	// A new folder (its parents too).
	if err := writeFiles(&spec); err != nil {
		t.Fatal(err)
	}
	check("fresh")
	// The folder exists with other contents: replaced, whatever was there.
	for _, f := range spec.Files {
		if err := os.WriteFile(filepath.Join(spec.LogDir, f.Name), []byte("stale"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeFiles(&spec); err != nil {
		t.Fatal(err)
	}
	check("existing")
	// A file where the folder should be is an error, not a silent success.
	bad := spec
	bad.LogDir = filepath.Join(spec.LogDir, "job.sh")
	if err := writeFiles(&bad); err == nil {
		t.Fatal("a log folder that is a file was accepted")
	}
	bad.LogDir = filepath.Join(spec.LogDir, "new")
	bad.Files = []events.File{{Name: "../escape", Data: []byte("x")}}
	if err := writeFiles(&bad); err == nil {
		t.Fatal("a file name leaving the folder was accepted")
	}
}
