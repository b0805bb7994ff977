package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
	"github.com/disaggbench/disaggbench/pkg/progress"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

// validateGOGC is the garbage collector's GOGC while validating, unless $GOGC is set.
const validateGOGC = 400

// runValidate is `planner validate [PATH...]`: it loads and validates the given files
// and folders (default test_configs), resolved with the environment as a run would,
// and prints one line per problem on stdout. Exit status 0 when every file is valid
// (warnings allowed), 1 otherwise, 2 on bad usage.
func runValidate(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: planner validate [PATH...]\n\nValidates test config files and folders (default "+config.DefaultConfigDir+").")
	}
	paths, code, ok := settings.Parse(fs, args, 0, -1, stdout, stderr)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		paths = []string{config.DefaultConfigDir}
	}
	if os.Getenv("GOGC") == "" {
		// Each test is dropped once checked, so the heap stays a few MB and the default
		// GOGC collects every few hundred configs: a goal of 5 times the live heap
		// takes a tenth less CPU for some MB more (README, "Tests as YAML").
		defer debug.SetGCPercent(debug.SetGCPercent(validateGOGC))
	}
	env := config.EnvFromOS()
	gpu := config.GPUType(nil, env)
	files, problems, err := config.ConfigFiles(paths)
	if err != nil {
		fmt.Fprintf(stderr, "planner validate: %v\n", err)
		return 1
	}
	// Each test is loaded, resolved, validated and rendered on its own, in parallel, and
	// dropped once checked; problems are reported in the order the files were met.
	results := make([][]config.Problem, len(files))
	config.LoadEach(files, func(i int, t *config.Test) {
		t.Resolve(nil, env)
		ps := t.Validate()
		if !config.HasErrors(ps) {
			// What render or the submitter would refuse is refused here too.
			ps = append(ps, jobscript.Check(t, gpu)...)
			// Paths the cluster would not find: outside the container mounts, or missing.
			ps = append(ps, jobscript.CheckPaths(t)...)
		}
		results[i] = ps
	})
	invalid := 0
	out := bufio.NewWriterSize(stdout, 64<<10)
	for _, p := range problems {
		fmt.Fprintln(out, p.String())
	}
	for _, ps := range results {
		if config.HasErrors(ps) {
			invalid++
		}
		for _, p := range ps {
			fmt.Fprintln(out, p.String())
		}
		problems = append(problems, ps...)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "planner validate: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "%s checked, %d invalid\n", progress.Count(len(files), "file"), invalid)
	if config.HasErrors(problems) {
		return 1
	}
	return 0
}
