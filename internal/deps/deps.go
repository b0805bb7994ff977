//go:build tools

package deps

import (
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/parquet-go/parquet-go"
	_ "gopkg.in/yaml.v3"
)
