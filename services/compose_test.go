package services_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/disaggbench/disaggbench/pkg/bus"
)

// loadCompose loads compose.yaml with compose-spec's own loader, as docker compose
// does: interpolated with env, merged, normalised, and checked for consistency.
func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{"../compose.yaml"}, cli.WithWorkingDirectory(".."),
		cli.WithEnv(env), cli.WithProfiles([]string{"cli"}), cli.WithResolvedPaths(true), cli.WithDiscardEnvFile)
	if err != nil {
		t.Fatal(err)
	}
	return cli.ProjectFromOptions(context.Background(), opts)
}

// TestComposeFile: compose.yaml declares a three-server NATS cluster (the server image of
// the module's major.minor), the stages reaching it by every server's URL as their own
// users with R3, health checks on /readyz, start order by conditions, Prometheus, no
// port published beyond the loopback, and commands the binaries accept.
func TestComposeFile(t *testing.T) {
	if _, err := loadCompose(t, nil); err == nil || !strings.Contains(err.Error(), "DISAGGBENCH_NATS_") {
		t.Fatalf("compose.yaml loads without the roles' passwords: %v", err)
	}
	env := []string{}
	pass := map[string]string{}
	for _, r := range bus.Roles {
		pass[r] = "secret-" + r
		env = append(env, bus.PasswordVar(r)+"="+pass[r])
	}
	p, err := loadCompose(t, env)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}

	// The NATS servers: clustered together, JetStream's health checked, nothing published.
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\d+\.\d+)\.`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod names no nats-server version")
	}
	var natsNames, urls []string
	for name, svc := range p.Services {
		if strings.HasPrefix(svc.Image, "nats:") {
			natsNames = append(natsNames, name)
		}
	}
	slices.Sort(natsNames)
	if len(natsNames) < 3 {
		t.Fatalf("%d NATS servers (%v), want at least 3", len(natsNames), natsNames)
	}
	for _, name := range natsNames {
		svc := p.Services[name]
		urls = append(urls, fmt.Sprintf("nats://%s:4222", name))
		if tag := strings.TrimPrefix(svc.Image, "nats:"); !strings.HasPrefix(tag, string(m[1])+"-") && tag != string(m[1]) {
			t.Errorf("%s runs %s; the module builds against nats-server %s", name, svc.Image, m[1])
		}
		cmd := strings.Join(svc.Command, " ")
		if !strings.Contains(cmd, "--cluster_name disaggbench") || !strings.Contains(cmd, "--server_name "+name) ||
			!strings.Contains(cmd, "--config /etc/nats/nats.conf") {
			t.Errorf("%s: not a named member of the cluster: %s", name, cmd)
		}
		for _, other := range natsNames {
			if other != name && !strings.Contains(cmd, "nats://"+other+":6222") {
				t.Errorf("%s has no route to %s: %s", name, other, cmd)
			}
		}
		if hc := svc.HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "/healthz?js-enabled-only=true") {
			t.Errorf("%s: no JetStream health check", name)
		}
		if len(svc.Ports) > 0 {
			t.Errorf("%s publishes %v: a client port is reached on the compose network only", name, svc.Ports)
		}
		var conf, data bool
		for _, v := range svc.Volumes {
			conf = conf || v.Target == "/etc/nats/nats.conf" && v.ReadOnly && strings.HasSuffix(v.Source, "deploy/nats/nats.conf")
			data = data || v.Target == "/data" && v.Type == types.VolumeTypeVolume && v.Source == name
		}
		if !conf || !data {
			t.Errorf("%s: want deploy/nats/nats.conf read-only and its own volume at /data: %+v", name, svc.Volumes)
		}
	}
	// The servers' configuration is the account layout `planner nats-config` prints.
	conf, err := os.ReadFile("../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(conf) != bus.ServerConfig(bus.ServerConfigOptions{Listen: "0.0.0.0:4222", StoreDir: "/data"}) {
		t.Error("deploy/nats/nats.conf is not `planner nats-config --listen 0.0.0.0:4222 --store-dir /data`")
	}

	// The pipeline's commands: every one reaches NATS by all the servers' URLs, as its own
	// user with its own password, with three replicas.
	roles := map[string]string{"provision": bus.RolePlanner, "planner": bus.RolePlanner, "submitter": bus.RoleSubmitter,
		"watcher": bus.RoleWatcher, "collector": bus.RoleCollector, "dashboard": bus.RoleDashboard}
	outputs := map[string]bool{}
	for name, role := range roles {
		svc, ok := p.Services[name]
		if !ok {
			t.Errorf("compose.yaml has no %s service", name)
			continue
		}
		val := func(k string) string {
			if v := svc.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if got := strings.Split(val("NATS_URL"), ","); !slices.Equal(got, urls) {
			t.Errorf("%s reaches NATS at %v, want every server: %v", name, got, urls)
		}
		if val("NATS_USER") != role || val("NATS_PASSWORD") != pass[role] || val("NATS_REPLICAS") != "3" {
			t.Errorf("%s: user %q, password set %v, replicas %q; want user %s, its password, 3", name, val("NATS_USER"), val("NATS_PASSWORD") == pass[role], val("NATS_REPLICAS"), role)
		}
		argv := append(append([]string{}, svc.Entrypoint...), svc.Command...)
		bin0 := argv[0]
		if name == "provision" && (bin0 != "planner" || argv[1] != "provision") || name != "provision" && bin0 != name {
			t.Errorf("%s runs %q", name, argv)
		}
		// The arguments must parse: -h after them prints usage and nothing else.
		args := append(argv[1:], "-h")
		if bin0 == "planner" {
			args = []string{argv[1], "-h"}
		}
		res, _ := exec.Command(bin(bin0), args...).CombinedOutput()
		if strings.Contains(string(res), "not defined") || strings.Contains(string(res), "unknown") || !strings.Contains(strings.ToLower(string(res)), "usage") {
			t.Errorf("%s %v:\n%s", bin0, args, res)
		}
		if name == "planner" || name == "provision" {
			continue
		}
		// Long-running: ready checked on /readyz where --http serves, started after provisioning.
		port := strings.TrimPrefix(val("DISAGGBENCH_HTTP"), "0.0.0.0:")
		if hc := svc.HealthCheck; hc == nil || hc.Disable || !slices.Contains(hc.Test, "http://127.0.0.1:"+port+"/readyz") {
			t.Errorf("%s: no /readyz health check on its --http port %q: %+v", name, port, svc.HealthCheck)
		}
		if d, ok := svc.DependsOn["provision"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for provisioning: %+v", name, svc.DependsOn)
		}
		for _, v := range svc.Volumes {
			if v.Target == val("OUTPUT_PATH") {
				outputs[v.Source] = true
			}
		}
		for _, pt := range svc.Ports {
			if pt.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%s beyond the loopback", name, pt.HostIP, pt.Published)
			}
		}
	}
	for name, svc := range p.Services {
		for _, pt := range svc.Ports {
			if pt.HostIP != "127.0.0.1" || pt.Target == 4222 {
				t.Errorf("%s publishes %s:%s->%d", name, pt.HostIP, pt.Published, pt.Target)
			}
		}
	}
	if len(outputs) != 1 {
		t.Errorf("the stages do not share one output folder: %v", outputs)
	}
	for _, name := range []string{"watcher", "collector", "submitter"} {
		if d := p.Services[name].Deploy; d == nil || d.Replicas == nil || *d.Replicas < 2 {
			t.Errorf("%s runs one instance", name)
		}
	}
	prov := p.Services["provision"]
	for _, n := range natsNames {
		if d, ok := prov.DependsOn[n]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("provision does not wait for %s to be healthy: %+v", n, prov.DependsOn)
		}
	}
	// Prometheus scrapes the stages with deploy/prometheus/prometheus.yml.
	prom, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("compose.yaml has no prometheus service")
	}
	mounted := false
	for _, v := range prom.Volumes {
		mounted = mounted || strings.HasSuffix(v.Source, "deploy/prometheus/prometheus.yml") && v.Target == "/etc/prometheus/prometheus.yml"
	}
	if !mounted {
		t.Errorf("prometheus does not mount deploy/prometheus/prometheus.yml: %+v", prom.Volumes)
	}
	docker, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(docker), " curl") {
		t.Error("the runtime image has no curl for the /readyz health checks")
	}
}
