package jobscript

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// Mount is one entry of environment.container_mount (pyxis's SRC:DST[:FLAGS]): the
// host folder Src is seen as Dst inside the container.
type Mount struct{ Src, Dst string }

// ParseMounts reads a container_mount list. An entry without DST maps the folder to
// itself, as pyxis does.
func ParseMounts(s string) []Mount {
	var out []Mount
	for m := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(m) == "" {
			continue
		}
		parts := strings.Split(m, ":")
		mt := Mount{Src: filepath.Clean(parts[0]), Dst: filepath.Clean(parts[0])}
		if len(parts) > 1 && parts[1] != "" {
			mt.Dst = filepath.Clean(parts[1])
		}
		out = append(out, mt)
	}
	return out
}

// HostPath returns where the container path p lives on the host through the mounts
// (the longest destination that holds it), and whether one does.
func HostPath(mounts []Mount, p string) (string, bool) {
	p = filepath.Clean(p)
	best, host := -1, ""
	for _, m := range mounts {
		if under(p, m.Dst) == "" || len(m.Dst) <= best {
			continue
		}
		rel, _ := filepath.Rel(m.Dst, p)
		best, host = len(m.Dst), filepath.Join(m.Src, rel)
	}
	return host, best >= 0
}

// CheckPaths returns what a real cluster would trip over in the paths a job uses,
// before anything is submitted (planner validate): with a container, each path the job
// reads inside it (the model, the dataset, the work folder, the wheel, the TensorRT-LLM
// checkout, the log folder) must lie inside a container_mount destination; a model or
// dataset that does not exist is an error when this machine sees the folder it should
// be in, and a warning when it does not (it may be visible on the cluster only).
// The run's own log folder is always mounted (the job script adds it). A config without
// container_mount is taken to use the image's own paths and is not checked.
func CheckPaths(t *config.Test) []config.Problem {
	c := &t.Config
	e := &c.Environment
	if e.Emulate || e.ContainerImage == "" {
		return nil
	}
	mounts := ParseMounts(e.ContainerMount)
	var ps []config.Problem
	if len(mounts) == 0 {
		// No mounts at all: the paths are the image's own, which nothing here can see.
		return nil
	}
	for _, f := range []struct {
		field, path string
		mustExist   bool
	}{
		{"environment.model_path", e.ModelPath, true},
		{"benchmark.dataset_file", c.Benchmark.DatasetFile, true},
		{"environment.work_dir", e.WorkDir, false},
		{"environment.trtllm_wheel_path", e.TrtllmWheelPath, false},
		{"environment.trtllm_repo", e.TrtllmRepo, false},
		{"environment.log_dir", e.LogDir, false},
	} {
		if f.path == "" {
			continue
		}
		if !filepath.IsAbs(f.path) {
			ps = append(ps, t.FieldProblem(f.field, fmt.Sprintf("%q is not an absolute path; the container sees only absolute mounts", f.path)))
			continue
		}
		host, ok := HostPath(mounts, f.path)
		if !ok {
			ps = append(ps, t.FieldProblem(f.field, fmt.Sprintf("%s is outside every environment.container_mount destination (%s): the container cannot see it; mount its folder",
				f.path, mountList(mounts))))
			continue
		}
		if !f.mustExist {
			continue
		}
		if _, err := os.Stat(host); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			p := t.FieldProblem(f.field, fmt.Sprintf("cannot check %s from here: %v", host, err))
			p.Warning = true
			ps = append(ps, p)
			continue
		}
		if st, err := os.Stat(filepath.Dir(host)); err == nil && st.IsDir() {
			ps = append(ps, t.FieldProblem(f.field, fmt.Sprintf("%s does not exist (on the host: %s)", f.path, host)))
			continue
		}
		p := t.FieldProblem(f.field, fmt.Sprintf("%s cannot be checked from this machine (%s is not visible here); it must exist on the cluster", f.path, filepath.Dir(host)))
		p.Warning = true
		ps = append(ps, p)
	}
	return ps
}

func mountList(ms []Mount) string {
	if len(ms) == 0 {
		return "none"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.Dst
	}
	return strings.Join(parts, ", ")
}
