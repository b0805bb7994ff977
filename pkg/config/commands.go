package config

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// RunValidate is `planner validate [PATH...]`: it loads and validates the given files
// and folders (default test_configs), resolved with the environment as a run would,
// and prints one line per problem on stdout. Exit status 0 when every file is valid
// (warnings allowed), 1 otherwise, 2 on bad usage.
func RunValidate(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: planner validate [PATH...]\n\nValidates test config files and folders (default "+DefaultConfigDir+").")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	paths := fs.Args()
	if len(paths) == 0 {
		paths = []string{DefaultConfigDir}
	}
	env := EnvFromOS()
	var tests []*Test
	var problems []Problem
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(stderr, "planner validate: %v\n", err)
			return 1
		}
		if !st.IsDir() {
			t, _ := LoadFile(p)
			tests = append(tests, t)
			continue
		}
		err = filepath.WalkDir(p, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				problems = append(problems, Problem{File: path, Message: err.Error()})
				return nil
			}
			if e.IsDir() && path != p && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			if !e.IsDir() && isYAML(e.Name()) {
				t, _ := LoadFile(path)
				tests = append(tests, t)
			}
			return nil
		})
		if err != nil {
			fmt.Fprintf(stderr, "planner validate: %v\n", err)
			return 1
		}
	}
	markDuplicates(tests)
	invalid := 0
	for _, t := range tests {
		t.Resolve(nil, env)
		ps := t.Validate()
		if HasErrors(ps) {
			invalid++
		}
		problems = append(problems, ps...)
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p.String())
	}
	fmt.Fprintf(stderr, "%d file(s) checked, %d invalid\n", len(tests), invalid)
	if HasErrors(problems) {
		return 1
	}
	return 0
}

// selectionFlags declares the flags planner list (and the commands built on it) share.
func selectionFlags(fs *flag.FlagSet, sel *Selection) {
	fs.StringVar(&sel.ConfigDir, "config-dir", DefaultConfigDir, "folder of test configs")
	fs.StringVar(&sel.TestList, "test-list", "", "test list file (or a name under testlist/)")
	fs.StringVar(&sel.K, "k", "", "pytest-style expression over test ids (and, or, not, parentheses)")
	fs.StringVar(&sel.Marker, "m", "", "category expression: perf, accuracy, stress")
	fs.StringVar(&sel.GPUType, "gpu-type", "", "GPU type (overrides GPU_TYPE; default GB200)")
}

// RunList is `planner list [--config-dir DIR] [--test-list FILE] [-k EXPR] [-m MARKER]`:
// the selected test ids, one a line, sorted, on stdout and nothing else there; skipped
// tests, warnings and invalid tests' problems on stderr. Exit status 0, or 1 when a
// selected test is invalid or the selection fails, 2 on bad usage.
func RunList(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sel Selection
	selectionFlags(fs, &sel)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "planner list: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	res, err := Select(sel, EnvFromOS())
	if err != nil {
		fmt.Fprintf(stderr, "planner list: %v\n", err)
		return 1
	}
	for _, t := range res.Tests {
		fmt.Fprintln(stdout, t.ID)
	}
	ReportSelection(res, stderr)
	if len(res.Invalid) > 0 {
		return 1
	}
	return 0
}

// ReportSelection writes what a selection left out, and why, and its warnings.
func ReportSelection(res *Selected, w io.Writer) {
	for _, p := range res.Warnings {
		fmt.Fprintln(w, p.String())
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.ID, s.Reason)
	}
	for _, inv := range res.Invalid {
		fmt.Fprintf(w, "invalid %s:\n", inv.Test.ID)
		for _, p := range inv.Problems {
			fmt.Fprintf(w, "  %s\n", p.String())
		}
	}
	fmt.Fprintf(w, "%d selected, %d skipped, %d invalid (GPU type %s)\n", len(res.Tests), len(res.Skipped), len(res.Invalid), res.GPUType)
}

// RunConfigShow is `planner config show TEST_ID [--config-dir DIR]`: the test's resolved
// config as YAML, its metrics, and where every value that is not the file's came from.
func RunConfigShow(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner config show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config-dir", DefaultConfigDir, "folder of test configs")
	gpuType := fs.String("gpu-type", "", "GPU type (overrides GPU_TYPE; default GB200)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: planner config show TEST_ID [--config-dir DIR]")
		fs.PrintDefaults()
	}
	// Flags may come before or after the id.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return 2
	}
	id := pos[0]
	env := EnvFromOS()
	flags := Env{}
	if *gpuType != "" {
		flags[EnvGPUType] = *gpuType
	}
	tests, _, err := Discover(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "planner config show: %v\n", err)
		return 1
	}
	var found *Test
	var ids []string
	for _, t := range tests {
		ids = append(ids, t.ID)
		if t.ID == id && found == nil {
			found = t
		}
	}
	if found == nil {
		msg := fmt.Sprintf("planner config show: no test %q in %s", id, *dir)
		if s := suggestIDs(id, ids, 3); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, " or ") + "?)"
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	found.Resolve(flags, env)
	if err := WriteResolved(stdout, found); err != nil {
		fmt.Fprintf(stderr, "planner config show: %v\n", err)
		return 1
	}
	problems := found.Validate()
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if HasErrors(problems) {
		return 1
	}
	return 0
}

// WriteResolved writes a resolved test as YAML: a header naming the test, the config,
// the metrics it will extract, and a sources block naming where each value that did not
// come from the file came from.
func WriteResolved(w io.Writer, t *Test) error {
	fmt.Fprintf(w, "# test: %s\n# file: %s\n# type: %s  category: %s  hash: %s\n", t.ID, t.Path, t.Type, t.Category, t.Hash())
	if err := writeYAML(w, &t.Config); err != nil {
		return err
	}
	m := t.Metrics()
	src := "default for " + t.Type + "/" + t.Category
	if t.Config.CustomMetrics() != nil {
		src = "file, over the " + src
	}
	out := struct {
		Metrics MetricsSpec `yaml:"resolved_metrics"`
	}{m}
	fmt.Fprintf(w, "# metrics: %s\n", src)
	if err := writeYAML(w, out); err != nil {
		return err
	}
	keys := make([]string, 0, len(t.Sources))
	for k := range t.Sources {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Fprintln(w, "# where values that are not the file's came from:")
	if len(keys) == 0 {
		fmt.Fprintln(w, "#   (none: every value is the file's)")
	}
	for _, k := range keys {
		fmt.Fprintf(w, "#   %s: %s\n", k, t.Sources[k])
	}
	return nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// writeYAML writes v as YAML indented by two spaces, as the configs are written.
func writeYAML(w io.Writer, v any) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}
