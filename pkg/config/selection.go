package config

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Selection says which tests a run takes.
type Selection struct {
	ConfigDir string // default test_configs
	TestList  string // a file, or a bare name looked up under testlist/ beside ConfigDir
	K         string // pytest -k expression over test ids
	Marker    string // pytest -m expression over categories: perf, accuracy, stress
	GPUType   string // overrides GPU_TYPE when set (a flag)
	Flags     Env    // values given as command-line flags, keyed by env var name
	// Check, when set, is run on every test that validates, with the selection's GPU
	// type; its errors make the test invalid (the planner renders the test with it, so a
	// test that cannot be rendered is reported as invalid, not submitted).
	Check func(t *Test, gpuType string) []Problem
	// IDs, when set, keeps only these tests (planner rerun); an id that names no test
	// is an error, as in a test list.
	IDs []string
}

// Skip is a test left out of a run on purpose, with the reason.
type Skip struct{ ID, Reason string }

// Invalid is a selected test with errors; its Problems hold warnings too.
type Invalid struct {
	Test     *Test
	Problems []Problem
}

// Selected is the outcome of a selection: every discovered test that the test list, -k
// and -m chose ends up in exactly one of Tests, Skipped or Invalid.
type Selected struct {
	Tests    []*Test   // valid and runnable, sorted by id
	Skipped  []Skip    // valid but not for this GPU type, sorted by id
	Invalid  []Invalid // with errors, sorted by id
	Warnings []Problem // warnings of the chosen tests and of the config folder
	GPUType  string    // the normalized GPU type the selection used
}

// Select discovers the tests under sel.ConfigDir, resolves each (defaults, then file,
// then env, then flags), chooses by test list, -k and -m, filters by GPU type and
// validates. An id in the test list that names no test is an error that suggests close
// ids; so are an unknown GPU type and a bad -k or -m expression.
func Select(sel Selection, env Env) (*Selected, error) {
	flags := sel.Flags
	if sel.GPUType != "" {
		flags = maps(flags, Env{EnvGPUType: sel.GPUType})
	}
	gpuRaw, _ := Lookup(flags, env, EnvGPUType)
	gpu, err := LookupGPU(gpuRaw)
	if err != nil {
		return nil, fmt.Errorf("GPU_TYPE: %w", err)
	}
	dir := cmp.Or(sel.ConfigDir, DefaultConfigDir)
	var kExpr, mExpr *boolExpr
	if kExpr, err = parseBoolExpr(sel.K, nil); err != nil {
		return nil, fmt.Errorf("-k %q: %w", sel.K, err)
	}
	if mExpr, err = parseBoolExpr(sel.Marker, TestCategories); err != nil {
		return nil, fmt.Errorf("-m %q: %w", sel.Marker, err)
	}
	tests, folderProblems, err := Discover(dir)
	if err != nil {
		return nil, err
	}
	out := &Selected{GPUType: gpu.Name}
	// Folder problems (stray YAML files, unreadable folders) are reported, never fatal.
	out.Warnings = append(out.Warnings, folderProblems...)
	byID := map[string][]*Test{}
	var ids []string
	for _, t := range tests {
		if _, ok := byID[t.ID]; !ok {
			ids = append(ids, t.ID)
		}
		byID[t.ID] = append(byID[t.ID], t)
	}
	chosen, err := choose(sel, dir, byID, ids)
	if err != nil {
		return nil, err
	}
	slices.Sort(chosen)
	chosen = slices.Compact(chosen)
	for _, id := range chosen {
		for _, t := range byID[id] {
			if !kExpr.match(func(word string) bool { return strings.Contains(strings.ToLower(t.ID), strings.ToLower(word)) }) ||
				!mExpr.match(func(word string) bool { return word == t.Category }) {
				continue
			}
			t.Resolve(flags, env)
			problems := t.Validate()
			if !HasErrors(problems) && sel.Check != nil {
				problems = append(problems, sel.Check(t, gpu.Name)...)
			}
			if HasErrors(problems) {
				out.Invalid = append(out.Invalid, Invalid{Test: t, Problems: problems})
				continue
			}
			out.Warnings = append(out.Warnings, problems...)
			if !t.SupportsGPU(gpu.Name) {
				out.Skipped = append(out.Skipped, Skip{ID: t.ID, Reason: fmt.Sprintf("not supported on %s (supported_gpus: %s)", gpu.Name, strings.Join(t.Config.Metadata.SupportedGPUs, ", "))})
				continue
			}
			out.Tests = append(out.Tests, t)
		}
	}
	return out, nil
}

// SupportsGPU reports whether metadata.supported_gpus names the GPU type (normalized).
func (t *Test) SupportsGPU(gpuType string) bool {
	want := NormalizeGPU(gpuType)
	return slices.ContainsFunc(t.Config.Metadata.SupportedGPUs, func(g string) bool { return NormalizeGPU(g) == want })
}

func maps(a, b Env) Env {
	out := Env{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// findTestList resolves a test list name: as given when it exists, else under
// testlist/ beside the config folder.
func findTestList(name, configDir string) string {
	if _, err := os.Stat(name); err == nil || strings.ContainsRune(name, os.PathSeparator) {
		return name
	}
	// The seed names its lists without the extension (--test-list disagg for
	// testlist/disagg.txt), so NAME and NAME.txt are both tried.
	for _, n := range []string{name, name + ".txt"} {
		alt := filepath.Join(filepath.Dir(filepath.Clean(configDir)), "testlist", n)
		if _, err := os.Stat(alt); err == nil {
			return alt
		}
	}
	return name
}

// ReadTestList reads a test list: one test id a line, '#' comments and blank lines
// ignored. The seed's pytest node ids
// (test_disagg.py::TestDisaggBenchmark::test_benchmark[<id>], test_accuracy[<id>],
// test_stress[<id>]) are read as the id in brackets.
func ReadTestList(path string) ([]string, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("test list: %w", err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		id, err := listEntryID(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("test list %s: %w", path, err)
	}
	return ids, nil
}

func listEntryID(line string) (string, error) {
	if strings.Contains(line, "::") || strings.HasSuffix(line, "]") {
		// A pytest node id, perhaps followed by an annotation ("... TIMEOUT (90)").
		open, end := strings.IndexByte(line, '['), strings.LastIndexByte(line, ']')
		if open < 0 || end < open+2 || (end+1 < len(line) && line[end+1] != ' ' && line[end+1] != '\t') {
			return "", fmt.Errorf("%q is neither a test id nor a pytest node id such as test_disagg.py::TestDisaggBenchmark::test_benchmark[<id>]", line)
		}
		return line[open+1 : end], nil
	}
	if strings.ContainsAny(line, " \t") {
		return "", fmt.Errorf("%q: one test id a line, without spaces", line)
	}
	return line, nil
}

// unknownIDsError names each unknown id with the closest known ones. When no id asked
// for is known, the config folder is the likelier mistake, and it says so.
func unknownIDsError(listPath, dir string, unknown, known []string, asked int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "test list %s names %d unknown test id(s):", listPath, len(unknown))
	for _, id := range unknown {
		fmt.Fprintf(&b, "\n  %s", id)
		if s := SuggestIDs(id, known, 3); len(s) > 0 {
			fmt.Fprintf(&b, " (did you mean %s?)", strings.Join(s, " or "))
		}
	}
	if len(unknown) == asked {
		fmt.Fprintf(&b, "\nnone of them is among the %d test(s) under %s: is --config-dir the folder of these tests?", len(known), dir)
	}
	return errors.New(b.String())
}

// SuggestIDs returns up to n known ids close to id.
func SuggestIDs(id string, known []string, n int) []string {
	type cand struct {
		id   string
		dist int
	}
	var cs []cand
	limit := max(3, len(id)/4)
	for _, k := range known {
		d := editDistance(id, k)
		if d <= limit || strings.Contains(k, id) {
			cs = append(cs, cand{k, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if a.dist != b.dist {
			return a.dist - b.dist
		}
		return strings.Compare(a.id, b.id)
	})
	var out []string
	for i := 0; i < len(cs) && i < n; i++ {
		out = append(out, cs[i].id)
	}
	return out
}

// choose narrows the discovered ids to the test list's, then to sel.IDs; an unknown id
// in either is an error naming the closest known ones.
func choose(sel Selection, dir string, byID map[string][]*Test, ids []string) ([]string, error) {
	chosen := ids
	if sel.TestList != "" {
		listPath := findTestList(sel.TestList, dir)
		listed, err := ReadTestList(listPath)
		if err != nil {
			return nil, err
		}
		var unknown []string
		chosen = nil
		for _, id := range listed {
			if _, ok := byID[id]; !ok {
				unknown = append(unknown, id)
				continue
			}
			chosen = append(chosen, id)
		}
		if len(unknown) > 0 {
			return nil, unknownIDsError(listPath, dir, unknown, ids, len(listed))
		}
	}
	if sel.IDs != nil {
		var unknown []string
		keep := chosen[:0:0]
		for _, id := range sel.IDs {
			if _, ok := byID[id]; !ok {
				unknown = append(unknown, id)
			} else if slices.Contains(chosen, id) {
				keep = append(keep, id)
			}
		}
		if len(unknown) > 0 {
			return nil, unknownIDsError(dir, dir, unknown, ids, len(sel.IDs))
		}
		chosen = keep
	}
	return chosen, nil
}
