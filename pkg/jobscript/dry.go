package jobscript

import (
	"reflect"
	"slices"
	"strings"

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
		t := v.Type()
		for i := range v.NumField() {
			if t.Field(i).IsExported() && w.holds(v.Field(i), depth+1) {
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
	t := v.Type()
	var extra map[string]any
	keys := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case strings.Contains(opts, "inline"):
			m, ok := v.Field(i).Interface().(map[string]any)
			if !ok {
				return false
			}
			extra = m
		case name == "-":
		case name == "":
			keys[strings.ToLower(f.Name)] = true
		default:
			keys[name] = true
		}
	}
	for k, x := range extra {
		if keys[k] || !plainValue(x, 0) {
			return false
		}
	}
	return true
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
