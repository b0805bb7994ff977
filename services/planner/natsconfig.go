package main

import (
	"flag"
	"fmt"
	"io"

	"strings"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/settings"
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
	fs.StringVar(&o.ServerName, "server-name", "", "this server's name, unique in a cluster")
	fs.StringVar(&o.ClusterName, "cluster-name", "", "the cluster's name: with it, the server joins a cluster (--cluster-listen, --routes)")
	fs.StringVar(&o.ClusterListen, "cluster-listen", "0.0.0.0:6222", "host:port the server listens on for the other servers of the cluster")
	routes := fs.String("routes", "", "comma-separated route URLs of the cluster's servers (nats-route://host:6222,...)")
	fs.StringVar(&o.HTTPListen, "monitor", "", "host:port of the server's monitoring endpoint (/healthz?js-enabled-only=true); empty: none")
	if _, code, ok := settings.Parse(fs, args, 0, 0, stdout, stderr); !ok {
		return code
	}
	if *routes != "" {
		o.Routes = strings.Split(*routes, ",")
	}
	if o.ClusterName != "" && (o.ServerName == "" || len(o.Routes) == 0) {
		fmt.Fprintln(stderr, "planner nats-config: --cluster-name needs --server-name and --routes")
		return 2
	}
	if (o.TLSCert != "" || o.TLSKey != "" || o.TLSCA != "") && (o.TLSCert == "" || o.TLSKey == "" || o.TLSCA == "") {
		fmt.Fprintln(stderr, "planner nats-config: TLS needs all of --tlscert, --tlskey and --tlsca")
		return 2
	}
	fmt.Fprint(stdout, bus.ServerConfig(o))
	return 0
}
