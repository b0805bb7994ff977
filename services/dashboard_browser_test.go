package services_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds headless Chromium; the test skips without it unless
// DISAGGBENCH_REQUIRE_BROWSER is set (CI sets it).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("DISAGGBENCH_REQUIRE_BROWSER") != "" {
		t.Fatal("DISAGGBENCH_REQUIRE_BROWSER is set but no chromium is on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH")
	return ""
}

func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready:\n%s", url, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDashboardInABrowser starts a nats-server, the three stages and a dashboard, opens
// the dashboard in headless Chromium, runs the quickstart, and checks that each view
// shows it: the runs page updates live without a reload, the run page lists the tests
// with their verdicts, the Pareto and latency charts have points, the compare view has
// coloured deltas between two points, and `dashboard report` writes one self-contained file that renders too.
// With DISAGGBENCH_SCREENSHOTS=DIR it saves a screenshot of each view there.
func TestDashboardInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a nats-server, the stages, a dashboard and a browser")
	}
	browser := chromium(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	ns := start(t, "nats-server", "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", filepath.Join(dir, "nats"))
	waitTCP(t, port, ns)
	common := []string{"--nats", url, "--output-path", out}
	start(t, "submitter", append(common, "--scheduler", "local")...)
	start(t, "watcher", append(common, "--scheduler", "local", "--poll-min", "100ms", "--poll-max", "500ms")...)
	start(t, "collector", common...)
	web := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	dash := start(t, "dashboard", append(common, "--listen", strings.TrimPrefix(web, "http://"))...)
	waitHTTP(t, web+"/readyz", dash)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Follow /events as a client would, from before the run.
	type sseEvent struct {
		id   uint64
		kind string
	}
	evc := make(chan sseEvent, 1000)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", web+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var id uint64
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id, _ = strconv.ParseUint(v, 10, 64)
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				var e struct{ Kind string }
				_ = json.Unmarshal([]byte(v), &e)
				evc <- sseEvent{id, e.Kind}
			}
		}
	}()

	actx, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	shots := os.Getenv("DISAGGBENCH_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		if err := chromedp.Do(bctx, chromedp.Sleep(300*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, "dashboard-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(web+"/#/runs"), chromedp.WaitVisible("#runs-table"),
		chromedp.Evaluate[chromedp.Void](`window.__loaded = 1`)); err != nil {
		t.Fatal(err)
	}

	qs := "../examples/quickstart"
	publish := func() string {
		t.Helper()
		res, err := exec.Command(bin("planner"), append([]string{"publish", "--config-dir", qs + "/test_configs",
			"--test-list", qs + "/testlist.txt", "--batch-size", "2"}, common...)...).Output()
		if err != nil {
			t.Fatalf("planner publish: %v", err)
		}
		run := strings.TrimSpace(string(res))
		if i := strings.LastIndexByte(run, '\n'); i >= 0 {
			run = run[i+1:]
		}
		return run
	}
	run1 := publish()
	// The run appears and progresses on the open page, which is never reloaded.
	row := fmt.Sprintf(`tr[data-run=%q] td.counts`, run1)
	var seen []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		text, _ := evalJS[string](bctx, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, row))
		if text != "" && (len(seen) == 0 || seen[len(seen)-1] != text) {
			seen = append(seen, text)
			if len(seen) == 2 {
				shot("runs-live")
			}
		}
		if strings.Contains(text, "done 4") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not done on the runs page; saw %q\n%s", run1, seen, dash.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if loaded, err := evalJS[int](bctx, `window.__loaded || 0`); err != nil || loaded != 1 {
		t.Fatalf("the page was reloaded (%v)", err)
	}
	if len(seen) < 2 || !strings.Contains(seen[len(seen)-1], "passed 4") {
		t.Fatalf("runs page did not update live: %q", seen)
	}
	shot("runs")

	// The API lists the run and its four tests.
	resp, err := http.Get(web + "/api/runs/" + run1)
	if err != nil {
		t.Fatal(err)
	}
	var detail struct {
		TestList []struct{ ID, Verdict string } `json:"test_list"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&detail); err != nil || len(detail.TestList) != 4 {
		t.Fatalf("/api/runs/%s: %v %+v", run1, err, detail)
	}
	// /events streamed the run with increasing ids.
	var ids []uint64
	kinds := map[string]int{}
	for drained := false; !drained; {
		select {
		case e := <-evc:
			if len(ids) > 0 && e.id <= ids[len(ids)-1] {
				t.Fatalf("/events id %d after %d", e.id, ids[len(ids)-1])
			}
			ids = append(ids, e.id)
			kinds[e.kind]++
		default:
			drained = true
		}
	}
	if kinds["run.started"] != 1 || kinds["result"] != 4 || kinds["run.finished"] != 1 {
		t.Fatalf("/events kinds %v", kinds)
	}

	// The run page: every test with its verdict and numbers.
	if err := chromedp.Do(bctx, chromedp.Navigate(web+"/#/run/"+run1), chromedp.WaitVisible(`tr[data-test]`),
		chromedp.Sleep(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	tests := mustEval[int](t, bctx, `document.querySelectorAll('tr[data-test]').length`)
	passed := mustEval[int](t, bctx, `document.querySelectorAll('tr[data-test] .b-PASSED').length`)
	if tests != 4 || passed != 4 {
		t.Fatalf("run page: %d tests, %d passed", tests, passed)
	}
	shot("run")

	chartPoints := `(function(){var n=0;window.disaggbench.charts().forEach(function(c){c.data.datasets.forEach(function(d){n+=d.data.length})});return n})()`
	if err := chromedp.Do(bctx, chromedp.Navigate(web+"/#/pareto"), chromedp.WaitVisible(`#pareto-chart`),
		chromedp.WaitVisible(`main[data-points]`)); err != nil {
		t.Fatal(err)
	}
	if points := mustEval[int](t, bctx, chartPoints); points == 0 {
		t.Fatal("Pareto chart has no points")
	}
	shot("pareto")
	if err := chromedp.Do(bctx, chromedp.Navigate(web+"/#/latency"), chromedp.WaitVisible(`main[data-series]`)); err != nil {
		t.Fatal(err)
	}
	canvases := mustEval[int](t, bctx, `document.querySelectorAll('canvas').length`)
	if points := mustEval[int](t, bctx, chartPoints); canvases != 4 || points == 0 {
		t.Fatalf("latency view: %d charts, %d points", canvases, points)
	}
	shot("latency")
	// Compare two points of the run: the lowest and the highest concurrency of its tests.
	if err := chromedp.Do(bctx, chromedp.Navigate(web+"/#/compare"), chromedp.WaitVisible(`#cmp-mode`)); err != nil {
		t.Fatal(err)
	}
	colored := mustEval[int](t, bctx, `(function(){
		var m = document.getElementById('cmp-mode'); m.value = 'points'; m.dispatchEvent(new Event('change'));
		var b = document.getElementById('cmp-pb'); b.value = b.options[b.options.length-1].value; b.dispatchEvent(new Event('change'));
		return document.querySelectorAll('td.delta.better, td.delta.worse').length })()`)
	if colored == 0 {
		t.Fatal("compare view has no coloured deltas between two points")
	}
	shot("compare")

	// The report: one file, no address in it, and it renders offline.
	report := filepath.Join(dir, "report.html")
	if res, err := exec.Command(bin("dashboard"), append([]string{"report", run1, "--out", report}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("dashboard report: %v\n%s", err, res)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) > 3<<20 || strings.Contains(string(page), "http://") || strings.Contains(string(page), "https://") {
		t.Fatalf("report: %d bytes, or it names an address", len(page))
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+report+"#/pareto"), chromedp.WaitVisible(`main[data-points]`)); err != nil {
		t.Fatal(err)
	}
	if points := mustEval[int](t, bctx, chartPoints); points == 0 {
		t.Fatal("the report's Pareto chart has no points")
	}
	shot("report")
}

func waitTCP(t *testing.T, port int, p *proc) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %d not open:\n%s", port, p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func evalJS[T any](ctx context.Context, expr string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

func mustEval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := evalJS[T](ctx, expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}
