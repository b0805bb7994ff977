package config

import (
	"errors"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// Test types and categories a config folder may hold.
var (
	TestTypes      = []string{"disagg", "wideep"}
	TestCategories = []string{"perf", "accuracy", "stress"}
)

// DefaultConfigDir is where tests are discovered when no folder is given.
const DefaultConfigDir = "test_configs"

// typeCategory reads {type}/{category}/ from a config file's path; both are empty when
// the path does not have that shape.
func typeCategory(path string) (string, string) {
	dir := filepath.Dir(filepath.Clean(path))
	cat, typ := filepath.Base(dir), filepath.Base(filepath.Dir(dir))
	if slices.Contains(TestTypes, typ) && slices.Contains(TestCategories, cat) {
		return typ, cat
	}
	return "", ""
}

// Tree is the folder a config belongs to, the one its files may refer to: for a config
// in CONFIGS/{type}/{category}/, the folder that holds CONFIGS (a project such as the
// repository or examples/quickstart, whose test_configs/ is CONFIGS); for any other
// config, its own folder. The path is absolute.
func Tree(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	dir := filepath.Dir(abs)
	if typ, cat := typeCategory(abs); typ != "" && cat != "" {
		return filepath.Dir(filepath.Dir(filepath.Dir(dir)))
	}
	return dir
}

// MakeID is the test id: {test_type}_{category}_{file stem}.
func MakeID(testType, category, file string) string {
	stem := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	if testType == "" || category == "" {
		return stem
	}
	return testType + "_" + category + "_" + stem
}

// pathID is the id of the test at path.
func pathID(path string) string {
	typ, cat := typeCategory(path)
	return MakeID(typ, cat, path)
}

// LoadFile reads and strictly decodes one test config. Type and category come from a
// {type}/{category}/ path. The returned test is never nil; its problems are also part
// of what Validate reports.
func LoadFile(path string) (*Test, []Problem) { return loadFile(path, nil) }

// loadFile is LoadFile with the parse admitted by gate (when not nil) on the budget of
// the file's size.
func loadFile(path string, gate *memGate) (*Test, []Problem) {
	typ, cat := typeCategory(path)
	t := &Test{ID: pathID(path), Type: typ, Category: cat, Path: path, Sources: map[string]string{}}
	data, err := readConfigFile(path)
	if err != nil {
		t.problems = []Problem{{File: path, Line: 1, Col: 1, Message: err.Error()}}
		t.pos, t.unreadable = &positions{}, true
		return t, t.problems
	}
	if gate != nil {
		cost := parseCost(int64(len(data)))
		gate.acquire(cost)
		defer gate.release(cost)
	}
	return t, t.decode(data)
}

// LoadBytes decodes a test config from memory as if it were the file at path.
func LoadBytes(path string, data []byte) (*Test, []Problem) {
	typ, cat := typeCategory(path)
	t := &Test{ID: MakeID(typ, cat, path), Type: typ, Category: cat, Path: path, Sources: map[string]string{}}
	return t, t.decode(data)
}

func (t *Test) decode(data []byte) []Problem {
	cfg, pos, problems, fatal := decodeConfig(t.Path, data)
	t.Config, t.pos, t.problems, t.unreadable = cfg, pos, problems, fatal
	return slices.Clone(problems)
}

// openRegular opens a file for reading without ever blocking: a FIFO or a device is
// refused after a non-blocking open, never waited on. It returns the open file's
// information too.
func openRegular(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(st.Mode()))
	}
	return f, st, nil
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m.IsDir():
		return "a folder"
	}
	return "not a plain file"
}

// readConfigFile reads a config file of at most maxFileSize bytes, without blocking on
// a FIFO or a device and without the runtime's poller (one open, stat, read and close).
func readConfigFile(path string) ([]byte, error) {
	data, err := fileio.ReadRegular(path, maxFileSize, 0)
	var notRegular *fileio.NotRegularError
	var tooLarge *fileio.TooLargeError
	switch {
	case errors.As(err, &notRegular):
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(notRegular.Mode))
	case errors.As(err, &tooLarge) && tooLarge.Size > 0:
		return nil, fmt.Errorf("file is %d bytes, more than the %d a test config may have", tooLarge.Size, maxFileSize)
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("file is more than the %d bytes a test config may have", maxFileSize)
	}
	return data, err
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// Discover loads every test under dir/{type}/{category}/*.yaml, sorted by id. Each
// test's own problems (syntax, unknown keys, a duplicate id) are reported by its
// Validate; the returned problems are about the folder: YAML files that are not in a
// {type}/{category}/ folder and so are not tests. The error is for a folder that cannot
// be read at all.
func Discover(dir string) ([]*Test, []Problem, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("config folder: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("config folder %s is not a folder", dir)
	}
	var tests []*Test
	var paths []string
	var problems []Problem
	err = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			problems = append(problems, Problem{File: path, Message: err.Error()})
			if e != nil && e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		depth := strings.Count(filepath.ToSlash(rel), "/")
		if e.IsDir() {
			if rel != "." && (e.Name() == "templates" || strings.HasPrefix(e.Name(), ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if !isYAML(e.Name()) {
			return nil
		}
		if depth != 2 {
			problems = append(problems, Problem{File: path, Line: 1, Col: 1, Warning: true,
				Message: "not a test: test configs live in {type}/{category}/*.yaml"})
			return nil
		}
		if typ, cat := typeCategory(path); typ == "" || cat == "" {
			problems = append(problems, Problem{File: path, Line: 1, Col: 1, Warning: true,
				Message: fmt.Sprintf("not a test: the folder must be {type}/{category}/ with type %s and category %s",
					strings.Join(TestTypes, "|"), strings.Join(TestCategories, "|"))})
			return nil
		}
		paths = append(paths, path)
		return nil
	})
	if err != nil {
		return nil, problems, err
	}
	tests = LoadFiles(paths)
	markDuplicates(tests)
	slices.SortFunc(tests, func(a, b *Test) int { return strings.Compare(a.ID+"\x00"+a.Path, b.ID+"\x00"+b.Path) })
	return tests, problems, nil
}

// markDuplicates gives every test that shares its id with another a problem.
func markDuplicates(tests []*Test) {
	ids, paths := make([]string, len(tests)), make([]string, len(tests))
	for i, t := range tests {
		ids[i], paths[i] = t.ID, t.Path
	}
	for i, p := range duplicateProblems(ids, paths) {
		tests[i].problems = append(tests[i].problems, p)
	}
}

// duplicateProblems returns, by index, the problem of each test whose id (ids[i], of
// the file paths[i]) another test has too.
func duplicateProblems(ids, paths []string) map[int]Problem {
	byID := map[string][]int{}
	for i, id := range ids {
		byID[id] = append(byID[id], i)
	}
	out := map[int]Problem{}
	for id, is := range byID {
		if len(is) < 2 {
			continue
		}
		for _, i := range is {
			var others []string
			for _, j := range is {
				if j != i {
					others = append(others, paths[j])
				}
			}
			out[i] = Problem{File: paths[i], Line: 1, Col: 1,
				Message: fmt.Sprintf("test id %s is also the id of %s: rename one of the files", id, strings.Join(others, ", "))}
		}
	}
	return out
}

// Memory the loader may use: a config's parse takes at most maxConfigMemory (the token
// cap bounds it; see TestKeyHeavyConfigMemoryIsBounded), a small file far less.
const (
	maxConfigMemory = 64 << 20
	loadMemory      = 256 << 20 // all configs being parsed at once
	memPerByte      = 100       // a parse allocates about this much per byte of file
)

// parseCost is the memory the parse of a file of size bytes is budgeted.
func parseCost(size int64) int64 {
	return min(max(size*memPerByte, 64<<10), maxConfigMemory)
}

// memGate admits parses while their budgeted memory fits in loadMemory; one parse is
// always admitted, so a large file waits for the others but never forever.
type memGate struct {
	mu    sync.Mutex
	cond  *sync.Cond
	inUse int64
}

func syncCond(g *memGate) *sync.Cond { return sync.NewCond(&g.mu) }

func (g *memGate) acquire(n int64) {
	g.mu.Lock()
	for g.inUse > 0 && g.inUse+n > loadMemory {
		g.cond.Wait()
	}
	g.inUse += n
	g.mu.Unlock()
}

func (g *memGate) release(n int64) {
	g.mu.Lock()
	g.inUse -= n
	g.mu.Unlock()
	g.cond.Broadcast()
}

// LoadFiles loads many files at once, in parallel (file reads wait on the disk), and
// returns the tests in the order of paths. Parallelism is bounded by CPUs and by
// memory: the parses in flight are budgeted at most loadMemory together.
func LoadFiles(paths []string) []*Test {
	tests := make([]*Test, len(paths))
	loadEach(paths, func(i int, t *Test) { tests[i] = t })
	return tests
}

// LoadEach loads the files as LoadPaths does (in parallel, tests whose ids collide
// marked) and calls fn with each test and its index in files as soon as it is loaded,
// from several goroutines at once: a caller that keeps no test holds in memory only
// those in flight.
func LoadEach(files []string, fn func(i int, t *Test)) {
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = pathID(f)
	}
	dups := duplicateProblems(ids, files)
	loadEach(files, func(i int, t *Test) {
		if p, ok := dups[i]; ok {
			t.problems = append(t.problems, p)
		}
		fn(i, t)
	})
}

// loadEach loads every file with LoadFile and calls fn with each test, bounded by CPUs
// and by memory (the parses in flight are budgeted at most loadMemory together).
func loadEach(paths []string, fn func(i int, t *Test)) {
	workers := min(len(paths), 4*runtime.GOMAXPROCS(0))
	gate := &memGate{}
	gate.cond = syncCond(gate)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				t, _ := loadFile(paths[i], gate)
				fn(i, t)
			}
		})
	}
	for i := range paths {
		next <- i
	}
	close(next)
	wg.Wait()
}

// LoadPaths loads the given config files and every YAML file under the given folders
// (skipping hidden folders), and marks tests whose ids collide. Problems met while
// walking a folder are returned beside the tests; an error means a path could not be
// read at all.
func LoadPaths(paths []string) ([]*Test, []Problem, error) {
	files, problems, err := ConfigFiles(paths)
	if err != nil {
		return nil, nil, err
	}
	// Loaded in parallel, returned in the order met.
	tests := LoadFiles(files)
	markDuplicates(tests)
	return tests, problems, nil
}

// ConfigFiles lists the files LoadPaths loads: the given config files and every YAML
// file under the given folders (skipping hidden folders), in the order met. Problems
// met while walking a folder are returned beside them; an error means a path could not
// be read at all.
func ConfigFiles(paths []string) ([]string, []Problem, error) {
	var files []string
	var problems []Problem
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, e os.DirEntry, err error) error {
			if err != nil {
				problems = append(problems, Problem{File: path, Message: err.Error()})
				return nil
			}
			if e.IsDir() && path != p && strings.HasPrefix(e.Name(), ".") {
				return filepath.SkipDir
			}
			if !e.IsDir() && isYAML(e.Name()) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return files, problems, nil
}
