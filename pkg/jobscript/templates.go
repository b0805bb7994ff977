package jobscript

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

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
//	add, mul integer arithmetic
func Funcs() template.FuncMap {
	return template.FuncMap{
		"shq":     shq,
		"shqjoin": shqJoin,
		"nodes":   nodeList,
		"add":     func(a, b int) int { return a + b },
		"mul":     func(a, b int) int { return a * b },
	}
}

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

func execBuiltin(name string, d *Data) ([]byte, error) {
	var buf bytes.Buffer
	if err := builtinTmpl.ExecuteTemplate(&buf, name, d); err != nil {
		return nil, fmt.Errorf("render %s: %w", strings.TrimSuffix(name, ".tmpl"), err)
	}
	return buf.Bytes(), nil
}

// TemplatePath returns the absolute path of the test's own job script template
// (slurm.script_file, or metadata.script_file), resolved against the folder of the
// test's YAML file, or "" when the test uses the built-in script. The file must exist.
func TemplatePath(t *config.Test) (string, error) {
	field, p := "slurm.script_file", t.Config.Slurm.ScriptFile
	if m := t.Config.Metadata.ScriptFile; m != "" {
		if p != "" && p != m {
			return "", fmt.Errorf("%s: slurm.script_file %q and metadata.script_file %q disagree; set one", t.Path, p, m)
		}
		field, p = "metadata.script_file", m
	}
	if p == "" {
		return "", nil
	}
	if strings.ContainsAny(p, "\x00\n\r") {
		return "", fmt.Errorf("%s: %s: path %q contains a NUL or newline", t.Path, field, p)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(t.Path), p)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", t.Path, field, err)
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: %s: template %s does not exist (a path is relative to the YAML file's folder)", t.Path, field, abs)
	case err != nil:
		return "", fmt.Errorf("%s: %s: %w", t.Path, field, err)
	case !st.Mode().IsRegular():
		return "", fmt.Errorf("%s: %s: %s is not a regular file", t.Path, field, abs)
	case st.Size() > maxTemplateSize:
		return "", fmt.Errorf("%s: %s: %s is larger than %d bytes", t.Path, field, abs, maxTemplateSize)
	}
	return abs, nil
}

// userTemplates caches parsed user templates by path; an entry is reused while the
// file's size and modification time are unchanged, so a run of many tests sharing one
// template reads and parses it once.
var userTemplates = struct {
	sync.Mutex
	m map[string]cachedTemplate
}{m: map[string]cachedTemplate{}}

type cachedTemplate struct {
	size  int64
	mtime time.Time
	tmpl  *template.Template
}

func loadUserTemplate(path string) (*template.Template, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	userTemplates.Lock()
	c, ok := userTemplates.m[path]
	userTemplates.Unlock()
	if ok && c.size == st.Size() && c.mtime.Equal(st.ModTime()) {
		return c.tmpl, nil
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(filepath.Base(path)).Funcs(Funcs()).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, err
	}
	userTemplates.Lock()
	userTemplates.m[path] = cachedTemplate{size: st.Size(), mtime: st.ModTime(), tmpl: tmpl}
	userTemplates.Unlock()
	return tmpl, nil
}

func execUserTemplate(path string, d *Data) ([]byte, error) {
	tmpl, err := loadUserTemplate(path)
	if err != nil {
		return nil, fmt.Errorf("%s: script template %s: %w", d.Test.Path, path, err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("%s: script template %s: %w", d.Test.Path, path, err)
	}
	return buf.Bytes(), nil
}
