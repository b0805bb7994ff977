package jobscript

import (
	"cmp"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// sections are the top-level keys of a test config; an error that starts with one of
// them names the field it is about.
var sections = []string{"metadata", "slurm", "benchmark", "hardware", "environment", "profiling", "accuracy", "worker_config"}

var fieldPrefix = regexp.MustCompile(`^([a-z_]+(?:\.[^\s:]+)*): `)

// Check renders the test as a run would for the GPU type, without keeping the files
// (render's dry mode), and returns what rendering refuses (a template that is missing,
// out of bounds or does not parse, a value no script may carry, ...) as errors placed
// at the field they come from. With it,
// `planner validate` refuses everything `planner render` and the submitter would.
func Check(t *config.Test, gpuType string) []config.Problem {
	if _, err := config.LookupGPU(gpuType); err != nil {
		gpuType = config.DefaultGPUType
	}
	var tools string
	if NeedsTools(t) {
		// Where a run would install the stand-ins; only the path reaches the files.
		tools = filepath.Join(string(filepath.Separator), "validate", "bin", "disaggbench-tools")
	}
	_, err := render(t, Options{
		Tools:   tools,
		RunID:   "validate",
		LogDir:  filepath.Join(string(filepath.Separator), "validate", "slurm_logs", "test", "validate"),
		GPUType: cmp.Or(gpuType, config.DefaultGPUType),
		JobName: "disaggbench.validate.test",
		Comment: "disaggbench run=validate test=" + strings.ToValidUTF8(t.ID, "?"),
	}, true)
	if err == nil {
		return nil
	}
	msg := strings.TrimPrefix(err.Error(), t.Path+": ")
	field := ""
	if m := fieldPrefix.FindStringSubmatch(msg); m != nil {
		head, _, _ := strings.Cut(m[1], ".")
		if slices.Contains(sections, head) {
			field, msg = m[1], msg[len(m[0]):]
		}
	}
	p := t.FieldProblem(field, msg)
	if field == "" {
		p.Message = "cannot be rendered: " + p.Message
	}
	return []config.Problem{p}
}
