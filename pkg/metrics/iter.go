package metrics

import (
	"bufio"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
)

// IterRow is a statistic of the workers' iteration logs over one concurrency, from the
// per-concurrency slices the built-in job script leaves (upstream's log processing):
// concurrency_<c>/gen_only_<id>.txt holds the generation-only iterations of gen server
// id during that point, ctx_only_<id>.txt the context-only iterations of ctx server id.
// Concurrency is the configured value. The rows are recorded, never judged.
type IterRow struct {
	Concurrency int
	Metric      string // gen_only_iterations, gen_only_median_step_time, ...
	Value       float64
	Unit        string
}

var (
	iterStepTime  = regexp.MustCompile(`host_step_time = ([0-9.]+)ms`)
	iterScheduled = regexp.MustCompile(`num_scheduled_requests: ([0-9]+)`)
)

// maxIterLines bounds the lines read from one slice.
const maxIterLines = 1 << 20

// iterations reads the slices of every concurrency in cs (configured values).
func (j *judge) iterations(cs []int) {
	if j.f == nil {
		return
	}
	for _, c := range cs {
		for _, kind := range []string{"gen_only", "ctx_only"} {
			names, err := j.f.glob(path.Join(fmt.Sprintf("concurrency_%d", c), kind+"_*.txt"))
			if err != nil || len(names) == 0 {
				continue
			}
			slices.Sort(names)
			var steps []float64
			var n, scheduled float64
			for _, name := range names {
				file, err := j.f.open(name, maxLogFile)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(file)
				sc.Buffer(make([]byte, 64<<10), maxLine)
				for lines := 0; sc.Scan() && lines < maxIterLines; lines++ {
					line := sc.Bytes()
					n++
					if m := iterStepTime.FindSubmatch(line); m != nil {
						if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
							steps = append(steps, v)
						}
					}
					if m := iterScheduled.FindSubmatch(line); m != nil {
						if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
							scheduled += v
						}
					}
				}
				file.Close()
			}
			if n == 0 {
				continue
			}
			j.res.Iterations = append(j.res.Iterations, IterRow{c, kind + "_iterations", n, "count"})
			if len(steps) > 0 {
				j.res.Iterations = append(j.res.Iterations, IterRow{c, kind + "_median_step_time", median(steps), "ms"},
					IterRow{c, kind + "_mean_scheduled_requests", scheduled / n, "count"})
			}
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
