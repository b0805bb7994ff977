package jobscript

import (
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// builtinSafe reports whether executing the built-in templates with d cannot fail, so
// that a dry render (Check) may skip them: on false they are executed and their error
// reported as Render would. Executing them fails only where a function refuses a value:
// shq and shqjoin a NUL byte, envprefix and exportnames a word that is not NAME=VALUE
// with a plain name, index a server without nodes. TestBuiltinTemplatesFailOnlyWhereBuiltinSafeLooks
// holds the templates to that: it type-checks every field, method and
// function they use and fails when one could fail in another way.
func builtinSafe(d *Data) bool {
	lists := [][]string{d.ServerEnv, d.ClientEnv}
	for _, s := range d.Servers {
		if len(s.Nodes) == 0 {
			return false
		}
		lists = append(lists, s.Env)
	}
	for _, a := range d.AccuracyTasks {
		lists = append(lists, a.Env)
	}
	for _, l := range lists {
		if _, err := envPrefix(l); err != nil {
			return false
		}
		if _, err := exportNames(l); err != nil {
			return false
		}
	}
	return !holdsNUL(reflect.ValueOf(d))
}

// maxNULDepth bounds holdsNUL's walk; a value nested deeper counts as holding a NUL.
const maxNULDepth = 100

// nulWalk looks for a NUL byte in every string a template can reach from a value
// (through exported fields, pointers, slices, maps and interfaces), each pointer's
// target once (Data.Config is Data.Test's).
type nulWalk struct{ seen []uintptr }

func holdsNUL(v reflect.Value) bool { return (&nulWalk{}).holds(v, 0) }

func (w *nulWalk) holds(v reflect.Value, depth int) bool {
	if depth > maxNULDepth {
		return true
	}
	switch v.Kind() {
	case reflect.String:
		return strings.IndexByte(v.String(), 0) >= 0
	case reflect.Pointer:
		if v.IsNil() || slices.Contains(w.seen, v.Pointer()) {
			return false
		}
		w.seen = append(w.seen, v.Pointer())
		return w.holds(v.Elem(), depth+1)
	case reflect.Interface:
		return !v.IsNil() && w.holds(v.Elem(), depth+1)
	case reflect.Struct:
		for _, i := range exportedFields(v.Type()) {
			if w.holds(v.Field(i), depth+1) {
				return true
			}
		}
	case reflect.Slice, reflect.Array:
		if !mayHoldString(v.Type().Elem()) {
			return false
		}
		for i := range v.Len() {
			if w.holds(v.Index(i), depth+1) {
				return true
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if w.holds(it.Key(), depth+1) || w.holds(it.Value(), depth+1) {
				return true
			}
		}
	}
	return false
}

// mayHoldString is false for the element types of lists that hold no string, such as a
// file's bytes or a list of ints.
func mayHoldString(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return false
	}
	return true
}

// workerSafe reports whether writing the worker's YAML (workerYAML) cannot fail, so
// that a dry render may skip it. yaml.v3 refuses to encode only values of types it has
// no form for (functions, channels, complex numbers, ...) and a pass-through option
// whose key is also a typed field's (a panic, not an error); the config decoder gives
// pass-through options strings, bools, numbers, nil, lists and mappings only. Anything
// else, or nesting deeper than maxNULDepth, is encoded as Render would.
func workerSafe(w *config.Worker) bool {
	if !extraSafe(reflect.ValueOf(*w)) {
		return false
	}
	if s := w.SpeculativeConfig; s != nil && !extraSafe(reflect.ValueOf(*s)) {
		return false
	}
	if c := w.CacheTransceiverConfig; c != nil && !extraSafe(reflect.ValueOf(*c)) {
		return false
	}
	return true
}

// extraSafe checks a struct's inline map of pass-through options: no key of a typed
// field, and only values the config decoder makes.
func extraSafe(v reflect.Value) bool {
	keys, inline := yamlKeys(v.Type())
	if inline < 0 {
		return true
	}
	extra, ok := v.Field(inline).Interface().(map[string]any)
	if !ok {
		return false
	}
	for k, x := range extra {
		if keys[k] || !plainValue(x, 0) {
			return false
		}
	}
	return true
}

// Per struct type: its exported fields' indexes, and its YAML keys and inline field.
var exportedCache, yamlKeysCache sync.Map

func exportedFields(t reflect.Type) []int {
	if v, ok := exportedCache.Load(t); ok {
		return v.([]int)
	}
	var out []int
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			out = append(out, i)
		}
	}
	exportedCache.Store(t, out)
	return out
}

type yamlFields struct {
	keys   map[string]bool
	inline int
}

// yamlKeys returns the keys yaml.v3 writes a struct's fields under, and the index of
// its inline map (-1 for none).
func yamlKeys(t reflect.Type) (map[string]bool, int) {
	if v, ok := yamlKeysCache.Load(t); ok {
		f := v.(yamlFields)
		return f.keys, f.inline
	}
	f := yamlFields{keys: map[string]bool{}, inline: -1}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		switch {
		case strings.Contains(opts, "inline"):
			f.inline = i
		case name == "-":
		case name == "":
			f.keys[strings.ToLower(sf.Name)] = true
		default:
			f.keys[name] = true
		}
	}
	yamlKeysCache.Store(t, f)
	return f.keys, f.inline
}

// plainValue reports whether x is made of what the config decoder gives a pass-through
// option: nil, strings, bools, ints, uints, floats, lists and mappings of them.
func plainValue(x any, depth int) bool {
	if depth > maxNULDepth {
		return false
	}
	switch x := x.(type) {
	case nil, string, bool, int, int64, uint64, float64:
		return true
	case []any:
		for _, e := range x {
			if !plainValue(e, depth+1) {
				return false
			}
		}
		return true
	case map[string]any:
		for _, e := range x {
			if !plainValue(e, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}
