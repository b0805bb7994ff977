package services_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/disaggbench/disaggbench/pkg/bus/bustest"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/events"
)

// natsCluster is three nats-server processes clustered with JetStream, each with the
// shared-server account layout (one user per role, passwords from the environment).
type natsCluster struct {
	dir   string
	names []string
	urls  []string // client URLs, one per server
	nodes []*proc
	pw    map[string]string
	netns []string // the servers' network namespaces (the partition variant)
	links []string // the host ends of their veth pairs
	// TLS with client certificates: the CA, and one certificate every client presents.
	ca, cert, key string
}

func secret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// spawn runs path in its own process group with env added; the test kills what is left.
func spawn(t *testing.T, env []string, path string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd, &out}
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

// startCluster starts the servers on loopback, or, with partition, each in a network
// namespace of its own joined to the others by a bridge, so that a link can be cut.
func startCluster(t *testing.T, partition bool) *natsCluster {
	t.Helper()
	c := &natsCluster{dir: t.TempDir(), pw: map[string]string{}}
	var env []string
	for _, r := range bus.Roles {
		c.pw[r] = secret()
		env = append(env, bus.PasswordVar(r)+"="+c.pw[r])
	}
	hosts := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}
	var ports, cports [3]int
	for i := range 3 {
		ports[i], cports[i] = freePort(t), freePort(t)
	}
	if partition {
		tag := fmt.Sprintf("%x", os.Getpid()%0xffff)
		br := "dbbr" + tag
		sub := fmt.Sprintf("10.%d.%d", 100+os.Getpid()%100, os.Getpid()/100%250)
		ipRun(t, "link", "add", br, "type", "bridge")
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
		ipRun(t, "addr", "add", sub+".1/24", "dev", br)
		ipRun(t, "link", "set", br, "up")
		for i := range 3 {
			ns, host, peer := fmt.Sprintf("dbns%s-%d", tag, i), fmt.Sprintf("dbh%s%d", tag, i), fmt.Sprintf("dbn%s%d", tag, i)
			ipRun(t, "netns", "add", ns)
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
			ipRun(t, "link", "add", host, "type", "veth", "peer", "name", peer)
			t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
			ipRun(t, "link", "set", peer, "netns", ns)
			ipRun(t, "link", "set", host, "master", br)
			ipRun(t, "link", "set", host, "up")
			hosts[i] = fmt.Sprintf("%s.%d", sub, 11+i)
			ipRun(t, "-n", ns, "addr", "add", hosts[i]+"/24", "dev", peer)
			ipRun(t, "-n", ns, "link", "set", peer, "up")
			ipRun(t, "-n", ns, "link", "set", "lo", "up")
			c.netns, c.links = append(c.netns, ns), append(c.links, host)
			ports[i], cports[i] = 4222, 6222
		}
	}
	ca := bustest.NewCA(t, "disaggbench cluster test CA")
	c.ca = ca.Path
	c.cert, c.key = ca.Issue(t, "disaggbench", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, hosts...)
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		var routes []string
		for j := range 3 {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats-route://%s:%d", hosts[j], cports[j]))
			}
		}
		cfg := bus.ServerConfig(bus.ServerConfigOptions{
			Listen: fmt.Sprintf("%s:%d", hosts[i], ports[i]), StoreDir: filepath.Join(c.dir, name),
			ServerName: name, ClusterName: "bench", ClusterListen: fmt.Sprintf("%s:%d", hosts[i], cports[i]), Routes: routes,
			TLSCert: c.cert, TLSKey: c.key, TLSCA: c.ca,
		})
		path := filepath.Join(c.dir, name+".conf")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var p *proc
		if partition {
			p = spawn(t, env, "ip", "netns", "exec", c.netns[i], bin("nats-server"), "-c", path)
		} else {
			p = spawn(t, env, bin("nats-server"), "-c", path)
		}
		c.names, c.urls, c.nodes = append(c.names, name), append(c.urls, fmt.Sprintf("tls://%s:%d", hosts[i], ports[i])), append(c.nodes, p)
	}
	// Ready once JetStream answers: the meta group has a leader.
	nc, js := c.client(t)
	defer nc.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster's JetStream is not ready: %v\n%s", err, c.nodes[0].out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// client connects as the planner user, as the test's own observer.
func (c *natsCluster) client(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(strings.Join(c.urls, ","), nats.UserInfo(bus.RolePlanner, c.pw[bus.RolePlanner]),
		nats.CustomInboxPrefix(bus.InboxPrefix(bus.RolePlanner)), nats.MaxReconnects(-1),
		nats.ReconnectWait(200*time.Millisecond), nats.PingInterval(2*time.Second), nats.Timeout(2*time.Second),
		nats.RetryOnFailedConnect(true), nats.RootCAs(c.ca), nats.ClientCert(c.cert, c.key))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// streamLeader is the server that leads the event stream ("" while none does).
func streamLeader(js jetstream.JetStream, stream string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", 0
	}
	info := s.CachedInfo()
	if info.Cluster == nil {
		return "", info.Config.Replicas
	}
	return info.Cluster.Leader, info.Config.Replicas
}

// role runs a command as one of the roles: its user, its password in NATS_PASSWORD.
func (c *natsCluster) role(r string) ([]string, []string) {
	return []string{"--nats", strings.Join(c.urls, ","), "--user", r, "--tlsca", c.ca, "--tlscert", c.cert, "--tlskey", c.key},
		[]string{"NATS_PASSWORD=" + c.pw[r]}
}

// twelveTests turns the quickstart copy into 12 perf tests of 3 concurrencies each.
func twelveTests(t *testing.T, qs string) {
	t.Helper()
	const base = "tinyllama-1.1b_1k128_ctx1_gen1_tep1_bs4_eplb0_mtp0_ccb-UCX"
	perf := filepath.Join(qs, "test_configs", "disagg", "perf")
	data, err := os.ReadFile(filepath.Join(perf, base+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{perf, filepath.Join(qs, "test_configs", "disagg", "accuracy")} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(perf, 0o755); err != nil {
		t.Fatal(err)
	}
	var list []string
	for i := range 12 {
		name := strings.Replace(base, "tinyllama-1.1b", fmt.Sprintf("tinyllama-1.1b-r%02d", i+1), 1)
		if err := os.WriteFile(filepath.Join(perf, name+".yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		list = append(list, "disagg_perf_"+name)
	}
	if err := os.WriteFile(filepath.Join(qs, "testlist.txt"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

type stage struct {
	name string
	p    *proc
	http string
}

func httpGet(url string) (int, string) {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClusterFailover runs 12 tests on three clustered nats-server processes with R3
// and the stages as processes; mid-run the event stream's leader is killed with
// SIGKILL (and, in the second variant, one instance of each stage too; in the third,
// the leader is cut off by the network instead). Every test completes exactly once.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nats-servers and the stages")
	}
	t.Run("leader-killed", func(t *testing.T) { clusterRun(t, false, false) })
	t.Run("leader-and-stages-killed", func(t *testing.T) { clusterRun(t, true, false) })
	t.Run("leader-partitioned", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("network namespaces need root")
		}
		if _, err := exec.LookPath("ip"); err != nil {
			t.Skip("no ip command (Debian's iproute2)")
		}
		clusterRun(t, false, true)
	})
}

func clusterRun(t *testing.T, killStages, partition bool) {
	began := time.Now()
	c := startCluster(t, partition)
	qs := quickstartCopy(t, "0.5")
	twelveTests(t, qs)
	out := filepath.Join(t.TempDir(), "out")
	nc, js := c.client(t)
	defer nc.Close()

	pargs, penv := c.role(bus.RolePlanner)
	// Provisioned first, as compose.yaml does: the stream and buckets with three replicas.
	prov := exec.Command(bin("planner"), append([]string{"provision", "--replicas", "3", "--wait", "30s"}, pargs...)...)
	prov.Env = append(os.Environ(), penv...)
	if pout, err := prov.CombinedOutput(); err != nil || strings.Count(string(pout), "replicas 3") != 5 {
		t.Fatalf("planner provision: %v\n%s", err, pout)
	}
	pub := exec.Command(bin("planner"), append([]string{"publish", "--config-dir", filepath.Join(qs, "test_configs"),
		"--test-list", filepath.Join(qs, "testlist.txt"), "--batch-size", "4", "--output-path", out, "--replicas", "3"}, pargs...)...)
	pub.Env = append(os.Environ(), penv...)
	var perr bytes.Buffer
	pub.Stderr = &perr
	runOut, err := pub.Output()
	if err != nil {
		t.Fatalf("planner publish: %v\n%s", err, perr.String())
	}
	run := strings.TrimSpace(string(runOut))

	n := 1
	if killStages {
		n = 2
	}
	var stages []*stage
	for _, name := range []string{bus.RoleSubmitter, bus.RoleWatcher, bus.RoleCollector, bus.RoleDashboard} {
		for range n {
			args, env := c.role(name)
			addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			args = append(args, "--output-path", out, "--replicas", "3", "--http", addr)
			switch name {
			case bus.RoleSubmitter:
				args = append(args, "--scheduler", "local")
			case bus.RoleWatcher:
				// No resubmission after NODE_FAIL: the local jobs of a killed submitter die
				// with it (NODE_FAIL), and the test counts them as failed, once.
				args = append(args, "--scheduler", "local", "--poll-min", "200ms", "--poll-max", "1s", "--max-retries", "0")
			case bus.RoleDashboard:
				args = append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
			}
			stages = append(stages, &stage{name: name, p: spawn(t, env, bin(name), args...), http: "http://" + addr})
			if name == bus.RoleDashboard {
				break
			}
		}
	}

	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if os.Getenv("DISAGGBENCH_CLUSTER_STACKS") == "1" {
			for _, s := range stages {
				if s.p.cmd.ProcessState == nil {
					_ = s.p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines' stacks, in its output
				}
			}
			time.Sleep(time.Second)
		}
		for _, s := range stages {
			t.Logf("--- %s\n%s", s.name, s.p.out)
			if s.p.cmd.ProcessState == nil {
				code, ready := httpGet(s.http + "/readyz")
				_, m := httpGet(s.http + "/metrics")
				var lines []string
				for _, l := range strings.Split(m, "\n") {
					if strings.HasPrefix(l, "disaggbench_consumer") || strings.HasPrefix(l, "disaggbench_events") || strings.HasPrefix(l, "disaggbench_nats") {
						lines = append(lines, l)
					}
				}
				t.Logf("%s /readyz %d %s%s", s.name, code, ready, strings.Join(lines, "\n"))
			}
		}
		for _, d := range []string{bus.RoleSubmitter, bus.RoleWatcher, bus.RoleCollector} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if cons, err := js.Consumer(ctx, events.Stream, d); err == nil {
				in := cons.CachedInfo()
				leader := ""
				if in.Cluster != nil {
					leader = in.Cluster.Leader
				}
				t.Logf("consumer %s: leader %s pending %d ack pending %d waiting %d redelivered %d", d, leader, in.NumPending, in.NumAckPending, in.NumWaiting, in.NumRedelivered)
			} else {
				t.Logf("consumer %s: %v", d, err)
			}
			cancel()
		}
	})
	// Mid-run: once the first test's rows are written, while the others run.
	waitUntil(t, 60*time.Second, "the first results", func() bool { return len(csvRows(t, out)) >= 6 })
	leader, _ := streamLeader(js, events.Stream)
	victim := -1
	for i, name := range c.names {
		if name == leader {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("no stream leader known (%q)", leader)
	}
	cut := time.Now()
	if partition {
		ipRun(t, "link", "set", c.links[victim], "down")
	} else {
		c.nodes[victim].stop(syscall.SIGKILL)
	}
	if killStages {
		// The submitter killed is one that runs jobs (the local scheduler's jobs are its
		// children): they end NODE_FAIL, as on a node that died, and fail once.
		running := map[int]bool{}
		recs, _ := filepath.Glob(filepath.Join(out, ".local-scheduler", "jobs", "*.json"))
		for _, f := range recs {
			var r struct {
				State      string `json:"state"`
				Supervisor int    `json:"supervisor"`
			}
			if data, err := os.ReadFile(f); err == nil && json.Unmarshal(data, &r) == nil && (r.State == "RUNNING" || r.State == "PENDING") {
				running[r.Supervisor] = true
			}
		}
		seen := map[string]bool{}
		for _, s := range stages {
			if s.name == bus.RoleDashboard || seen[s.name] || s.name == bus.RoleSubmitter && !running[s.p.cmd.Process.Pid] {
				continue
			}
			seen[s.name] = true
			s.p.stop(syscall.SIGKILL)
		}
		if !seen[bus.RoleSubmitter] {
			t.Logf("no submitter runs a job at the cut: killing the first")
			for _, s := range stages {
				if s.name == bus.RoleSubmitter {
					s.p.stop(syscall.SIGKILL)
					break
				}
			}
		}
	}
	var newLeader string
	waitUntil(t, 30*time.Second, "a new stream leader", func() bool {
		l, _ := streamLeader(js, events.Stream)
		newLeader = l
		return l != "" && l != leader
	})
	pause := time.Since(cut)
	// The buckets' groups elect their own leaders; the run is followed once all have.
	assets := []string{events.Stream, "KV_" + bus.BucketJobs, "KV_" + bus.BucketRuns, "KV_" + bus.BucketResults, "KV_" + bus.BucketHistory}
	waitUntil(t, 30*time.Second, "leaders for every stream", func() bool {
		for _, a := range assets {
			if l, _ := streamLeader(js, a); l == "" || l == leader {
				return false
			}
		}
		return true
	})
	allLed := time.Since(cut)
	rowsAtCut := len(csvRows(t, out))

	wargs, wenv := c.role(bus.RolePlanner)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, bin("planner"), append([]string{"watch", run, "--output-path", out}, wargs...)...)
	watch.Env = append(os.Environ(), wenv...)
	wout, err := watch.CombinedOutput()
	fin := regexp.MustCompile(`finished: (\d+) passed, (\d+) failed`).FindStringSubmatch(string(wout))
	if err != nil || fin == nil {
		t.Fatalf("planner watch: %v\n%s", err, wout)
	}
	finished := time.Since(cut)
	passed, _ := strconv.Atoi(fin[1])
	failed, _ := strconv.Atoi(fin[2])
	if passed+failed != 12 || !killStages && failed > 0 {
		t.Fatalf("the run finished with %d passed and %d failed:\n%s", passed, failed, wout)
	}
	if failed > 0 && strings.Count(string(wout), "NODE_FAIL") < failed {
		t.Errorf("%d tests failed, not all of them jobs of the killed submitter (NODE_FAIL):\n%s", failed, wout)
	}

	rows := csvRows(t, out)
	lines := map[string]int{}
	for _, r := range rows {
		lines[strings.Join(r, ",")]++
	}
	for l, k := range lines {
		if k != 1 {
			t.Errorf("CSV row written %d times: %s", k, l)
		}
	}
	// 12 tests x 3 concurrencies x 2 metrics; a job killed with its submitter keeps
	// the rows of the steps it finished.
	if len(rows) > 72 || len(rows) < 6*passed || failed == 0 && len(rows) != 72 {
		t.Errorf("%d CSV rows, want 72 (%d from the %d passed tests at least)", len(rows), 6*passed, passed)
	}
	jobs, _ := filepath.Glob(filepath.Join(out, ".local-scheduler", "jobs", "*.json"))
	if len(jobs) != 12 {
		t.Errorf("%d local jobs, want one per test (12)", len(jobs))
	}
	for _, s := range assets {
		if _, r := streamLeader(js, s); r != 3 {
			t.Errorf("%s has %d replicas, want 3", s, r)
		}
	}
	// Every stage still running answers, connected again, with its series.
	for _, s := range stages {
		if s.p.cmd.ProcessState != nil {
			continue
		}
		var code int
		var body string
		deadline := time.Now().Add(20 * time.Second)
		for {
			if code, body = httpGet(s.http + "/readyz"); code == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if code != 200 {
			t.Errorf("%s /readyz: %d %s", s.name, code, body)
		}
		code, body = httpGet(s.http + "/metrics")
		// Each instance reports its consumer's gauges. (Not necessarily an event handled
		// well: its twin may have done all the work while it retried.)
		want := "disaggbench_consumer_pending{consumer=\"" + s.name + "\"}"
		if s.name == bus.RoleDashboard {
			want = "disaggbench_nats_connections 1"
		}
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s /metrics (%d) lacks %s", s.name, code, want)
		}
	}
	t.Logf("stream leader %s %s at %d of 72 rows; new leader %s after %v, every bucket led after %v; run finished %v after the cut (%d passed, %d failed); variant took %v",
		leader, map[bool]string{true: "cut off", false: "killed"}[partition], rowsAtCut, newLeader,
		pause.Round(time.Millisecond), allLed.Round(time.Millisecond), finished.Round(time.Millisecond), passed, failed, time.Since(began).Round(time.Millisecond))
}

// TestPlannerRunServesHealthAndMetrics: `planner run --http` serves the endpoints for
// the stages it runs in its own process: ready with their three consumers bound, and
// each stage's series while the run goes on.
func TestPlannerRunServesHealthAndMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("runs emulated jobs")
	}
	qs := quickstartCopy(t, "0.7")
	out := filepath.Join(t.TempDir(), "out")
	addr := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	p := background(t, runArgs(qs, out, "--batch-size", "1", "--http", strings.TrimPrefix(addr, "http://"))...)
	var body string
	waitUntil(t, 60*time.Second, "ready and every stage's series", func() bool {
		if code, _ := httpGet(addr + "/readyz"); code != 200 {
			return false
		}
		_, body = httpGet(addr + "/metrics")
		for _, stage := range []string{"submitter", "watcher", "collector"} {
			if !strings.Contains(body, `disaggbench_events_handled_total{outcome="ok",stage="`+stage+`"}`) {
				return false
			}
		}
		return true
	})
	for _, want := range []string{`disaggbench_consumer_pending{consumer="collector"}`, `disaggbench_scheduler_calls_total{command="submit",outcome="ok"}`,
		`disaggbench_stage_duration_seconds_bucket{stage="watcher"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := httpGet(addr + "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code := p.wait(t, 90*time.Second); code != 0 {
		t.Fatalf("planner run exited %d:\n%s", code, p.stderr())
	}
}
