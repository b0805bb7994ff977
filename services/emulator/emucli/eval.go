package emucli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/disaggbench/disaggbench/pkg/minieval"
)

// runEval is the emulated lm_eval command line: the options the job script passes
// (--model, --tasks, --model_args, --output_path, --log_samples, --trust_remote_code)
// and --limit N; any other --option (with its value) is reported and ignored.
func runEval(args []string, stdout, stderr io.Writer) int {
	e, code, ok := evalArgs(args, stdout, stderr)
	if !ok {
		return code
	}
	o, modelArgs, outPath, logSamples := e.o, e.modelArgs, e.outPath, e.logSamples
	if o.Task != "gsm8k" {
		fmt.Fprintf(stderr, "lm_eval (EMULATION): task %q: the emulated evaluation knows only gsm8k\n", o.Task)
		return 2
	}
	for _, kv := range strings.Split(modelArgs, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "model":
			o.ModelName = v
		case "base_url":
			o.BaseURL = v
		case "num_concurrent":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				o.Parallel = n
			}
		case "max_gen_toks":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				o.MaxTokens = n
			}
		case "timeout":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				o.Timeout = time.Duration(n) * time.Second
			}
		}
	}
	if o.BaseURL == "" {
		fmt.Fprintln(stderr, "lm_eval (EMULATION): --model_args: base_url=... is required")
		return 2
	}
	fmt.Fprintf(stdout, "[EMULATION] lm_eval stand-in: %d bundled gsm8k-style questions, asked of %s\n", len(minieval.Questions), o.BaseURL)
	start := time.Now()
	scores, samples, err := minieval.Run(context.Background(), o)
	if err != nil {
		fmt.Fprintf(stderr, "lm_eval (EMULATION): %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s (%s), gen_kwargs: (None), limit: %s, num_fewshot: None, batch_size: 1\n", o.Model, modelArgs, limitStr(o.Limit))
	minieval.Table(stdout, o.Task, scores)
	fmt.Fprintf(stdout, "[EMULATION] %d questions in %.2f s\n", len(samples), time.Since(start).Seconds())
	if outPath != "" {
		if err := minieval.WriteResults(outPath, o, scores, samples, logSamples); err != nil {
			fmt.Fprintf(stderr, "lm_eval (EMULATION): %v\n", err)
			return 1
		}
	}
	return 0
}

// evalArgs reads lm_eval's options; code is the exit code when ok is false.
func evalArgs(args []string, stdout, stderr io.Writer) (e evalCmd, code int, ok bool) {
	e.o = minieval.Options{Model: "local-completions", Parallel: 32, MaxTokens: 256, Timeout: 20 * time.Minute}
	o := &e.o
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		next := func() (string, bool) {
			if hasVal {
				return val, true
			}
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return "", false
		}
		var ok bool
		switch name {
		case "--model":
			o.Model, ok = next()
		case "--tasks":
			o.Task, ok = next()
		case "--model_args":
			e.modelArgs, ok = next()
		case "--output_path":
			e.outPath, ok = next()
		case "--limit":
			var s string
			if s, ok = next(); ok {
				n, err := strconv.Atoi(s)
				ok = err == nil && n >= 0
				o.Limit = n
			}
		case "--log_samples":
			e.logSamples, ok = true, true
		case "--trust_remote_code":
			ok = true
		case "--include_path":
			// lm_eval's folder of extra task files: it must be there; the emulation
			// evaluates its bundled gsm8k set whatever the folder defines.
			var dir string
			if dir, ok = next(); ok {
				entries, err := os.ReadDir(dir)
				if err != nil {
					fmt.Fprintf(stderr, "lm_eval (EMULATION): --include_path: %v\n", err)
					return e, 2, false
				}
				fmt.Fprintf(stdout, "[EMULATION] --include_path %s: %d task files (not evaluated)\n", dir, len(entries))
			}
		default:
			if !strings.HasPrefix(name, "--") {
				fmt.Fprintf(stderr, "lm_eval (EMULATION): unexpected argument %q\n", a)
				return e, 2, false
			}
			if !hasVal && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
			}
			fmt.Fprintf(stdout, "[EMULATION] option %s is not emulated; ignored\n", name)
			ok = true
		}
		if !ok {
			fmt.Fprintf(stderr, "lm_eval (EMULATION): %s: missing or bad value\n", name)
			return e, 2, false
		}
	}
	return e, 0, true
}

type evalCmd struct {
	o                  minieval.Options
	modelArgs, outPath string
	logSamples         bool
}

func limitStr(n int) string {
	if n == 0 {
		return "None"
	}
	return strconv.Itoa(n)
}
