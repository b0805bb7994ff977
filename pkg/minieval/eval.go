package minieval

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	strictRe   = regexp.MustCompile(`#### (\-?[0-9\.\,]+)`)
	flexibleRe = regexp.MustCompile(`(-?[$0-9.,]{2,})|(-?[0-9]+)`)
)

func normalize(s string) string {
	s = strings.NewReplacer("$", "", ",", "").Replace(strings.TrimSpace(s))
	return strings.TrimRight(s, ".")
}

// extractStrict is gsm8k's strict-match filter: the number after "#### ".
func extractStrict(s string) string {
	m := strictRe.FindStringSubmatch(s)
	if m == nil {
		return "[invalid]"
	}
	return normalize(m[1])
}

// extractFlexible is gsm8k's flexible-extract filter: the last number in the answer.
func extractFlexible(s string) string {
	all := flexibleRe.FindAllString(s, -1)
	if len(all) == 0 {
		return "[invalid]"
	}
	return normalize(all[len(all)-1])
}

// Options is one evaluation.
type Options struct {
	Model     string // lm_eval --model: local-completions or local-chat-completions
	Task      string // gsm8k
	BaseURL   string // the completions endpoint
	ModelName string // model=... of --model_args
	MaxTokens int    // max_gen_toks
	Parallel  int    // num_concurrent
	Limit     int    // 0: every question
	Timeout   time.Duration
}

// Score is one filter's result.
type Score struct {
	Filter string
	Value  float64
	Stderr float64
}

// Sample is one question's record (lm_eval's --log_samples).
type Sample struct {
	Question string `json:"question"`
	Target   int    `json:"target"`
	Response string `json:"response"`
	Strict   string `json:"strict_match"`
	Flexible string `json:"flexible_extract"`
}

// Run asks every question (Parallel at a time) and scores the answers.
func Run(ctx context.Context, o Options) ([]Score, []Sample, error) {
	qs := Questions
	if o.Limit > 0 && o.Limit < len(qs) {
		qs = qs[:o.Limit]
	}
	samples := make([]Sample, len(qs))
	errs := make([]error, len(qs))
	sem := make(chan struct{}, max(o.Parallel, 1))
	client := &http.Client{Timeout: o.Timeout}
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			text, err := ask(ctx, client, o, Prompt(q))
			samples[i] = Sample{Question: q.Text, Target: q.Target, Response: text,
				Strict: extractStrict(text), Flexible: extractFlexible(text)}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, samples, fmt.Errorf("question %d: %w", i, err)
		}
	}
	var f, s int
	for _, sm := range samples {
		t := strconv.Itoa(sm.Target)
		if sm.Flexible == t {
			f++
		}
		if sm.Strict == t {
			s++
		}
	}
	n := float64(len(samples))
	score := func(name string, k int) Score {
		p := float64(k) / n
		se := 0.0
		if n > 1 {
			se = math.Sqrt(p * (1 - p) / (n - 1))
		}
		return Score{Filter: name, Value: p, Stderr: se}
	}
	return []Score{score("flexible-extract", f), score("strict-match", s)}, samples, nil
}

func ask(ctx context.Context, c *http.Client, o Options, prompt string) (string, error) {
	body := map[string]any{"model": o.ModelName, "max_tokens": o.MaxTokens, "temperature": 0,
		"stop": []string{"Question:", "</s>", "<|im_end|>"}}
	chat := strings.Contains(o.Model, "chat")
	if chat {
		body["messages"] = []map[string]string{{"role": "user", "content": prompt}}
	} else {
		body["prompt"] = prompt
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.BaseURL, bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s: %s", o.BaseURL, resp.Status, bytes.TrimSpace(data))
	}
	var out struct {
		Choices []struct {
			Text    string `json:"text"`
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) == 0 {
		return "", fmt.Errorf("%s: an answer without choices", o.BaseURL)
	}
	if chat {
		return out.Choices[0].Message.Content, nil
	}
	return out.Choices[0].Text, nil
}

// Table prints the scores as lm_eval prints its results table.
func Table(w io.Writer, task string, scores []Score) {
	tw := max(len(task), len("Tasks"))
	fmt.Fprintf(w, "|%-*s|Version|     Filter     |n-shot|  Metric   |   |Value |   |Stderr|\n", tw, "Tasks")
	fmt.Fprintf(w, "|%s|------:|----------------|-----:|-----------|---|-----:|---|-----:|\n", strings.Repeat("-", tw))
	for i, s := range scores {
		name, version := task, "      3"
		if i > 0 {
			name, version = "", "       "
		}
		fmt.Fprintf(w, "|%-*s|%s|%-16s|     0|exact_match|↑  |%.4f|±  |%.4f|\n", tw, name, version, s.Filter, s.Value, s.Stderr)
	}
	fmt.Fprintln(w)
}

// WriteResults writes lm_eval's results.json (and the samples with logSamples) to dir.
func WriteResults(dir string, o Options, scores []Score, samples []Sample, logSamples bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res := map[string]any{"emulation": true, "results": map[string]any{o.Task: map[string]any{}}}
	r := res["results"].(map[string]any)[o.Task].(map[string]any)
	for _, s := range scores {
		r["exact_match,"+s.Filter] = s.Value
		r["exact_match_stderr,"+s.Filter] = s.Stderr
	}
	b, _ := json.MarshalIndent(res, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if !logSamples {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, s := range samples {
		enc.Encode(s)
	}
	return os.WriteFile(filepath.Join(dir, "samples_"+o.Task+".jsonl"), buf.Bytes(), 0o644)
}
