package submit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// writeFiles puts a job's files into its log folder. It never deletes anything; a file
// left by an earlier try of the same run is overwritten with the same content.
//
// A folder this call creates is its own: nobody can have a file there yet, so the files
// are created in place (O_EXCL), which costs half the system calls of writing each
// beside its name and renaming it. Into a folder that existed (a retry, or a repeated
// batch at work at the same time), each file is written under a temporary name of its
// own and renamed, so nobody ever sees a partly written file.
func writeFiles(j *events.JobSpec) error {
	if j.LogDir == "" {
		return errors.New("job has no log folder")
	}
	fresh, err := makeDir(j.LogDir)
	if err != nil {
		return fmt.Errorf("create log folder: %w", err)
	}
	write := func(path string, data []byte, mode os.FileMode) error {
		if fresh {
			err := fileio.CreateNew(path, data, mode)
			if !errors.Is(err, fs.ErrExist) {
				return err
			}
			// Someone else is writing this job too: fall back to the careful way.
		}
		return fileio.WriteAtomic(path, data, mode, false)
	}
	for _, f := range j.Files {
		if err := checkFileName(f.Name); err != nil {
			return err
		}
		if err := write(filepath.Join(j.LogDir, f.Name), f.Data, fileMode(f.Mode)); err != nil {
			return err
		}
	}
	spec := *j
	spec.Files = nil
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	// The request may carry environment values: for the owner only.
	return write(filepath.Join(j.LogDir, events.JobFile), data, 0o600)
}

// fileMode is a job file's mode as the message asks for it, without group or world
// write and without setuid, setgid or sticky bits (the umask may take more).
func fileMode(m uint32) os.FileMode {
	mode := os.FileMode(m).Perm() &^ 0o022
	if mode == 0 {
		mode = 0o644
	}
	return mode
}

// maxFileName bounds a job file's name, as most file systems do.
const maxFileName = 255

// checkFileName accepts a job file name: one plain path element, not hidden, without
// control characters, and not the name of the spec the submitter writes itself.
func checkFileName(name string) error {
	switch {
	case name == "" || len(name) > maxFileName:
		return fmt.Errorf("job file name %q: want 1 to %d bytes", name, maxFileName)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("job file name %q starts with a dot", name)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("job file name %q is not a plain file name", name)
	case name == events.JobFile:
		return fmt.Errorf("job file name %q is the submitter's own", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("job file name %q holds a control character", name)
	}
	return nil
}

// checkJob refuses a job that would make the submitter write, run or cancel anything but
// its own job in its own log folder, logs/<test>/<run> (logs is OUTPUT_PATH/slurm_logs):
// its files are plain names in that folder, its script one of them, its outputs inside
// it, its name and comment the run's and test's, its sbatch arguments what a config may
// hold, and its environment free of the pipeline's secrets.
func checkJob(logs, run string, j *events.JobSpec) error {
	if err := events.CheckID("test_id", j.TestID); err != nil {
		return err
	}
	want := filepath.Join(logs, j.TestID, run)
	if j.LogDir != want {
		return fmt.Errorf("log folder %q is not this submitter's %s", j.LogDir, want)
	}
	names := make(map[string]bool, len(j.Files))
	for _, f := range j.Files {
		if err := checkFileName(f.Name); err != nil {
			return err
		}
		if names[f.Name] {
			return fmt.Errorf("job file %q appears twice", f.Name)
		}
		names[f.Name] = true
	}
	r := &j.Request
	script, ok := strings.CutPrefix(r.Script, want+string(filepath.Separator))
	if !ok || !names[script] {
		return fmt.Errorf("job script %q is not one of the job's files in %s", r.Script, want)
	}
	if r.LogDir != want {
		return fmt.Errorf("request log folder %q is not %s", r.LogDir, want)
	}
	for _, p := range []struct{ field, path string }{{"work folder", r.WorkDir}, {"output", r.Output}, {"error", r.Error}} {
		if p.path != "" && !events.Within(want, p.path) {
			return fmt.Errorf("request %s %q is outside %s", p.field, p.path, want)
		}
	}
	if !events.JobNameFor(r.Name, run, j.TestID) || strings.ContainsAny(r.Name, ",\n\r\x00") {
		return fmt.Errorf("job name %q does not end in .%s.%s", r.Name, run, j.TestID)
	}
	if r.Comment != events.JobComment(run, j.TestID) {
		return fmt.Errorf("job comment %q is not %q", r.Comment, events.JobComment(run, j.TestID))
	}
	for _, v := range []struct{ field, val string }{{"partition", r.Partition}, {"account", r.Account}} {
		if v.val != "" {
			if err := config.CheckSlurmName(v.val); err != nil {
				return fmt.Errorf("request %s: %w", v.field, err)
			}
		}
	}
	for _, a := range slices.Concat(r.Resources, r.ExtraArgs) {
		if err := config.CheckSbatchArg(a); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}
	for k, v := range r.Env {
		if err := scheduler.CheckJobEnv(k, v); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}
	if r.TimeLimit < 0 || j.TimeLimit < 0 {
		return fmt.Errorf("negative time limit")
	}
	return nil
}

// makeDir creates dir (and its parents) and reports whether this call created dir
// itself. The usual cases, a run folder under a new or an existing test folder, are
// two mkdir calls.
func makeDir(dir string) (fresh bool, err error) {
	parent := filepath.Dir(dir)
	if err := os.Mkdir(parent, 0o755); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return false, err
		}
	}
	err = os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
			return false, err
		}
		return false, nil
	}
	return false, err
}
