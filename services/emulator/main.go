// Command emulator runs the stand-ins for a TensorRT-LLM job on any CPU: an EMULATED
// trtllm-serve (ctx and gen workers and the disaggregated server), the Go benchmark
// client, and an emulated lm_eval. `planner emulator ...` runs the same commands.
package main

import (
	"os"

	"github.com/disaggbench/disaggbench/services/emulator/emucli"
)

func main() { os.Exit(emucli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
