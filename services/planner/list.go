package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/disaggbench/disaggbench/pkg/config"
	"github.com/disaggbench/disaggbench/pkg/jobscript"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

// selectionFlags declares the flags planner list (and the commands built on it) share.
func selectionFlags(fs *flag.FlagSet, sel *config.Selection) {
	fs.StringVar(&sel.ConfigDir, "config-dir", config.DefaultConfigDir, "folder of test configs")
	fs.StringVar(&sel.TestList, "test-list", "", "test list file (or a name under testlist/)")
	fs.StringVar(&sel.K, "k", "", "pytest-style expression over test ids (and, or, not, parentheses)")
	fs.StringVar(&sel.Marker, "m", "", "category expression: perf, accuracy, stress")
	fs.StringVar(&sel.GPUType, "gpu-type", "", "GPU type (overrides GPU_TYPE; default GB200)")
}

// runList is `planner list [--config-dir DIR] [--test-list FILE] [-k EXPR] [-m MARKER]`:
// the selected test ids, one a line, sorted, on stdout and nothing else there; skipped
// tests, warnings and invalid tests' problems on stderr. Exit status 0, or 1 when a
// selected test is invalid or the selection fails, 2 on bad usage.
func runList(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = orDiscard(stdout), orDiscard(stderr)
	fs := flag.NewFlagSet("planner list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sel := config.Selection{Check: jobscript.Check}
	selectionFlags(fs, &sel)
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	res, err := config.Select(sel, config.EnvFromOS())
	if err != nil {
		fmt.Fprintf(stderr, "planner list: %v\n", err)
		return 1
	}
	for _, t := range res.Tests {
		fmt.Fprintln(stdout, t.ID)
	}
	reportSelection(res, stderr)
	if len(res.Invalid) > 0 {
		return 1
	}
	return 0
}

// reportSelection writes what a selection left out, and why, and its warnings.
func reportSelection(res *config.Selected, w io.Writer) {
	for _, p := range res.Warnings {
		fmt.Fprintln(w, p.String())
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(w, "skipped %s: %s\n", s.ID, s.Reason)
	}
	for _, inv := range res.Invalid {
		fmt.Fprintf(w, "invalid %s:\n", inv.Test.ID)
		for _, p := range inv.Problems {
			fmt.Fprintf(w, "  %s\n", p.String())
		}
	}
	fmt.Fprintf(w, "%d selected, %d skipped, %d invalid (GPU type %s)\n", len(res.Tests), len(res.Skipped), len(res.Invalid), res.GPUType)
}
