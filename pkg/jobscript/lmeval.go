package jobscript

import (
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// LMEvalConfigDir is the folder of the log folder that holds the lm_eval task files of
// extra_kwargs.custom_config; lm_eval reads it through --include_path. A job's files
// are plain names in its log folder, so each task file is rendered as
// LMEvalConfigPrefix+<name> and the job script copies it into the folder.
const (
	LMEvalConfigDir    = "lm_eval_configs"
	LMEvalConfigPrefix = "lm_eval_config."
)

// Bounds of the task files a custom_config brings into a job.
const (
	maxTaskFiles    = 64
	maxTaskFileSize = 1 << 20
)

// taskFiles reads the lm_eval task files that extra_kwargs.custom_config names (a
// file, or a folder whose regular files are all taken), resolved against the test
// YAML's folder and confined as a job script template is (the config's tree or
// $DISAGGBENCH_TEMPLATE_DIRS). In YAML files, $NAME and ${NAME} are replaced by the
// variable's value (lookup), as upstream substitutes environment values; unknown names
// are left as written.
func taskFiles(t *config.Test, field, p string, lookup func(string) (string, bool)) ([]File, error) {
	fail := func(format string, args ...any) ([]File, error) {
		return nil, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
	}
	if p == "" || strings.ContainsAny(p, "\x00\n\r") {
		return fail("%q is not a path", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(t.Path), p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return fail("%v", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail("%s does not exist (a path is relative to the YAML file's folder)", abs)
	case err != nil:
		return fail("%v", err)
	}
	if r := under(real, specialRoots...); r != "" {
		return fail("%s is under %s, which holds no task files", real, r)
	}
	roots := allowedRoots(t.Path)
	root := under(real, roots...)
	if root == "" {
		return fail("%s is outside the config's tree %s; put the task files there or add their folder to $%s", abs, roots[0], TemplateDirsEnv)
	}
	if rel, _ := filepath.Rel(root, real); slices.ContainsFunc(strings.Split(rel, string(filepath.Separator)), func(e string) bool {
		return strings.HasPrefix(e, ".")
	}) {
		return fail("%s is in a hidden folder or file of %s", real, root)
	}
	st, err := os.Stat(real)
	if err != nil {
		return fail("%v", err)
	}
	paths := []string{real}
	if st.IsDir() {
		entries, err := os.ReadDir(real)
		if err != nil {
			return fail("%v", err)
		}
		paths = paths[:0]
		for _, e := range entries {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				paths = append(paths, filepath.Join(real, e.Name()))
			}
		}
		if len(paths) == 0 {
			return fail("folder %s holds no task files", real)
		}
	}
	if len(paths) > maxTaskFiles {
		return fail("%s holds %d files, more than %d", real, len(paths), maxTaskFiles)
	}
	var files []File
	for _, fp := range paths {
		data, err := fileio.ReadRegular(fp, maxTaskFileSize, 0)
		if err != nil {
			return fail("%s: %v", fp, err)
		}
		name := filepath.Base(fp)
		if ext := strings.ToLower(filepath.Ext(name)); ext == ".yaml" || ext == ".yml" {
			data = []byte(substituteEnv(string(data), lookup))
		}
		if !taskName.MatchString(name) {
			return fail("task file name %q: letters, digits, '_', '.', '-' only", name)
		}
		files = append(files, File{Name: LMEvalConfigPrefix + name, Data: data, Mode: 0o644})
	}
	return files, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// substituteEnv replaces $NAME and ${NAME} whose lookup succeeds; others stay.
func substituteEnv(s string, lookup func(string) (string, bool)) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(m, "${}")
		if v, ok := lookup(name); ok {
			return v
		}
		return m
	})
}

// taskEnvLookup is where a task file's $NAME comes from: the task's accuracy.env_var,
// then the job's environment, then the environment of the process that renders the job
// (upstream substitutes its submitting shell's), never the bus's or the project's
// secrets.
func taskEnvLookup(accuracy map[string]string, job config.Env) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if scheduler.SecretEnv(name) {
			return "", false
		}
		if v, ok := accuracy[name]; ok {
			return v, true
		}
		if v, ok := job[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
}
