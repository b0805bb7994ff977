package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files (schema/test-config.schema.json)")

const schemaFile = "../../schema/test-config.schema.json"

// TestSchemaCurrent keeps the committed schema equal to what the Go types generate.
// Run `go test ./pkg/config -run TestSchemaCurrent -update` after changing the types.
func TestSchemaCurrent(t *testing.T) {
	got, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll(filepath.Dir(schemaFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schemaFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go test ./pkg/config -run TestSchemaCurrent -update", schemaFile)
	}
}

func TestSchemaShape(t *testing.T) {
	data, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	props := doc["properties"].(map[string]any)
	for _, section := range []string{"metadata", "slurm", "benchmark", "hardware", "environment", "profiling", "accuracy", "worker_config"} {
		if _, ok := props[section]; !ok {
			t.Errorf("schema lacks section %s", section)
		}
	}
	if doc["additionalProperties"] != false {
		t.Error("top level must refuse unknown sections")
	}
	defs := doc["$defs"].(map[string]any)
	if defs["Worker"].(map[string]any)["additionalProperties"] != true {
		t.Error("worker options must pass through")
	}
	if defs["Slurm"].(map[string]any)["additionalProperties"] != false {
		t.Error("slurm must be strict")
	}
	mode := defs["Benchmark"].(map[string]any)["properties"].(map[string]any)["mode"].(map[string]any)
	if len(mode["enum"].([]any)) != 3 {
		t.Errorf("benchmark.mode enum = %v", mode["enum"])
	}
}

// TestConfigsNameSchema checks that every committed config names the schema, by a path
// that exists from the file's folder.
func TestConfigsNameSchema(t *testing.T) {
	files, _ := filepath.Glob("../../test_configs/*/*/*.yaml")
	if len(files) == 0 {
		t.Fatal("no test configs found")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		ref, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=")
		if !ok {
			t.Errorf("%s: first line must be the yaml-language-server $schema line", f)
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), ref)); err != nil {
			t.Errorf("%s: schema %s: %v", f, ref, err)
		}
	}
}
