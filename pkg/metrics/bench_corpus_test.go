package metrics

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/pyre"
)

// corpusCycle is about 1 MiB of client log: spans of every concurrency with server
// noise, progress bars, and a warmup block in every fourth span.
func corpusCycle() []byte {
	var b strings.Builder
	for i := 0; b.Len() < 1<<20; i++ {
		c := 1 << (i % 11)
		s := span{conc: c, prompts: 10 * c, run: makeRun(c, 10*c, float64(i%97)), warmup: i%4 == 0}
		log := clientLog([]span{s}, false)
		// clientLog starts every log with its preamble and an unmarked warmup; keep them
		// only in the first span.
		if i > 0 {
			log = log[strings.Index(log, "Benchmarking with"):]
		}
		b.WriteString(log)
	}
	return []byte(b.String())
}

// corpusReader streams n bytes made of whole copies of cycle and then its prefix.
type corpusReader struct {
	cycle []byte
	left  int64
	off   int
}

func (r *corpusReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.cycle[r.off:])
	r.off = (r.off + n) % len(r.cycle)
	r.left -= int64(n)
	return n, nil
}

func corpusMB() int64 {
	if v, err := strconv.Atoi(os.Getenv("METRICS_CORPUS_MB")); err == nil && v > 0 {
		return int64(v)
	}
	return 128
}

// BenchmarkScanBench streams a generated client log (METRICS_CORPUS_MB, default 128, and
// four times that) through ScanBench, reporting throughput and the peak heap sampled
// while it runs, which must not grow with the corpus.
func BenchmarkScanBench(b *testing.B) {
	cycle := corpusCycle()
	for _, mb := range []int64{corpusMB(), 4 * corpusMB()} {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			size := mb << 20
			b.SetBytes(size)
			var peak uint64
			var ms runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms)
			base := ms.HeapInuse
			blocks := 0
			b.ResetTimer()
			for range b.N {
				blocks = 0
				err := ScanBench(&corpusReader{cycle: cycle, left: size}, func(Block) error {
					blocks++
					if blocks%4096 == 0 {
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapInuse)
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(blocks), "blocks/op")
			if peak > base {
				b.ReportMetric(float64(peak-base)/(1<<20), "peak-heap-MB")
			} else {
				b.ReportMetric(0, "peak-heap-MB")
			}
		})
	}
}

// BenchmarkSeedComparison writes one corpus file and times, on that file, the block
// reader, the seed's default pattern through Go's regexp, and (when python3 exists) the
// seed's own way: Python re with re.VERBOSE | re.MULTILINE over the whole file read into
// memory. Each is reported in MB/s. METRICS_CORPUS_FILE names the file to write and
// keep (to time `collector parse` on it); by default it goes to a temporary folder.
func BenchmarkSeedComparison(b *testing.B) {
	size := corpusMB() << 20
	path := os.Getenv("METRICS_CORPUS_FILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), ClientLog)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, &corpusReader{cycle: corpusCycle(), left: size}); err != nil {
		b.Fatal(err)
	}
	f.Close()
	mbs := func(d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

	// CPU time as well as wall time: on a shared machine the CPU figures compare fairly.
	b.Run("blocks", func(b *testing.B) {
		b.SetBytes(size)
		cpu := processCPU()
		defer func() {
			if d := processCPU() - cpu; d > 0 {
				b.ReportMetric(mbs(d/time.Duration(b.N)), "cpu-MB/s")
			}
		}()
		for range b.N {
			f, _ := os.Open(path)
			n := 0
			if err := ScanBench(f, func(Block) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("seed-pattern-go-regexp", func(b *testing.B) {
		re, err := pyre.Compile(seedDisaggPattern)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		for range b.N {
			data, _ := os.ReadFile(path)
			if len(re.FindAllSubmatchIndex(data, -1)) == 0 {
				b.Fatal("no match")
			}
		}
	})
	b.Run("seed-pattern-python-re", func(b *testing.B) {
		py, err := exec.LookPath("python3")
		if err != nil {
			b.Skip("python3 not found")
		}
		script := `
import re, sys, time
rx = re.compile(sys.argv[1], re.VERBOSE | re.MULTILINE)
t, c = time.perf_counter(), time.process_time()
with open(sys.argv[2]) as f:
    text = f.read()
n = sum(1 for _ in rx.finditer(text))
print(time.perf_counter() - t, time.process_time() - c, n)
`
		var wall, cpu time.Duration
		for range b.N {
			out, err := exec.Command(py, "-c", script, seedDisaggPattern, path).Output()
			if err != nil {
				b.Fatal(err)
			}
			fs := strings.Fields(string(out))
			w, _ := strconv.ParseFloat(fs[0], 64)
			c, _ := strconv.ParseFloat(fs[1], 64)
			wall += time.Duration(w * float64(time.Second))
			cpu += time.Duration(c * float64(time.Second))
		}
		// Python's own clocks, without interpreter start-up.
		b.ReportMetric(mbs(wall/time.Duration(b.N)), "py-MB/s")
		b.ReportMetric(mbs(cpu/time.Duration(b.N)), "py-cpu-MB/s")
	})
}
