// Command planner selects, validates and renders benchmark tests and publishes runs;
// `planner run` also follows a run to its end.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/disaggbench/disaggbench/pkg/redact"
	"github.com/disaggbench/disaggbench/pkg/settings"
	"github.com/disaggbench/disaggbench/services/emulator/emucli"
)

const usage = `usage: planner COMMAND [flags]

commands:
  validate [PATH...]       check test configs (default test_configs)
  list                     print the selected test ids
  config show TEST_ID      print a test's resolved config and where overrides came from
  render --config FILE --out DIR | [selection flags] --out DIR
                           write jobs' files and print their sbatch commands (dry run)
  publish                  publish a run and print its id
  run                      publish a run and follow it to its end
  status RUN_ID            print a run's progress
  watch RUN_ID             follow a run's events live
  compare RUN_A RUN_B      line two runs' results up; exit 1 when a change is worse
  references suggest RUN_ID...
                           propose references: entries from passing runs
  emulator COMMAND         the job's stand-ins: an emulated trtllm-serve, the Go
                           benchmark client, an emulated lm_eval ('planner emulator help')
  resume RUN_ID            follow an interrupted run to its end (starting the stages)
  cancel RUN_ID            cancel a run's queued and running jobs
  rerun --failed RUN_ID    a new run of a run's failed, invalid and cancelled tests
  nats-config              print a shared NATS server's configuration: a user per stage
  provision                create the stream and buckets, or move them to --replicas N

Every command takes -h for its flags; 'planner --version' prints the version.
Exit status: 0 done, 1 failed, 2 usage error (nothing ran).

`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	stderr = redact.Writer(stderr) // no credential reaches the terminal
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "validate":
		return runValidate(rest, stdout, stderr)
	case "list":
		return runList(rest, stdout, stderr)
	case "config":
		if len(rest) == 0 || rest[0] != "show" {
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
				fmt.Fprint(stdout, "usage: planner config show TEST_ID [--config-dir DIR] [--gpu-type TYPE]\n")
				return 0
			}
			fmt.Fprint(stderr, "planner config: want 'config show TEST_ID'\nusage: planner config show TEST_ID [--config-dir DIR] [--gpu-type TYPE]\n")
			return 2
		}
		return runConfigShow(rest[1:], stdout, stderr)
	case "render":
		return runRender(rest, stdout, stderr)
	case "publish":
		return runPublish(rest, stdout, stderr)
	case "run":
		return runRun(rest, stdout, stderr)
	case "status":
		return runStatus(rest, stdout, stderr)
	case "watch":
		return runWatch(rest, stdout, stderr)
	case "compare":
		return runCompare(rest, stdout, stderr)
	case "references":
		return runReferences(rest, stdout, stderr)
	case "emulator":
		// The stand-ins the job script runs under environment.emulate and with
		// benchmark.client builtin; jobs reach them through a copy of this binary.
		return emucli.Main(rest, stdout, stderr)
	case "resume":
		return runResume(rest, stdout, stderr)
	case "cancel":
		return runCancel(rest, stdout, stderr)
	case "rerun":
		return runRerun(rest, stdout, stderr)
	case "nats-config":
		return runNATSConfig(rest, stdout, stderr)
	case "provision":
		return runProvision(rest, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		settings.PrintVersion(stdout, "planner")
		return 0
	}
	fmt.Fprintf(stderr, "planner: unknown command %q\n\n%s", cmd, usage)
	return 2
}
