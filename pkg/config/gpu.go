package config

import (
	"fmt"
	"slices"
	"strings"
)

// DefaultGPUType is the GPU type assumed when GPU_TYPE is unset.
const DefaultGPUType = "GB200"

// GPUResource is what one GPU type adds to every sbatch command.
type GPUResource struct {
	Name       string   // the normalized GPU type, e.g. GB200
	SbatchArgs []string // resource arguments, e.g. --gres=gpu:4
	Segment    bool     // whether jobs ask for --segment (NVL72 racks)
}

// gpuResources is the one per-GPU table of SLURM resources.
var gpuResources = map[string]GPUResource{
	"GB200": {Name: "GB200", SbatchArgs: []string{"--gres=gpu:4"}, Segment: true},
	"GB300": {Name: "GB300", Segment: true},
	"H100":  {Name: "H100"},
	"B200":  {Name: "B200", SbatchArgs: []string{"--gres=gpu:4"}},
	"B300":  {Name: "B300", SbatchArgs: []string{"--gres=gpu:4"}},
}

// KnownGPUTypes returns the GPU types that have a resource entry, sorted.
func KnownGPUTypes() []string {
	names := make([]string, 0, len(gpuResources))
	for n := range gpuResources {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NormalizeGPU maps a GPU_TYPE value to its table name: upper case, trimmed, and a
// site-specific suffix dropped (GB200_NVL72 counts as GB200). An empty value is the
// default type. Unknown types come back upper-cased and unchanged otherwise.
func NormalizeGPU(gpuType string) string {
	s := strings.ToUpper(strings.TrimSpace(gpuType))
	if s == "" {
		return DefaultGPUType
	}
	if _, ok := gpuResources[s]; ok {
		return s
	}
	if i := strings.IndexByte(s, '_'); i > 0 {
		if _, ok := gpuResources[s[:i]]; ok {
			return s[:i]
		}
	}
	return s
}

// LookupGPU returns the SLURM resources of a GPU type (normalized first). An unknown
// type is an error that lists the known ones.
func LookupGPU(gpuType string) (GPUResource, error) {
	name := NormalizeGPU(gpuType)
	r, ok := gpuResources[name]
	if !ok {
		return GPUResource{}, fmt.Errorf("unknown GPU type %q: known types are %s", gpuType, strings.Join(KnownGPUTypes(), ", "))
	}
	r.SbatchArgs = slices.Clone(r.SbatchArgs)
	return r, nil
}
