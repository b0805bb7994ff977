package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/settings"

	"gopkg.in/yaml.v3"
)

// runConfigShow is `planner config show TEST_ID [--config-dir DIR]`: the test's resolved
// config as YAML, its metrics, and where every value that is not the file's came from.
func runConfigShow(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner config show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config-dir", config.DefaultConfigDir, "folder of test configs")
	gpuType := fs.String("gpu-type", "", "GPU type (overrides GPU_TYPE; default GB200)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: planner config show TEST_ID [--config-dir DIR] [--gpu-type TYPE]")
		fs.PrintDefaults()
	}
	pos, code, ok := settings.Parse(fs, args, 1, 1, stdout, stderr)
	if !ok {
		return code
	}
	id := pos[0]
	env := config.EnvFromOS()
	flags := config.Env{}
	if *gpuType != "" {
		flags[config.EnvGPUType] = *gpuType
	}
	tests, _, err := config.Discover(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "planner config show: %v\n", err)
		return 1
	}
	var found *config.Test
	var ids []string
	for _, t := range tests {
		ids = append(ids, t.ID)
		if t.ID == id && found == nil {
			found = t
		}
	}
	if found == nil {
		msg := fmt.Sprintf("planner config show: no test %q in %s", id, *dir)
		if s := config.SuggestIDs(id, ids, 3); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, " or ") + "?)"
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	found.Resolve(flags, env)
	if err := writeResolved(stdout, found); err != nil {
		fmt.Fprintf(stderr, "planner config show: %v\n", err)
		return 1
	}
	problems := found.Validate()
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if config.HasErrors(problems) {
		return 1
	}
	return 0
}

// writeResolved writes a resolved test as YAML: a header naming the test, the config,
// the metrics it will extract, and a sources block naming where each value that did not
// come from the file came from.
func writeResolved(w io.Writer, t *config.Test) error {
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
		Metrics config.MetricsSpec `yaml:"resolved_metrics"`
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
