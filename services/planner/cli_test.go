package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every planner command refuses a stray word (exit 2, nothing run or written), answers
// -h with its usage on stdout (exit 0) and names the closest flag for a misspelled one.
func TestStrictCommandLine(t *testing.T) {
	clearEnv(t)
	out := filepath.Join(t.TempDir(), "out")
	t.Setenv("OUTPUT_PATH", out)
	cmds := [][]string{
		{"validate"}, {"list"}, {"config", "show", "ID"}, {"render", "--out", out},
		{"publish"}, {"run"}, {"status", "RUN"}, {"watch", "RUN"},
	}
	for _, c := range cmds {
		name := c[0]
		prefix := c[:1:1]
		if name == "config" {
			prefix = c[:2:2]
		}
		var stdout, stderr bytes.Buffer
		if c[0] != "validate" { // validate takes paths; its stray word is a flag
			args := append(append([]string{}, c...), "stray")
			if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unexpected argument "stray"`) {
				t.Errorf("%s stray: exit %d, stderr %q", name, code, stderr.String())
			}
		}
		stdout.Reset()
		stderr.Reset()
		if code := run(append(c[:len(c):len(c)], "-h"), &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "usage") && !strings.Contains(stdout.String(), "-") {
			t.Errorf("%s -h: exit %d, stdout %q, stderr %q", name, code, stdout.String(), stderr.String())
		}
		stderr.Reset()
		if code := run(append(prefix, "--output-pth", "x"), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "unknown flag") {
			t.Errorf("%s misspelled flag: exit %d, stderr %q", name, code, stderr.String())
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused command created the output folder")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "--nat", "x"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "did you mean --nats?") {
		t.Errorf("misspelled --nats: exit %d, %q", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "planner ") {
		t.Errorf("--version: exit %d, %q", code, stdout.String())
	}
	stdout.Reset()
	if code := run([]string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "render") || !strings.Contains(stdout.String(), "status RUN_ID") {
		t.Errorf("-h: exit %d, %q", code, stdout.String())
	}
}

// planner publish without --nats says that nothing will run the run it publishes.
func TestPublishWithoutNATSWarns(t *testing.T) {
	clearEnv(t)
	t.Setenv("NATS_URL", "")
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run([]string{"publish", "--config-dir", "../../examples/quickstart/test_configs", "--output-path", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "nothing runs it") || !strings.Contains(stderr.String(), "planner run") {
		t.Errorf("no warning: %s", stderr.String())
	}
}
