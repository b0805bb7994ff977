package emucli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/disaggbench/disaggbench/pkg/benchclient"
)

// Against a real HTTP server that sleeps: the client's figures match the sleeps
// within what a busy machine adds, through the command line and its result JSON.
func TestClientAgainstSleepingServer(t *testing.T) {
	const first, gap, tokens = 40 * time.Millisecond, 15 * time.Millisecond, 5
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		json.NewDecoder(r.Body).Decode(&req)
		if req["ignore_eos"] != true || req["stream"] != true || req["max_tokens"] != float64(tokens) {
			http.Error(w, fmt.Sprintf("unexpected request %v", req), 400)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		time.Sleep(first)
		for i := range tokens {
			if i > 0 {
				time.Sleep(gap)
			}
			fmt.Fprintf(w, "data: {\"choices\":[{\"text\":\" t%d\"}]}\n\n", i)
			f.Flush()
		}
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"completion_tokens\":5}}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	code := runBench([]string{"--model", "m", "--base-url", srv.URL, "--random-input-len", "32", "--random-output-len", fmt.Sprint(tokens),
		"--num-prompts", "8", "--max-concurrency", "4", "--ignore-eos", "--no-test-input", "--save-result",
		"--result-dir", dir, "--result-filename", "result.json", "--percentile-metrics", "ttft,tpot,itl,e2el"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errb.String(), out.String())
	}
	res, err := benchclient.ReadResult(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Completed != 8 || res.TotalOutput != 40 || res.TotalInput != 8*32 || res.MaxConcurrency != 4 {
		t.Errorf("result %+v", res)
	}
	get := func(label string) float64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + ` +([0-9.]+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no %q in:\n%s", label, out.String())
		}
		var v float64
		fmt.Sscan(m[1], &v)
		return v
	}
	for _, c := range []struct {
		label  string
		lo, hi float64
	}{
		// Never below the sleeps; above them by what a loaded 2-core machine adds, but
		// not by a unit's factor.
		{"Median TTFT (ms):", 40, 200}, {"Median TPOT (ms):", 15, 75}, {"Median ITL (ms):", 15, 75}, {"Median E2EL (ms):", 100, 500},
	} {
		if v := get(c.label); v < c.lo || v > c.hi {
			t.Errorf("%s %v, want %v to %v", c.label, v, c.lo, c.hi)
		}
	}
}

// --include_path (extra_kwargs.custom_config's folder) must exist; a missing one fails
// the emulated lm_eval before it asks anything.
func TestMainIncludePath(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runEval([]string{"--tasks", "gsm8k", "--include_path=" + filepath.Join(t.TempDir(), "missing")}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "--include_path") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
