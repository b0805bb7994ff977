package plan_test

import (
	"os"
	"testing"

	"github.com/disaggbench/disaggbench/services/emulator/emucli"
)

// TestMain lets the test binary stand in for the planner: Prepare installs a copy of
// the running program as the jobs' stand-ins, and run as "<copy> emulator ...", this
// binary is them, as the planner is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "emulator" {
		os.Exit(emucli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
