package obs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/disaggbench/disaggbench/pkg/bus"
	"github.com/disaggbench/disaggbench/pkg/obs"
	"github.com/disaggbench/disaggbench/pkg/scheduler"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// The endpoints over a real embedded JetStream server: alive at once, ready only once
// connected with the stage's consumer bound, and the series in the exposition format.
func TestEndpointsOverARealBus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hs, err := obs.Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	base := "http://" + hs.Addr()
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not connected") {
		t.Fatalf("/readyz before connecting: %d %q", code, body)
	}
	b, err := bus.Connect(ctx, bus.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	obs.TrackConnection(b.NC)
	hs.SetReady(func(ctx context.Context) error { return b.Ready(ctx, "submitter") })
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "consumer submitter not bound") {
		t.Fatalf("/readyz before the consumer: %d %q", code, body)
	}
	if _, err := b.Consumer(ctx, "submitter", "test", "bench.batches.>", 5*time.Second, 10); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	if err := b.Publish(ctx, "bench.batches.r1.0", "b-1", map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	obs.Event("submitter", obs.OK)
	obs.Duration("submitter", 1500*time.Millisecond)
	obs.SchedulerCall("submit", time.Now(), errors.Join(scheduler.ErrTransient))
	obs.SubmitRetry()
	obs.ParseFailure("collector", "log")
	obs.Jobs(map[string]int{"RUNNING": 2})
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`disaggbench_events_handled_total{outcome="ok",stage="submitter"} `,
		`disaggbench_stage_duration_seconds_bucket{stage="submitter",le="+Inf"} `,
		`disaggbench_scheduler_calls_total{command="submit",outcome="transient"} 1`,
		`disaggbench_submit_retries_total `,
		`disaggbench_parse_failures_total{kind="log",stage="collector"} `,
		`disaggbench_jobs{state="RUNNING"} 2`,
		`disaggbench_consumer_pending{consumer="submitter"} 1`,
		`disaggbench_consumer_ack_pending{consumer="submitter"} 0`,
		`disaggbench_nats_connections `,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
	b.Close()
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "closed") {
		t.Fatalf("/readyz after the connection closed: %d %q", code, body)
	}
}

// The Grafana dashboard parses, and every disaggbench_ series it queries is one the
// services expose; the Prometheus configuration scrapes every stage.
func TestDeployDashboardAndScrapeConfig(t *testing.T) {
	data, err := os.ReadFile("../../deploy/grafana/disaggbench.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("disaggbench.json: %v", err)
	}
	names := obs.Names()
	series := regexp.MustCompile(`\b(disaggbench_[a-z_]+|go_[a-z_]+|process_[a-z_]+)`)
	queried := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			found := series.FindAllString(tg.Expr, -1)
			if len(found) == 0 {
				t.Errorf("panel %q: %q queries no known series", p.Title, tg.Expr)
			}
			for _, s := range found {
				base := s
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if strings.HasSuffix(s, suf) && !slices.Contains(names, s) {
						base = strings.TrimSuffix(s, suf)
					}
				}
				if !slices.Contains(names, base) {
					t.Errorf("panel %q queries %s, which no service exposes (%v)", p.Title, s, names)
				}
				queried[base] = true
			}
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "disaggbench_") && !queried[n] && n != "disaggbench_consumer_redelivered" {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
	prom, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Scrape []struct {
			Path string `yaml:"metrics_path"`
			DNS  []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(prom, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.Scrape {
		for _, d := range sc.DNS {
			for _, n := range d.Names {
				scraped[n] = sc.Path == "/metrics" && d.Port == 9090
			}
		}
	}
	for _, s := range []string{"submitter", "watcher", "collector", "dashboard"} {
		if !scraped[s] {
			t.Errorf("prometheus.yml does not scrape %s:9090/metrics", s)
		}
	}
}
