package jobscript

import (
	"embed"
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/template"

	"github.com/disaggbench/disaggbench/pkg/config"
)

//go:embed templates/*.tmpl
var builtin embed.FS

// maxTemplateSize bounds a user's template file.
const maxTemplateSize = 1 << 20

// Funcs are the functions every job script template may call:
//
//	shq      quote one value as a bash word (strings, numbers, anything printable)
//	shqjoin  quote each string of a list and join them with spaces
//	nodes    the bash expression of a server's node names, e.g. "${nodes[0]},${nodes[1]}"
//	envprefix NAME=VALUE words as bash assignments before a command: A='x' B='y '
//	exportnames the names of NAME=VALUE words, each after a comma: ",A,B"
//	join     join strings with a separator
//	add, mul integer arithmetic
func Funcs() template.FuncMap {
	return template.FuncMap{
		"envprefix":   envPrefix,
		"exportnames": exportNames,
		"join":        func(v []string, sep string) string { return strings.Join(v, sep) },
		"shq":         shq,
		"shqjoin":     shqJoin,
		"nodes":       nodeList,
		"add":         func(a, b int) int { return a + b },
		"mul":         func(a, b int) int { return a * b },
	}
}

// envPrefix writes NAME=VALUE words as assignments that prefix a command (each value
// quoted), so that the command (srun) sees them in its environment and passes them to
// its step by name. Each name must be a plain variable name.
func envPrefix(words []string) (string, error) {
	var b strings.Builder
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || !validEnvName(k) {
			return "", fmt.Errorf("%q is not NAME=VALUE with a plain variable name", w)
		}
		q, err := Quote(v)
		if err != nil {
			return "", fmt.Errorf("variable %s: %w", k, err)
		}
		b.WriteString(k + "=" + q + " ")
	}
	return b.String(), nil
}

// exportNames lists the names of NAME=VALUE words, each after a comma, for srun's
// --export list: names only, whose values srun takes from its own environment (a value
// written into the list would be split at its commas).
func exportNames(words []string) (string, error) {
	var b strings.Builder
	for _, w := range words {
		k, _, _ := strings.Cut(w, "=")
		if !validEnvName(k) {
			return "", fmt.Errorf("%q is not a plain variable name", k)
		}
		b.WriteString("," + k)
	}
	return b.String(), nil
}

func validEnvName(k string) bool { return envName.MatchString(k) }

func nodeList(s Server) string {
	parts := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		parts[i] = fmt.Sprintf("${nodes[%d]}", n)
	}
	return `"` + strings.Join(parts, ",") + `"`
}

func fsMode(m uint32) fs.FileMode { return fs.FileMode(m) }

// parsed built-in templates, parsed once.
var builtinTmpl = template.Must(template.New("builtin").Funcs(Funcs()).Option("missingkey=error").ParseFS(builtin, "templates/*.tmpl"))

// execBuiltinTo executes a built-in template into w (io.Discard for a dry render).
func execBuiltinTo(w io.Writer, name string, d *Data) error {
	if err := builtinTmpl.ExecuteTemplate(w, name, d); err != nil {
		return fmt.Errorf("render %s: %w", strings.TrimSuffix(name, ".tmpl"), err)
	}
	return nil
}

// TemplateDirsEnv lists folders (separated as in PATH) whose files any test config may
// name as its job script template, beside the config's own tree (config.Tree).
const TemplateDirsEnv = "DISAGGBENCH_TEMPLATE_DIRS"

// specialRoots hold files that are not files: a template is never read from them, even
// through a symbolic link or an allowed folder.
var specialRoots = []string{"/proc", "/sys", "/dev"}

// IsBuiltinScript reports whether a script_file value names the seed framework's job
// script, disaggr_torch.slurm, bare or with a folder prefix
// (examples/disaggregated/slurm/benchmark/disaggr_torch.slurm, as the seed's configs
// write it): the built-in template is that script.
func IsBuiltinScript(p string) bool {
	return p != "" && filepath.Base(filepath.FromSlash(p)) == DefaultScript
}

// TemplatePath returns the absolute, symlink-free path of the test's own job script
// template (slurm.script_file, or metadata.script_file), resolved against the folder of
// the test's YAML file, or "" when the test uses the built-in script. The file must be a
// regular file of at most 1 MiB inside the config's tree (config.Tree) or a folder of
// $DISAGGBENCH_TEMPLATE_DIRS, with no hidden folder or file on the way, and never under
// /proc, /sys or /dev: a config cannot copy a file it has no business reading into a job.
func TemplatePath(t *config.Test) (string, error) {
	field, p := "slurm.script_file", t.Config.Slurm.ScriptFile
	if m := t.Config.Metadata.ScriptFile; m != "" {
		if p != "" && p != m && !(IsBuiltinScript(p) && IsBuiltinScript(m)) {
			return "", fmt.Errorf("%s: slurm.script_file %q and metadata.script_file %q disagree; set one", t.Path, p, m)
		}
		field, p = "metadata.script_file", m
	}
	if p == "" || IsBuiltinScript(p) {
		return "", nil
	}
	fail := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%s: %s: %s", t.Path, field, fmt.Sprintf(format, args...))
	}
	if strings.ContainsAny(p, "\x00\n\r") {
		return fail("path %q contains a NUL or newline", p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(t.Path), p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return fail("%v", err)
	}
	if under(abs, specialRoots...) != "" {
		return fail("%s is under %s, which holds no templates", abs, under(abs, specialRoots...))
	}
	real, err := filepath.EvalSymlinks(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail("template %s does not exist (a path is relative to the YAML file's folder)", abs)
	case err != nil:
		return fail("%v", err)
	}
	if r := under(real, specialRoots...); r != "" {
		return fail("%s leads to %s, under %s, which holds no templates", abs, real, r)
	}
	roots := allowedRoots(t.Path)
	root := under(real, roots...)
	if root == "" {
		return fail("%s is outside the config's tree %s; put the template there or add its folder to $%s",
			abs, roots[0], TemplateDirsEnv)
	}
	if rel, _ := filepath.Rel(root, real); slices.ContainsFunc(strings.Split(rel, string(filepath.Separator)), func(e string) bool {
		return strings.HasPrefix(e, ".")
	}) {
		return fail("%s is in a hidden folder or file of %s; a template may not be", real, root)
	}
	st, err := os.Stat(real)
	switch {
	case err != nil:
		return fail("%v", err)
	case !st.Mode().IsRegular():
		return fail("%s is not a regular file", real)
	case st.Size() > maxTemplateSize:
		return fail("%s is larger than %d bytes", real, maxTemplateSize)
	}
	return real, nil
}

// allowedRoots are the folders a test's template may live in, symlinks resolved: its
// config tree first, then $DISAGGBENCH_TEMPLATE_DIRS.
func allowedRoots(configPath string) []string {
	dirs := append([]string{config.Tree(configPath)}, filepath.SplitList(os.Getenv(TemplateDirsEnv))...)
	var out []string
	for i, d := range dirs {
		if d == "" || !filepath.IsAbs(d) && i > 0 {
			continue // a relative template folder would depend on where a command runs
		}
		if r, err := filepath.EvalSymlinks(d); err == nil {
			d = r
		}
		out = append(out, filepath.Clean(d))
	}
	return out
}

// under returns the first of roots that holds path (or is path), or "".
func under(path string, roots ...string) string {
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator)) {
			return r
		}
	}
	return ""
}

// userTemplates caches parsed user templates by path; an entry is reused while the
// file holds the same text, so a run of many tests sharing one template parses it once
// and a file rewritten meanwhile (even to the same size within one mtime tick) is
// parsed again.
var userTemplates = struct {
	sync.Mutex
	m map[string]cachedTemplate
}{m: map[string]cachedTemplate{}}

type cachedTemplate struct {
	src  string
	tmpl *template.Template
}

func loadUserTemplate(path string) (*template.Template, error) {
	// Opened without blocking (a FIFO swapped in after TemplatePath looked is refused,
	// not waited on) and checked again on the open file.
	b, err := fileio.ReadRegular(path, maxTemplateSize, syscall.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	src := string(b)
	userTemplates.Lock()
	c, ok := userTemplates.m[path]
	userTemplates.Unlock()
	if ok && c.src == src {
		return c.tmpl, nil
	}
	tmpl, err := template.New(filepath.Base(path)).Funcs(Funcs()).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, err
	}
	userTemplates.Lock()
	userTemplates.m[path] = cachedTemplate{src: src, tmpl: tmpl}
	userTemplates.Unlock()
	return tmpl, nil
}

// execUserTemplateTo executes the test's own template into w (io.Discard for a dry
// render).
func execUserTemplateTo(w io.Writer, path string, d *Data) error {
	field := "slurm.script_file"
	if d.Test.Config.Metadata.ScriptFile != "" {
		field = "metadata.script_file"
	}
	tmpl, err := loadUserTemplate(path)
	if err != nil {
		return fmt.Errorf("%s: %s: script template %s: %w", d.Test.Path, field, path, err)
	}
	if err := tmpl.Execute(w, d); err != nil {
		return fmt.Errorf("%s: %s: script template %s: %w", d.Test.Path, field, path, err)
	}
	return nil
}
