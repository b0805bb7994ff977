package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
)

// runRender is `planner render --config FILE --out DIR`: the dry run. It loads and
// checks one test, writes the job's files into DIR (created if missing; nothing is
// deleted) and prints the exact sbatch command line it would run, shell-quoted, on
// stdout. Problems go to stderr. It returns the exit code: 0 done, 1 failed, 2 usage.
func runRender(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("render", flag.ContinueOnError)
	fset.SetOutput(stderr)
	cfgPath := fset.String("config", "", "the test's YAML `file`")
	out := fset.String("out", "", "the `folder` to write the job's files into (its log folder)")
	runID := fset.String("run-id", "render", "the run id the job is rendered for")
	gpuType := fset.String("gpu-type", "", "the GPU type (default $GPU_TYPE, then "+config.DefaultGPUType+")")
	jobName := fset.String("job-name", "", "the SLURM job name (default slurm.job_name, then the test id)")
	fset.Usage = func() {
		fmt.Fprintln(stderr, "usage: planner render --config FILE --out DIR [--run-id ID] [--gpu-type TYPE] [--job-name NAME]")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" || *out == "" || fset.NArg() > 0 {
		fset.Usage()
		return 2
	}
	flags := config.Env{}
	if *gpuType != "" {
		flags[config.EnvGPUType] = *gpuType
	}
	env := config.EnvFromOS()
	t, _ := config.LoadFile(*cfgPath)
	t.Resolve(flags, env)
	problems := t.Validate()
	for _, p := range problems {
		fmt.Fprintln(stderr, p.String())
	}
	if config.HasErrors(problems) {
		fmt.Fprintf(stderr, "render: %s is not valid; nothing written\n", *cfgPath)
		return 1
	}
	gpu := config.GPUType(flags, env)
	if !t.SupportsGPU(gpu) {
		fmt.Fprintf(stderr, "render: warning: %s does not list GPU type %s in metadata.supported_gpus; a run would skip it\n", t.ID, gpu)
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	// A dry run's stand-ins go beside its files, in DIR/bin, once the job rendered.
	var tools string
	if jobscript.NeedsTools(t) {
		if _, tools, err = jobscript.ToolsPath(filepath.Join(dir, "bin")); err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
	}
	job, err := jobscript.Render(t, jobscript.Options{
		Tools:   tools,
		RunID:   *runID,
		LogDir:  dir,
		GPUType: gpu,
		JobName: *jobName,
		Comment: fmt.Sprintf("run=%s test=%s", *runID, t.ID),
	})
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	line, err := jobscript.SbatchCommand(job.Request)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	if tools != "" {
		if _, err := jobscript.InstallTools(filepath.Join(dir, "bin")); err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
	}
	if err := job.Write(dir); err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	return 0
}
