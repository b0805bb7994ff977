package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/disaggbench/disaggbench/pkg/bus"
)

// runNATSConfig prints a nats-server configuration for a shared server: one user per
// stage with only its permissions (docs/security.md).
func runNATSConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("planner nats-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o bus.ServerConfigOptions
	fs.StringVar(&o.Listen, "listen", "0.0.0.0:4222", "host:port the server listens on")
	fs.StringVar(&o.StoreDir, "store-dir", "/data", "JetStream store folder")
	fs.StringVar(&o.TLSCert, "tlscert", "", "server certificate (with --tlskey and --tlsca: TLS, client certificates required)")
	fs.StringVar(&o.TLSKey, "tlskey", "", "server key")
	fs.StringVar(&o.TLSCA, "tlsca", "", "CA that signs the clients' certificates")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if (o.TLSCert != "" || o.TLSKey != "" || o.TLSCA != "") && (o.TLSCert == "" || o.TLSKey == "" || o.TLSCA == "") {
		fmt.Fprintln(stderr, "planner nats-config: TLS needs all of --tlscert, --tlskey and --tlsca")
		return 2
	}
	fmt.Fprint(stdout, bus.ServerConfig(o))
	return 0
}
