package settings

import (
	"flag"
	"strings"
	"testing"
)

func TestReplicasAndHTTPFromFlagsAndEnvironment(t *testing.T) {
	parse := func(args []string, env map[string]string) (*Common, error) {
		var c Common
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		c.Register(fs, false)
		c.RegisterHTTP(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return &c, c.Resolve(env)
	}
	c, err := parse(nil, map[string]string{"NATS_URL": "nats://a:4222,nats://b:4222", "NATS_REPLICAS": "3", "DISAGGBENCH_HTTP": "127.0.0.1:9090"})
	if err != nil || c.Replicas != 3 || c.HTTP != "127.0.0.1:9090" || c.NATS != "nats://a:4222,nats://b:4222" {
		t.Fatalf("from the environment: %+v %v", c, err)
	}
	c, err = parse([]string{"--replicas", "5", "--http", ":0"}, map[string]string{"NATS_URL": "nats://a:4222", "NATS_REPLICAS": "3"})
	if err != nil || c.Replicas != 5 || c.HTTP != ":0" {
		t.Fatalf("flags over the environment: %+v %v", c, err)
	}
	c, err = parse(nil, nil)
	if err != nil || c.Replicas != 0 || c.HTTP != "" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"NATS_URL": "nats://a", "NATS_REPLICAS": "three"}, "NATS_REPLICAS"},
		{[]string{"--replicas", "7"}, map[string]string{"NATS_URL": "nats://a"}, "want 1 to 5"},
		{[]string{"--replicas", "3"}, nil, "needs a NATS cluster"},
	} {
		if _, err := parse(tc.args, tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: %v, want an error naming %q", tc.args, tc.env, err, tc.want)
		}
	}
}
