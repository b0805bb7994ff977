package jobscript

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/disaggbench/disaggbench/pkg/config"
)

// EnvTools names a binary that provides the stand-ins (its "emulator" subcommand),
// used instead of a copy of the running program.
const EnvTools = "DISAGGBENCH_TOOLS"

// NeedsTools reports whether a test's job runs the stand-ins: the emulation
// (environment.emulate) or the Go benchmark client (benchmark.client builtin).
func NeedsTools(t *config.Test) bool {
	return t.Config.Environment.Emulate || t.Config.Benchmark.Client == "builtin"
}

// InstallTools makes the stand-ins reachable from jobs and returns the binary's
// absolute path. With $DISAGGBENCH_TOOLS set, that binary is used as it is. Otherwise
// the running program (the planner, which embeds them as `planner emulator`) is copied
// to dir/disaggbench-tools-<hash of its content>, once: jobs read the binary from
// there, so it must be a folder the cluster's nodes see (OUTPUT_PATH/bin). A copy is
// never rewritten in place, so a running job never sees it change. The binary is
// checked by running `emulator help`.
func InstallTools(dir string) (string, error) {
	src, dst, err := ToolsPath(dir)
	if err != nil || src == "" {
		if err == nil {
			err = checkTools(dst)
		}
		return dst, err
	}
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() {
		return dst, checkTools(dst)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	tmp, err := os.CreateTemp(dir, ".tools-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(tmp, f)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("install the stand-ins in %s: %w", dir, err)
	}
	return dst, checkTools(dst)
}

// ToolsPath returns where InstallTools puts the stand-ins (dst, absolute) and the
// program it copies there (src; empty when $DISAGGBENCH_TOOLS names the binary).
// It writes nothing.
func ToolsPath(dir string) (src, dst string, err error) {
	if p := os.Getenv(EnvTools); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", "", fmt.Errorf("%s: %w", EnvTools, err)
		}
		return "", abs, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("find the running program to install the stand-ins: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", "", err
	}
	dst, err = filepath.Abs(filepath.Join(dir, "disaggbench-tools-"+hex.EncodeToString(h.Sum(nil))[:16]))
	return exe, dst, err
}

func checkTools(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "emulator", "help").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("EMULATION")) {
		return fmt.Errorf("%s does not provide the stand-ins (`%s emulator help`: %v); build the planner or services/emulator and set %s to it", path, filepath.Base(path), err, EnvTools)
	}
	return nil
}
