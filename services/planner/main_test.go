package main

import (
	"os"
	"testing"

	"github.com/disaggbench/disaggbench/services/emulator/emucli"
)

// TestMain lets the test binary be what the planner is to its jobs: run as
// "<binary> emulator ...", it is the stand-ins (render installs a copy of it).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "emulator" {
		os.Exit(emucli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
