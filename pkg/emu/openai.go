package emu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// request is the subset of an OpenAI completion or chat completion request the
// emulator reads; the router forwards every other field untouched.
type request struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []message       `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS           bool          `json:"ignore_eos"`
	DisaggregatedParams *DisaggParams `json:"disaggregated_params"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// DisaggParams are the disaggregated-serving parameters the router passes from the ctx
// worker's answer to the gen worker (TensorRT-LLM's disaggregated_params).
type DisaggParams struct {
	RequestType    string `json:"request_type"`
	FirstGenTokens []int  `json:"first_gen_tokens,omitempty"`
	CtxRequestID   uint64 `json:"ctx_request_id,omitempty"`
	// EncodedOpaqueState carries what the real ctx worker hands over; here the prompt's
	// token count, so the gen worker can price the KV transfer.
	EncodedOpaqueState string `json:"encoded_opaque_state,omitempty"`
}

const (
	ContextOnly    = "context_only"
	GenerationOnly = "generation_only"
)

// prompt returns the request's prompt text and its number of tokens.
func (r *request) prompt(chat bool) (string, int, error) {
	if chat {
		if len(r.Messages) == 0 {
			return "", 0, errors.New("messages: at least one message is required")
		}
		var parts []string
		for i, m := range r.Messages {
			var s string
			if err := json.Unmarshal(m.Content, &s); err != nil {
				var list []struct {
					Type string `json:"type"`
					Text string `json:"text"`
				}
				if err2 := json.Unmarshal(m.Content, &list); err2 != nil {
					return "", 0, fmt.Errorf("messages[%d].content: want a string or a list of text parts", i)
				}
				for _, p := range list {
					s += p.Text
				}
			}
			parts = append(parts, s)
		}
		text := strings.Join(parts, "\n")
		return text, len(strings.Fields(text)), nil
	}
	if len(r.Prompt) == 0 {
		return "", 0, errors.New("prompt: required")
	}
	var s string
	if err := json.Unmarshal(r.Prompt, &s); err == nil {
		return s, len(strings.Fields(s)), nil
	}
	var list []string
	if err := json.Unmarshal(r.Prompt, &list); err == nil {
		if len(list) != 1 {
			return "", 0, fmt.Errorf("prompt: the emulator takes one prompt a request, got %d", len(list))
		}
		return list[0], len(strings.Fields(list[0])), nil
	}
	var ids []int
	if err := json.Unmarshal(r.Prompt, &ids); err == nil {
		return "", len(ids), nil
	}
	return "", 0, errors.New("prompt: want a string, a list of one string, or a list of token ids")
}

func (r *request) maxTokens(chat bool) (int, error) {
	n := 16
	if chat {
		n = 256
	}
	switch {
	case r.MaxTokens != nil:
		n = *r.MaxTokens
	case r.MaxCompletionTokens != nil:
		n = *r.MaxCompletionTokens
	}
	if n < 1 || n > 1<<20 {
		return 0, fmt.Errorf("max_tokens: %d is out of range [1, %d]", n, 1<<20)
	}
	return n, nil
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type choice struct {
	Index               int           `json:"index"`
	Text                *string       `json:"text,omitempty"`
	Delta               *delta        `json:"delta,omitempty"`
	Message             *delta        `json:"message,omitempty"`
	FinishReason        *string       `json:"finish_reason"`
	DisaggregatedParams *DisaggParams `json:"disaggregated_params,omitempty"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content"`
}

type response struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

// writer writes one response, streamed as server-sent events or whole.
type writer struct {
	w       http.ResponseWriter
	f       http.Flusher
	chat    bool
	stream  bool
	usage   bool
	id      string
	model   string
	created int64
	text    strings.Builder
	tokens  int
	started bool
}

func newWriter(w http.ResponseWriter, r *request, chat bool, id string) *writer {
	f, _ := w.(http.Flusher)
	return &writer{w: w, f: f, chat: chat, stream: r.Stream, usage: r.StreamOptions != nil && r.StreamOptions.IncludeUsage,
		id: id, model: r.Model, created: time.Now().Unix()}
}

func (w *writer) object() string {
	switch {
	case w.chat && w.stream:
		return "chat.completion.chunk"
	case w.chat:
		return "chat.completion"
	}
	return "text_completion"
}

func (w *writer) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(b)+8)
	buf = append(append(append(buf, "data: "...), b...), "\n\n"...)
	if _, err := w.w.Write(buf); err != nil {
		return err
	}
	if w.f != nil {
		w.f.Flush()
	}
	return nil
}

func (w *writer) start() error {
	if w.started || !w.stream {
		return nil
	}
	w.started = true
	w.w.Header().Set("Content-Type", "text/event-stream")
	w.w.Header().Set("Cache-Control", "no-cache")
	w.w.WriteHeader(http.StatusOK)
	if w.chat { // the role comes first, with empty content, as OpenAI servers send it
		return w.event(response{ID: w.id, Object: w.object(), Created: w.created, Model: w.model,
			Choices: []choice{{Delta: &delta{Role: "assistant"}}}})
	}
	return nil
}

// tokens sends n generated tokens as one chunk (streaming) or keeps them.
func (w *writer) send(text string, n int) error {
	w.tokens += n
	if !w.stream {
		w.text.WriteString(text)
		return nil
	}
	if err := w.start(); err != nil {
		return err
	}
	c := choice{}
	if w.chat {
		c.Delta = &delta{Content: text}
	} else {
		c.Text = &text
	}
	return w.event(response{ID: w.id, Object: w.object(), Created: w.created, Model: w.model, Choices: []choice{c}})
}

// finish ends the response: the finish reason, then usage (when asked), then [DONE].
func (w *writer) finish(reason string, promptTokens int, dp *DisaggParams) error {
	u := &usage{PromptTokens: promptTokens, CompletionTokens: w.tokens, TotalTokens: promptTokens + w.tokens}
	if !w.stream {
		c := choice{FinishReason: &reason, DisaggregatedParams: dp}
		text := w.text.String()
		if w.chat {
			c.Message = &delta{Role: "assistant", Content: text}
		} else {
			c.Text = &text
		}
		w.w.Header().Set("Content-Type", "application/json")
		return json.NewEncoder(w.w).Encode(response{ID: w.id, Object: w.object(), Created: w.created,
			Model: w.model, Choices: []choice{c}, Usage: u})
	}
	if err := w.start(); err != nil {
		return err
	}
	c := choice{FinishReason: &reason}
	if w.chat {
		c.Delta = &delta{}
	} else {
		empty := ""
		c.Text = &empty
	}
	if err := w.event(response{ID: w.id, Object: w.object(), Created: w.created, Model: w.model, Choices: []choice{c}}); err != nil {
		return err
	}
	if w.usage {
		if err := w.event(response{ID: w.id, Object: w.object(), Created: w.created, Model: w.model, Choices: []choice{}, Usage: u}); err != nil {
			return err
		}
	}
	if _, err := w.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		return err
	}
	if w.f != nil {
		w.f.Flush()
	}
	return nil
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": http.StatusText(code), "code": code}})
}
