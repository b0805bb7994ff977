// Package jobscript renders one test's SLURM job: the job script (the built-in
// TensorRT-LLM disaggregated-serving flow, or the test's own Go template) and every file
// the job reads (ctx and gen worker configs, worker and client commands, ...), plus the
// scheduler request that submits it. Rendering is pure; Job.Write puts the files on disk.
package jobscript

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

// Options are what the caller decides about a job, beyond the test's config.
type Options struct {
	RunID   string     // the run this job belongs to
	LogDir  string     // absolute test log folder; every file of the job lives here
	GPUType string     // GPU_TYPE; empty means config.DefaultGPUType
	Env     config.Env // extra environment for the job (JobRequest.Env, env_vars.json)
	JobName string     // the full SLURM job name; empty means slurm.job_name, then the test id
	Comment string     // the SLURM comment
	// Tools is the absolute path of the binary that provides the stand-ins (its
	// "emulator" subcommand: the emulated trtllm-serve, the Go benchmark client, the
	// emulated lm_eval); required by tests with environment.emulate or
	// benchmark.client builtin (see NeedsTools and InstallTools).
	Tools string
}

// File is one file of a job, named relative to the log folder.
type File struct {
	Name string
	Data []byte
	Mode fs.FileMode
}

// Job is a rendered job: its files and the request that submits it.
type Job struct {
	Files   []File               // relative to Options.LogDir, in a stable order
	Script  string               // the job script's name among Files
	Request scheduler.JobRequest // Script is LogDir/Script
}

// Names of the files the job writes or reads in its log folder (the seed framework's).
const (
	DefaultScript     = "disaggr_torch.slurm"
	TemplateScript    = "job.sh"
	CtxConfigFile     = "ctx_config.yaml"
	GenConfigFile     = "gen_config.yaml"
	AllocationsFile   = "allocations.json"
	StartWorkerFile   = "start_worker.sh"
	StartServerCmds   = "start_server_cmds.sh"
	WaitServerFile    = "wait_server.sh"
	RunBenchmarkFile  = "run_benchmark.sh"
	AccuracyEvalFile  = "accuracy_eval.sh"
	ClientCmdsFile    = "client_cmds.sh"
	EnvVarsFile       = "env_vars.json"
	JobInfoFile       = "job_info.txt"
	ServerConfigFile  = "server_config.yaml" // written by the job at run time
	BenchLogFile      = "6_bench.log"
	AccuracyLogPrefix = "7_accuracy_eval_"
	DoneFilePrefix    = "8_done_"
)

// Render builds the job of one test. It reads nothing but the test's own script
// template (slurm.script_file or metadata.script_file) when one is set.
func Render(t *config.Test, opts Options) (*Job, error) {
	return render(t, opts, false)
}

// render builds the job of one test. With dry, it only looks for what Render would
// refuse, returning the same error and no job: templates are executed into io.Discard,
// the built-in ones only when builtinSafe cannot rule out an error, and the files that
// cannot fail (allocations.json, env_vars.json, job_info.txt) are not built.
func render(t *config.Test, opts Options, dry bool) (*Job, error) {
	if t == nil {
		return nil, errors.New("jobscript: nil test")
	}
	if opts.LogDir == "" || !filepath.IsAbs(opts.LogDir) {
		return nil, fmt.Errorf("jobscript: log folder %q must be an absolute path", opts.LogDir)
	}
	if strings.ContainsAny(opts.LogDir, "\x00\n\r") {
		return nil, fmt.Errorf("jobscript: log folder %q contains a NUL or newline", opts.LogDir)
	}
	opts.LogDir = filepath.Clean(opts.LogDir)
	req, err := request(t, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	d, err := newData(t, opts, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	var files []File
	safe := dry && builtinSafe(d)
	if dry {
		err = d.checkSupportFiles(safe)
	} else {
		files, err = d.supportFiles()
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Path, err)
	}
	tmplPath, err := TemplatePath(t)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := io.Writer(&buf)
	if dry {
		w = io.Discard
	}
	script := DefaultScript
	switch {
	case tmplPath == "" && safe:
		// A dry render of a script that cannot fail has nothing to look for.
	case tmplPath == "":
		err = execBuiltinTo(w, DefaultScript+".tmpl", d)
	default:
		script = TemplateScript
		err = execUserTemplateTo(w, tmplPath, d)
	}
	if err != nil || dry {
		return nil, err
	}
	files = append([]File{{Name: script, Data: buf.Bytes(), Mode: 0o755}}, files...)
	req.Script = filepath.Join(opts.LogDir, script)
	return &Job{Files: files, Script: script, Request: req}, nil
}

// request fills the scheduler request from the config, the GPU type's resources and
// the options.
func request(t *config.Test, opts Options) (scheduler.JobRequest, error) {
	c := &t.Config
	gpu, err := config.LookupGPU(cmp.Or(opts.GPUType, config.DefaultGPUType))
	if err != nil {
		return scheduler.JobRequest{}, err
	}
	if c.Hardware.GPUsPerNode <= 0 {
		return scheduler.JobRequest{}, fmt.Errorf("hardware.gpus_per_node: must be positive, got %d", c.Hardware.GPUsPerNode)
	}
	if c.Hardware.NumCtxServers < 0 || c.Hardware.NumGenServers <= 0 {
		return scheduler.JobRequest{}, fmt.Errorf("hardware: need num_gen_servers > 0 and num_ctx_servers >= 0, got %d and %d",
			c.Hardware.NumGenServers, c.Hardware.NumCtxServers)
	}
	nodes := c.Nodes()
	req := scheduler.JobRequest{
		Name:      cmp.Or(opts.JobName, c.Slurm.JobName, t.ID),
		Comment:   opts.Comment,
		LogDir:    opts.LogDir,
		WorkDir:   opts.LogDir,
		Nodes:     nodes,
		NTasks:    nodes * c.Hardware.GPUsPerNode,
		PerNode:   c.Hardware.GPUsPerNode,
		Partition: c.Slurm.Partition,
		Account:   c.Slurm.Account,
		Resources: gpu.SbatchArgs,
	}
	if gpu.Segment && (c.Slurm.SetSegment == nil || *c.Slurm.SetSegment) {
		req.Segment = nodes
	}
	if c.Slurm.JobTime != "" {
		if req.TimeLimit, err = config.ParseJobTime(c.Slurm.JobTime); err != nil {
			return req, fmt.Errorf("slurm.job_time: %w", err)
		}
	}
	if c.Slurm.ExtraArgs != "" {
		if req.ExtraArgs, err = config.SplitExtraArgs(c.Slurm.ExtraArgs); err != nil {
			return req, fmt.Errorf("slurm.extra_args: %w", err)
		}
	}
	if len(opts.Env) > 0 {
		req.Env = make(map[string]string, len(opts.Env))
		for k, v := range opts.Env {
			req.Env[k] = v
		}
	}
	for _, v := range []struct{ field, val string }{
		{"job name", req.Name}, {"comment", req.Comment},
		{"slurm.partition", req.Partition}, {"slurm.account", req.Account},
	} {
		if strings.ContainsAny(v.val, "\x00\n\r") {
			return req, fmt.Errorf("%s: %q contains a control character", v.field, v.val)
		}
	}
	return req, nil
}

// Write creates dir and writes every file of the job into it, each atomically (a
// temporary file renamed into place). It never deletes anything that was there.
func (j *Job) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range j.Files {
		if err := checkName(f.Name); err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(dir, f.Name), f.Data, f.Mode); err != nil {
			return err
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00\n") {
		return fmt.Errorf("jobscript: bad file name %q", name)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode fs.FileMode) error {
	if mode == 0 {
		mode = 0o644
	}
	if err := fileio.WriteAtomic(path, data, mode, true); err != nil {
		return fmt.Errorf("jobscript: write %s: %w", path, err)
	}
	return nil
}
