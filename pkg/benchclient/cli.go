package benchclient

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
)

// words of the random dataset: common English words, one token each for most
// tokenizers (with the leading space the prompt puts before each).
var words = strings.Fields(`time year people way day man thing woman life child world school state family
student group country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book eye job word
business issue side kind head house service friend father power hour game line end member law car city
community name president team minute idea kid body information back parent face others level office door
health person art war history party result change morning reason research girl guy moment air teacher force education`)

// RandomDataset makes n prompts of inLen words each and output lengths of outLen
// tokens; with ratio r > 0 each length is drawn uniformly from [L(1-r), L(1+r)].
func RandomDataset(n, inLen, outLen int, ratio float64, seed uint64) []Item {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	draw := func(l int) int {
		if ratio <= 0 {
			return l
		}
		lo, hi := int(math.Floor(float64(l)*(1-ratio))), int(math.Ceil(float64(l)*(1+ratio)))
		return max(1, lo+r.IntN(hi-lo+1))
	}
	items := make([]Item, n)
	for i := range items {
		in := draw(inLen)
		var b strings.Builder
		for k := range in {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		items[i] = Item{Prompt: b.String(), InputLen: in, OutputLen: draw(outLen)}
	}
	return items
}

// CustomDataset reads TensorRT-LLM's trtllm_custom JSON lines: each line
// {"input": {"messages": [...] or "prompt": "...", "max_tokens": N}} (or the same
// fields at the top level). A prompt's length is its number of words. n > 0 takes the
// first n lines, cycling when the file has fewer.
func CustomDataset(path string, n, defaultOut int) ([]Item, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var items []Item
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var rec struct {
			Input *customInput `json:"input"`
			customInput
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		in := rec.customInput
		if rec.Input != nil {
			in = *rec.Input
		}
		prompt := in.Prompt
		for _, m := range in.Messages {
			if prompt != "" {
				prompt += "\n"
			}
			prompt += m.Content
		}
		if strings.TrimSpace(prompt) == "" {
			return nil, fmt.Errorf("%s:%d: input: no prompt and no message content", path, line)
		}
		out := in.MaxTokens
		if out <= 0 {
			out = defaultOut
		}
		if out <= 0 {
			return nil, fmt.Errorf("%s:%d: input.max_tokens: missing, and no --random-output-len to fall back on", path, line)
		}
		items = append(items, Item{Prompt: prompt, InputLen: len(strings.Fields(prompt)), OutputLen: out})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s: no requests", path)
	}
	if n > 0 {
		all := items
		items = make([]Item, n)
		for i := range items {
			items[i] = all[i%len(all)]
		}
	}
	return items, nil
}

type customInput struct {
	Prompt   string `json:"prompt"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	MaxTokens int `json:"max_tokens"`
}
