// Command dashboard follows the pipeline's events and serves a live web dashboard (runs,
// run, Pareto, latency and compare views, a JSON API and a resumable event stream);
// `dashboard report RUN_ID... --out FILE.html` writes one self-contained HTML report.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/dashboard"
	"github.com/disaggbench/disaggbench/pkg/fileio"
	"github.com/disaggbench/disaggbench/pkg/settings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "report":
			return report(args[1:], stdout, stderr)
		case "serve":
			args = args[1:]
		}
	}
	var listen string
	return settings.Serve("dashboard", args, stderr, false,
		func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:8080", "address the web dashboard listens on")
		},
		func(ctx context.Context, c *settings.Common, b *bus.Bus, log *slog.Logger) (func(context.Context) error, error) {
			srv := dashboard.NewServer(b, dashboard.NewStore(), log)
			return func(ctx context.Context) error { return srv.Run(ctx, listen) }, nil
		})
}

// report is `dashboard report RUN_ID... --out FILE.html`.
func report(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dashboard report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: dashboard report RUN_ID... --out FILE.html [--nats URL] [--output-path O]")
		fs.PrintDefaults()
	}
	var c settings.Common
	c.Register(fs, false)
	out := fs.String("out", "", "the HTML file to write")
	runs, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(runs) == 0 || *out == "" {
		fs.Usage()
		return 2
	}
	if err := c.Resolve(settings.Env()); err != nil {
		fmt.Fprintln(stderr, "dashboard report:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := c.Logger(stderr).With("service", "dashboard")
	b, err := c.Connect(ctx, "dashboard-report", log)
	if err != nil {
		fmt.Fprintln(stderr, "dashboard report:", err)
		return 1
	}
	defer b.Close()
	page, err := dashboard.Report(ctx, b, runs, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := fileio.WriteAtomic(*out, page, 0o644, true); err != nil {
		fmt.Fprintln(stderr, "dashboard report:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d runs, %d bytes\n", *out, len(runs), len(page))
	return 0
}

// parseInterspersed parses flags that stand before or after the run ids.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
