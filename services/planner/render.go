package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

const renderUsage = `usage: planner render --config FILE --out DIR [--run-id ID] [--gpu-type TYPE] [--job-name NAME]
       planner render [--config-dir DIR] [--test-list FILE] [-k EXPR] [-m MARKER] --out DIR [--run-id ID] [--gpu-type TYPE]

Writes each job's files (the dry run) and prints its sbatch command line. With --config,
one test into DIR; with a selection, every selected test into DIR/<test id>/.`

// runRender is `planner render`: the dry run. It loads and checks one test (--config)
// or a selection, writes each job's files (folders are created; nothing is deleted)
// and prints the exact sbatch command lines it would run, shell-quoted, on stdout.
// Problems go to stderr. It returns the exit code: 0 done, 1 failed, 2 usage.
func runRender(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("planner render", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "the test's YAML `file`")
	out := fset.String("out", "", "the `folder` to write the job's files into (its log folder; with a selection, one sub-folder per test)")
	runID := fset.String("run-id", "render", "the run id the job is rendered for")
	jobName := fset.String("job-name", "", "the SLURM job name (default slurm.job_name, then the test id)")
	var sel config.Selection
	selectionFlags(fset, &sel)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), renderUsage)
		fset.PrintDefaults()
	}
	if _, code, ok := settings.Parse(fset, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "planner render: --out is required")
		return 2
	}
	if *cfgPath != "" && (sel.TestList != "" || sel.K != "" || sel.Marker != "" || flagSet(fset, "config-dir")) {
		fmt.Fprintln(stderr, "planner render: --config renders one file; it does not go with --config-dir, --test-list, -k or -m")
		return 2
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		fmt.Fprintf(stderr, "planner render: %v\n", err)
		return 1
	}
	flags := config.Env{}
	if sel.GPUType != "" {
		flags[config.EnvGPUType] = sel.GPUType
	}
	env := config.EnvFromOS()
	if *cfgPath != "" {
		t, _ := config.LoadFile(*cfgPath)
		t.Resolve(flags, env)
		problems := t.Validate()
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		if config.HasErrors(problems) {
			fmt.Fprintf(stderr, "planner render: %s is not valid; nothing written\n", *cfgPath)
			return 1
		}
		gpu := config.GPUType(flags, env)
		if !t.SupportsGPU(gpu) {
			fmt.Fprintf(stderr, "planner render: warning: %s does not list GPU type %s in metadata.supported_gpus; a run would skip it\n", t.ID, gpu)
		}
		line, err := renderOne(t, dir, *runID, gpu, *jobName)
		if err != nil {
			fmt.Fprintf(stderr, "planner render: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, line)
		return 0
	}
	sel.Check = jobscript.Check
	res, err := config.Select(sel, env)
	if err != nil {
		fmt.Fprintf(stderr, "planner render: %v\n", err)
		return 1
	}
	failed := len(res.Invalid)
	for _, t := range res.Tests {
		line, err := renderOne(t, filepath.Join(dir, t.ID), *runID, res.GPUType, *jobName)
		if err != nil {
			fmt.Fprintf(stderr, "planner render: %v\n", err)
			failed++
			continue
		}
		fmt.Fprintf(stdout, "# %s: %s\n%s\n", t.ID, filepath.Join(dir, t.ID), line)
	}
	reportSelection(res, stderr)
	if failed > 0 {
		return 1
	}
	return 0
}

// renderOne renders a test into dir and returns its sbatch command line. A dry run's
// stand-ins (for an emulated test) go beside its files, in dir/bin, once the job
// rendered.
func renderOne(t *config.Test, dir, runID, gpu, jobName string) (string, error) {
	var tools string
	if jobscript.NeedsTools(t) {
		var err error
		if _, tools, err = jobscript.ToolsPath(filepath.Join(dir, "bin")); err != nil {
			return "", err
		}
	}
	job, err := jobscript.Render(t, jobscript.Options{
		Tools:   tools,
		RunID:   runID,
		LogDir:  dir,
		GPUType: gpu,
		JobName: jobName,
		Comment: fmt.Sprintf("run=%s test=%s", runID, t.ID),
	})
	if err != nil {
		return "", err
	}
	line, err := jobscript.SbatchCommand(job.Request)
	if err != nil {
		return "", err
	}
	if tools != "" {
		if _, err := jobscript.InstallTools(filepath.Join(dir, "bin")); err != nil {
			return "", err
		}
	}
	if err := job.Write(dir); err != nil {
		return "", err
	}
	return line, nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
