package submit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/events"
	"github.com/disaggbench/disaggbench/pkg/fileio"
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
		if f.Name == "" || filepath.IsAbs(f.Name) || strings.Contains(f.Name, "..") {
			return fmt.Errorf("refusing job file name %q", f.Name)
		}
		path := filepath.Join(j.LogDir, f.Name)
		if dir := filepath.Dir(path); dir != filepath.Clean(j.LogDir) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		mode := os.FileMode(f.Mode)
		if mode == 0 {
			mode = 0o644
		}
		if err := write(path, f.Data, mode); err != nil {
			return err
		}
	}
	spec := *j
	spec.Files = nil
	data, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return write(filepath.Join(j.LogDir, events.JobFile), data, 0o644)
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
