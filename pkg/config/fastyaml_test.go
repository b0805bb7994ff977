package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/config/configtest"
)

// diffNodes returns where two trees differ on what the decoder reads (kind, style,
// tag, value, position, anchor, alias, children), or "" when they agree. Comments are
// not compared: nothing reads them.
func diffNodes(fast, want *yaml.Node, path string) string {
	if fast == nil || want == nil {
		if fast != want {
			return fmt.Sprintf("%s: fast %v, yaml.v3 %v", path, fast, want)
		}
		return ""
	}
	type view struct {
		Kind          yaml.Kind
		Style         yaml.Style
		Tag, ShortTag string
		Value, Anchor string
		Line, Column  int
		Alias         bool
		Children      int
	}
	see := func(n *yaml.Node) view {
		return view{n.Kind, n.Style, n.Tag, n.ShortTag(), n.Value, n.Anchor, n.Line, n.Column, n.Alias != nil, len(n.Content)}
	}
	if f, w := see(fast), see(want); f != w {
		return fmt.Sprintf("%s:\n  fast    %+v\n  yaml.v3 %+v", path, f, w)
	}
	if (fast.Content == nil) != (want.Content == nil) {
		return fmt.Sprintf("%s: Content nil %v, yaml.v3 nil %v", path, fast.Content == nil, want.Content == nil)
	}
	for i := range fast.Content {
		if d := diffNodes(fast.Content[i], want.Content[i], fmt.Sprintf("%s/%d", path, i)); d != "" {
			return d
		}
	}
	return ""
}

// checkFastYAML parses data both ways. It fails the test when the fast path accepts
// data and its tree differs from yaml.v3's (or yaml.v3 refuses data), and reports
// whether the fast path accepted.
func checkFastYAML(t *testing.T, name string, data []byte) bool {
	t.Helper()
	fast := parseFastYAML(data)
	if fast == nil {
		return false
	}
	var want yaml.Node
	if err := yaml.Unmarshal(data, &want); err != nil {
		t.Errorf("%s: fast path accepted what yaml.v3 refuses (%v):\n%s", name, err, data)
		return true
	}
	if d := diffNodes(fast, &want, "doc"); d != "" {
		t.Errorf("%s: fast path and yaml.v3 differ at %s\ninput:\n%s", name, d, data)
	}
	return true
}

// fastYAMLCorpus returns the YAML files of the repository that tests and users write:
// test_configs/, examples/, the testdata of pkg/config, pkg/jobscript and the services,
// keyed by path.
func fastYAMLCorpus(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	roots := []string{"../../test_configs", "../../examples", "testdata", "../jobscript/testdata"}
	services, _ := filepath.Glob("../../services/*/testdata")
	for _, root := range append(roots, services...) {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if ext := filepath.Ext(path); d.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				files[path] = data
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) < 20 {
		t.Fatalf("found only %d YAML files", len(files))
	}
	return files
}

// benchYAML returns n of the generated benchmark configs, keyed by path.
func benchYAML(t testing.TB, n int) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	configtest.WriteBenchConfigs(t, dir, n)
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files[path], err = os.ReadFile(path)
		}
		return err
	})
	if err != nil || len(files) != n {
		t.Fatalf("%d bench configs, %v", len(files), err)
	}
	return files
}

// TestFastYAMLMatchesYAMLv3OnConfigs is the differential test on real files: the
// repository's configs and a few hundred generated ones either take the fast path with
// yaml.v3's exact tree or go to yaml.v3; nearly all must take it.
func TestFastYAMLMatchesYAMLv3OnConfigs(t *testing.T) {
	count := func(files map[string][]byte) (fast int, slow []string) {
		for path, data := range files {
			if checkFastYAML(t, path, data) {
				fast++
			} else {
				slow = append(slow, path)
			}
		}
		return fast, slow
	}
	repo := fastYAMLCorpus(t)
	fast, slow := count(repo)
	t.Logf("repository: %d of %d YAML files took the fast path; yaml.v3 parsed %q", fast, len(repo), slow)
	if fast < len(repo)*8/10 {
		t.Errorf("only %d of %d repository files took the fast path: %q", fast, len(repo), slow)
	}
	bench := benchYAML(t, 300)
	fast, slow = count(bench)
	t.Logf("generated: %d of %d configs took the fast path", fast, len(bench))
	if len(slow) > 0 {
		t.Errorf("generated configs went to yaml.v3: %q", slow)
	}
}

// TestFastYAMLCases holds hand-written inputs: those the fast path must parse as
// yaml.v3 does, and those it must leave to yaml.v3.
func TestFastYAMLCases(t *testing.T) {
	for name, in := range fastYAMLMatch {
		t.Run("match/"+name, func(t *testing.T) {
			if !checkFastYAML(t, name, []byte(in)) {
				t.Fatalf("fast path refused:\n%s", in)
			}
		})
	}
	for name, in := range fastYAMLBail {
		t.Run("bail/"+name, func(t *testing.T) {
			if n := parseFastYAML([]byte(in)); n != nil {
				t.Fatalf("fast path accepted %q", in)
			}
		})
	}
}

// fastYAMLMatch holds inputs the fast path must parse, to yaml.v3's tree.
var fastYAMLMatch = map[string]string{
	"null value":            "a:\nb: 1\n",
	"null value at the end": "a: 1\nb:",
	"null with spaces":      "a:    \nb:   # c\n",
	"null before dedent":    "a:\n  b:\nc: 1\n",
	"null entries":          "a:\n-\n- # c\n- x\n-",
	"tilde and null":        "a: ~\nb: null\nc: Null\nd: NULL\ne: nil\n",
	"empty flow":            "a: []\nb: [ ]\nc: [1]\n",
	"flow scalars":          "a: [1, two, 'three', \"four\", 5.0, -6, true, ~, null, 1_000]\n",
	"flow with spaces":      "a: [ a b ,c  ,  d ]   # c\n",
	"numbers":               "a: 1_000\nb: 0x1F\nc: .inf\nd: -.inf\ne: 1e3\nf: 0o17\ng: 017\nh: 089\ni: +12\nj: 0b101\nk: .5\nl: 1.\nm: -0\nn: 123456789012345678901234567890\no: 0\np: 007\nq: .nan\nr: 1e\ns: 12:30\n",
	"booleans and strings":  "a: true\nb: \"true\"\nc: 'yes'\nd: no\ne: ~\nf: False\ng: TRUE\nh: yes\ni: on\nj: y\nk: tRUE\n",
	"timestamps":            "a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\nc: 2001-13-45\n",
	"keys with dashes":      "a-b: 1\nc_d-e.f/g: 2\n1: one\ntrue: t\nnull: n\n.5: f\n",
	"sequence of mappings":  "a:\n  - x: 1\n    y: [2]\n  - z: 3\n    w:\n      - q\n",
	"sequences under a key at the key's column": "a:\n- 1\n- 2\nb:\n  - x: 1\n  - y\nc: 3\n",
	"deeper sequences":                          "a:\n    -   x: 1\n        y: 2\n    -   z\n",
	"sequence in an entry's mapping":            "- a:\n  - x\n  b: 1\n- c\n",
	"nested entry on the next line":             "-\n  a: 1\n-\n  - x\n",
	"trailing comments":                         "a: b # c\nd: 'e' # f\ng: \"h\"   #i\nj: [k] # l\n# end\n",
	"hash inside a value":                       "a: a#b\nb: a #b\nc: 'a #b'\nd: \"#x\"\ne: x#\n",
	"colons inside a value":                     "a: http://x:8080/y\nb: --gres=gpu:4\nc: a:b\nd: '-: x'\ne: \"k: v\"\n",
	"quotes":                                    "a: ''\nb: \"\"\nc: 'it''s'\nd: ''''\ne: ' spaced '\nf: \"it's\"\ng: 'say \"hi\"'\n",
	"plain with inner quotes and marks":         "a: it's\nb: x\"y\nc: a, b\nd: x{y}\ne: x]\nf: -x\ng: x - y\nh: a  b\n",
	"comments and blank lines":                  "# head\n\n   # indented\na:   # c\n\n  # between\n\n  b: 1\n    # deeper\n# outdented\n  c: 2\n\n\n",
	"comments between entries":                  "a:\n# c\n- x\n  # d\n- y\n      #e\nb:\n  - # f\n    c: 1 # g\n    # h\n    d: 2\n  # i\n  - e\n",
	"comments before nested blocks":             "a: # c\n  # d\n  b: # e\n    - x # f\n    # g\n# h\nk:\n-\n  # i\n  j: 1\n",
	"indented root":                             "  a: 1\n  b:\n    c: 2\n",
	"root sequence":                             "- a\n- b: 1\n",
	"no final newline":                          "a:\n  b: [1, 2]",
	"keys like values":                          "on: 1\nyes: 2\ny: 3\nn: 4\n",
	"deep":                                      deepYAML(fastMaxDepth - 1),
	"long key within yaml.v3's limit":           strings.Repeat("k", 1000) + ": 1\n",
	"merge look-alike value":                    "a: <<\nb: x<<\n",
}

// fastYAMLBail holds inputs the fast path must leave to yaml.v3.
var fastYAMLBail = map[string]string{
	"tab":                                  "a:\tb\n",
	"tab indentation":                      "a:\n\tb: 1\n",
	"CR":                                   "a: 1\r\nb: 2\r\n",
	"non-ASCII":                            "a: café\n",
	"BOM":                                  "\ufeffa: 1\n",
	"NUL":                                  "a: \x00\n",
	"document start":                       "---\na: 1\n",
	"document end":                         "a: 1\n...\n",
	"directive":                            "%YAML 1.2\n---\na: 1\n",
	"anchor":                               "a: &x 1\nb: 2\n",
	"alias":                                "a: 1\nb: *a\n",
	"tag":                                  "a: !!str 1\n",
	"local tag":                            "a: !x 1\n",
	"literal block":                        "a: |\n  x\n",
	"folded block":                         "a: >\n  x\n",
	"flow mapping":                         "a: {b: 1}\n",
	"flow mapping at root":                 "{a: 1}\n",
	"complex key":                          "? a\n: b\n",
	"merge key":                            "a:\n  <<: {b: 1}\n",
	"quoted key":                           "\"a\": 1\n",
	"single-quoted key":                    "'a': 1\n",
	"key with a space":                     "a b: 1\n",
	"space before colon":                   "a : 1\n",
	"multi-line plain":                     "a: b\n  c\n",
	"multi-line single quotes":             "a: 'b\n  c'\n",
	"multi-line double quotes":             "a: \"b\n  c\"\n",
	"multi-line flow":                      "a: [1,\n  2]\n",
	"escape":                               "a: \"b\\tc\"\n",
	"duplicate key":                        "a: 1\nb: 2\na: 3\n",
	"duplicate nested key":                 "a:\n  b: 1\n  b: 2\n",
	"value with colon space":               "a: b: c\n",
	"value ending in a colon":              "a: b:\n",
	"value ending in colon before comment": "a: b: # c\n",
	"inconsistent indentation":             "a:\n    b: 1\n  c: 2\n",
	"less indented inside an entry":        "- a: 1\n b: 2\n",
	"sequence then key at same depth":      "a:\n  - x\n  b: 1\n",
	"key then entry in a mapping":          "a:\n  b: 1\n  - x\n",
	"compact nested sequence":              "- - a\n",
	"empty document":                       "",
	"only comments":                        "# a\n\n# b\n",
	"root scalar":                          "hello\n",
	"root flow":                            "[1, 2]\n",
	"dash as value":                        "a: -\n",
	"entry as value":                       "a: - b\n",
	"trailing comma":                       "a: [1, ]\n",
	"empty flow entry":                     "a: [1, , 2]\n",
	"nested flow":                          "a: [[1]]\n",
	"flow then text":                       "a: [1] x\n",
	"quote then text":                      "a: 'b' c\n",
	"comment glued to a quote":             "a: 'b'#c\n",
	"key glued to a comment":               "a:#c\n",
	"question mark value":                  "a: ?x\n",
	"indicator values":                     "a: @x\n",
	"backquote":                            "a: `x`\n",
	"percent value":                        "a: %x\n",
	"colon in flow":                        "a: [b:c]\n",
	"hash in flow":                         "a: [b#c]\n",
	"too deep":                             deepYAML(fastMaxDepth + 1),
	"long key":                             strings.Repeat("k", 1100) + ": 1\n",
}

// deepYAML returns a mapping nested depth levels deep.
func deepYAML(depth int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, "%sk:\n", strings.Repeat(" ", i))
	}
	fmt.Fprintf(&b, "%sk: 1\n", strings.Repeat(" ", depth))
	return b.String()
}

// TestFastYAMLDecodesAsBefore checks decodeConfig through the fast path gives the
// same config, positions and problems as through yaml.v3 alone, on a valid config and
// on configs with problems of the kinds the decoder reports.
func TestFastYAMLDecodesAsBefore(t *testing.T) {
	base := configtest.BaseYAML(t)
	inputs := map[string]string{
		"base":         base,
		"unknown key":  strings.Replace(base, "  model_name:", "  model_nam:", 1),
		"wrong type":   strings.Replace(base, "streaming: true", "streaming: [1]", 1),
		"bad integer":  strings.Replace(base, "input_length: 1024", "input_length: 10x", 1),
		"quoted bool":  strings.Replace(base, "streaming: true", "streaming: 'true'", 1),
		"null section": strings.Replace(base, "benchmark:\n", "benchmark:\nbenchmark2:\n", 1),
	}
	for name, in := range inputs {
		if parseFastYAML([]byte(in)) == nil {
			t.Errorf("%s: fast path refused the input", name)
			continue
		}
		got, gotPos, gotProblems, gotFatal := decodeConfig("x.yaml", []byte(in))
		want, wantPos, wantProblems, wantFatal := decodeWithYAMLv3("x.yaml", []byte(in))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: fast path decodes to\n%+v\nyaml.v3 to\n%+v", name, got, want)
		}
		if !reflect.DeepEqual(gotProblems, wantProblems) || gotFatal != wantFatal {
			t.Errorf("%s: fast path problems %v (fatal %v), yaml.v3 %v (fatal %v)", name, gotProblems, gotFatal, wantProblems, wantFatal)
		}
		if !reflect.DeepEqual(gotPos, wantPos) {
			t.Errorf("%s: fast path positions\n%v\nyaml.v3\n%v", name, *gotPos, *wantPos)
		}
	}
}

// decodeWithYAMLv3 is decodeConfig with the fast path turned off.
func decodeWithYAMLv3(file string, data []byte) (Config, *positions, []Problem, bool) {
	fastYAML = false
	defer func() { fastYAML = true }()
	return decodeConfig(file, data)
}

// FuzzFastYAML mutates the repository's configs: whenever the fast path accepts an
// input, its tree must be yaml.v3's.
func FuzzFastYAML(f *testing.F) {
	for _, data := range fastYAMLCorpus(f) {
		f.Add(data)
	}
	for _, data := range benchYAML(f, 3) {
		f.Add(data)
	}
	f.Add([]byte("a:\n- x\n-\n- y: [1, 'b', \"c\"]\n  z:\n"))
	f.Add([]byte("a: b #c\nd: e#f\n'g': ''''\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 || bytes.Count(data, []byte("\n")) > 2000 {
			return
		}
		checkFastYAML(t, "input", data)
	})
}
