package submit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// debugLogDir finds the log folder of an earlier job, DEBUG_JOB_ID, for a test whose
// new folder is logDir (OUTPUT_PATH/slurm_logs/<test>/<run>): the folder, among the
// test's earlier run folders, the test's own folder (the seed's layout) and then any
// test's, that holds the job's slurm-<id>.out, slurm-<id>.err or 8_done_<id>.txt. In
// debug mode that folder is parsed, not the new, empty one.
func debugLogDir(logDir, jobID string) (string, error) {
	if jobID == "" || strings.ContainsAny(jobID, "/\\*?[\x00") || strings.HasPrefix(jobID, ".") {
		return "", fmt.Errorf("DEBUG_JOB_ID %q is not a job id", jobID)
	}
	testDir := filepath.Dir(logDir)
	root := filepath.Dir(testDir) // OUTPUT_PATH/slurm_logs
	holds := func(dir string) bool {
		for _, name := range []string{"slurm-" + jobID + ".out", "slurm-" + jobID + ".err", "8_done_" + jobID + ".txt"} {
			if st, err := os.Lstat(filepath.Join(dir, name)); err == nil && st.Mode().IsRegular() {
				return true
			}
		}
		return false
	}
	candidates := []string{testDir}
	if runs, err := filepath.Glob(filepath.Join(testDir, "*")); err == nil {
		candidates = append(candidates, runs...)
	}
	if others, err := filepath.Glob(filepath.Join(root, "*", "*")); err == nil {
		candidates = append(candidates, others...)
	}
	for _, dir := range candidates {
		if dir != logDir && holds(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("DEBUG_JOB_ID %s: no folder under %s holds slurm-%s.out or 8_done_%s.txt", jobID, root, jobID, jobID)
}
