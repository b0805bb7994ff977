// Package emucli is the stand-ins' command line: the emulated trtllm-serve (workers and
// the disaggregated server), the Go benchmark client and the emulated lm_eval, as the
// emulator binary and `planner emulator` run them.
package emucli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/disaggbench/disaggbench/pkg/emu"
)

// Usage is the stand-ins' command line.
const Usage = `usage: emulator COMMAND [flags]   (EMULATION: no model, no GPU)

commands:
  serve MODEL --host H --port P --extra_llm_api_options FILE [--server_role CONTEXT|GENERATION]
                        an emulated trtllm-serve worker (ctx, gen, or both without a role)
  serve disaggregated -c server_config.yaml [-t S] [-r S]
                        the emulated disaggregated server (router)
  bench [benchmark_serving flags]
                        the Go benchmark client (real: it measures any OpenAI-compatible server)
  eval  [lm_eval flags] the emulated lm_eval: a bundled gsm8k-style question set

serve takes --seed N (default $DISAGGBENCH_EMU_SEED, then 1) for its timing model.
`

// Main runs one of the stand-ins and returns the exit code. A leading "emulator"
// argument is skipped, so a binary that embeds the stand-ins as its "emulator"
// subcommand and a dedicated binary take the same arguments.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "emulator" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "bench":
		return runBench(args[1:], stdout, stderr)
	case "eval":
		return runEval(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, Usage)
		return 0
	}
	fmt.Fprintf(stderr, "emulator: unknown command %q\n\n%s", args[0], Usage)
	return 2
}

func serve(args []string, stdout, stderr io.Writer) int {
	lg := log.New(stderr, "[EMULATION] ", log.LstdFlags|log.Lmicroseconds)
	disagg := len(args) > 0 && args[0] == "disaggregated"
	var model string
	if disagg {
		args = args[1:]
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		model, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "localhost", "address to listen on")
	port := fs.Int("port", 8000, "port to listen on")
	opts := fs.String("extra_llm_api_options", "", "the worker's LLM-API options YAML")
	role := fs.String("server_role", "", "CONTEXT or GENERATION (default: both, an aggregated server)")
	fs.String("backend", "pytorch", "accepted for compatibility")
	cfgFile := fs.String("c", "", "disaggregated: the server config YAML")
	fs.String("config_file", "", "same as -c")
	fs.Int("t", 0, "disaggregated: request timeout in seconds (accepted)")
	fs.Int("r", 0, "disaggregated: server start timeout in seconds (accepted)")
	seedDefault := uint64(1)
	if s := os.Getenv("DISAGGBENCH_EMU_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "serve: DISAGGBENCH_EMU_SEED=%q is not a non-negative integer\n", s)
			return 2
		}
		seedDefault = v
	}
	seed := fs.Uint64("seed", seedDefault, "seed of the timing model's jitter and of generated text")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 && model == "" && !disagg {
		model = fs.Arg(0)
	}
	if f := fs.Lookup("config_file").Value.String(); *cfgFile == "" {
		*cfgFile = f
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Under srun a worker has one task per GPU; as trtllm-llmapi-launch does, rank 0
	// serves and the other ranks wait for it.
	if rank := os.Getenv("SLURM_PROCID"); !disagg && rank != "" && rank != "0" {
		lg.Printf("EMULATION: rank %s of the %s worker on port %d: no GPU work to do; waiting for rank 0", rank, strings.ToLower(cmpOr(*role, "aggregated")), *port)
		<-ctx.Done()
		return 0
	}

	m := emu.DefaultModel()
	m.Seed = *seed
	var h http.Handler
	var addr string
	var code int
	if disagg {
		h, addr, code = router(*cfgFile, lg, stderr)
	} else {
		h, addr, code = worker(ctx, workerArgs{model: model, role: *role, opts: *opts, host: *host, port: *port}, m, lg, stderr)
	}
	if h == nil {
		return code
	}
	return listenAndServe(ctx, h, addr, lg, stderr)
}

// router makes the emulated disaggregated server from its config file.
func router(cfgFile string, lg *log.Logger, stderr io.Writer) (http.Handler, string, int) {
	if cfgFile == "" {
		fmt.Fprintln(stderr, "serve disaggregated: -c FILE is required")
		return nil, "", 2
	}
	c, err := emu.ReadServerConfig(cfgFile)
	if err != nil {
		fmt.Fprintf(stderr, "serve disaggregated: %v\n", err)
		return nil, "", 1
	}
	rt := &emu.Router{Config: c, Log: lg}
	addr := emu.ListenAddr(c.Hostname, c.Port)
	lg.Printf("EMULATED disaggregated server (not TensorRT-LLM) on %s: ctx workers %v, gen workers %v",
		addr, c.ContextServers.URLs, c.GenerationServers.URLs)
	return rt.Handler(), addr, 0
}

type workerArgs struct {
	model, role, opts, host string
	port                    int
}

// worker makes an emulated trtllm-serve worker (ctx, gen, or aggregated).
func worker(ctx context.Context, a workerArgs, m emu.Model, lg *log.Logger, stderr io.Writer) (http.Handler, string, int) {
	r := strings.ToUpper(a.role)
	switch r {
	case "", "CONTEXT", "GENERATION":
	case "CTX":
		r = "CONTEXT"
	case "GEN":
		r = "GENERATION"
	default:
		fmt.Fprintf(stderr, "serve: --server_role %q: want CONTEXT or GENERATION\n", a.role)
		return nil, "", 2
	}
	var wc emu.WorkerConfig
	if a.opts != "" {
		var err error
		if wc, err = emu.ReadWorkerConfig(a.opts); err != nil {
			fmt.Fprintf(stderr, "serve: --extra_llm_api_options: %v\n", err)
			return nil, "", 1
		}
	}
	w := &emu.Worker{Role: r, ModelName: a.model, Config: wc, Model: m, Log: lg}
	if v := os.Getenv("TLLM_BENCHMARK_REQ_QUEUES_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "serve: TLLM_BENCHMARK_REQ_QUEUES_SIZE=%q is not a non-negative integer\n", v)
			return nil, "", 2
		}
		w.QueueGate = n
		lg.Printf("EMULATION: requests wait until %d generation requests are queued (TLLM_BENCHMARK_REQ_QUEUES_SIZE)", n)
	}
	w.Start(ctx)
	addr := emu.ListenAddr(a.host, a.port)
	lg.Printf("EMULATED trtllm-serve worker (no model, no GPU), role %s, model %q, on %s", cmpOr(r, "aggregated"), a.model, addr)
	lg.Printf("EMULATION: %s", w.Summary())
	return w.Handler(), addr, 0
}

// listenAndServe serves h on addr until ctx ends.
func listenAndServe(ctx context.Context, h http.Handler, addr string, lg *log.Logger, stderr io.Writer) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(stderr, "serve: listen on %s: %v\n", addr, err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	lg.Printf("EMULATION: listening on %s", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 1
	}
	lg.Printf("EMULATION: stopped")
	return 0
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
