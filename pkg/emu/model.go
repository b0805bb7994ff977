// Package emu is an EMULATED TensorRT-LLM server: a stand-in for trtllm-serve that runs
// no model and needs no GPU, so that the built-in job script (ctx and gen workers, the
// disaggregated router, the health wait, the benchmark client, lm_eval) can run end to
// end on any CPU machine. It serves the OpenAI-compatible API (/v1/completions,
// /v1/chat/completions with server-sent events, /v1/models, /health) and forwards
// router -> ctx -> gen as the real disaggregated server does. Its delays come from
// Model, a small timing model that is deterministic under a seed.
//
// Tokens: a prompt's tokens are its white-space separated words (a prompt given as token
// ids counts one token an id); every generated token is one word.
package emu

import (
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Model is the emulator's timing model. Every delay is a plain function of the request
// and the worker's state, so a run is reproducible up to the operating system's timing:
//
//	prefill (ctx worker)  PrefillBase + PrefillPerToken x (tokens of every prompt in the
//	                      prefill batch), divided by TPSpeedup(tp); prompts queue when
//	                      the batch is full (max_batch_size prompts, max_num_tokens tokens),
//	                      so the cost grows with input length and with queued prompts
//	KV transfer (gen)     Transfer[backend].Base + Transfer[backend].PerToken x input tokens
//	decode step (gen)     (StepBase + StepPerSeq x running sequences) x (1 + MTPCost x
//	                      mtp layers) / TPSpeedup(tp x ep): continuous batching up to
//	                      max_batch_size sequences, later requests wait for a free slot
//	MTP                   each of the mtp draft tokens of a step is accepted with
//	                      probability MTPAccept, in order, until the first rejection: a
//	                      step yields 1 to 1+mtp tokens, so decoding takes fewer steps
//	jitter                prefill and transfer times are scaled by a factor drawn from
//	                      [1-Jitter, 1+Jitter] by a generator seeded with Seed and the
//	                      request's number on that worker
type Model struct {
	Seed            uint64
	PrefillBase     time.Duration
	PrefillPerToken time.Duration
	Transfer        map[string]TransferCost // by cache_transceiver_config.backend, upper case
	StepBase        time.Duration
	StepPerSeq      time.Duration
	MTPCost         float64 // extra step cost per MTP layer, a fraction
	MTPAccept       float64 // acceptance probability of one draft token
	Jitter          float64
}

// TransferCost is the KV-cache transfer cost of one backend.
type TransferCost struct {
	Base     time.Duration
	PerToken time.Duration
}

// DefaultModel is a small model on one GPU, scaled so that a job of the quickstart
// (1,024 input and 128 output tokens) lasts seconds.
func DefaultModel() Model {
	return Model{
		Seed:            1,
		PrefillBase:     2 * time.Millisecond,
		PrefillPerToken: 3 * time.Microsecond,
		Transfer: map[string]TransferCost{
			"DEFAULT":  {Base: 500 * time.Microsecond, PerToken: 1500 * time.Nanosecond},
			"UCX":      {Base: 500 * time.Microsecond, PerToken: 1500 * time.Nanosecond},
			"NIXL":     {Base: 300 * time.Microsecond, PerToken: 1000 * time.Nanosecond},
			"MPI":      {Base: 800 * time.Microsecond, PerToken: 2500 * time.Nanosecond},
			"MOONCAKE": {Base: 400 * time.Microsecond, PerToken: 1200 * time.Nanosecond},
		},
		StepBase:   2 * time.Millisecond,
		StepPerSeq: 1 * time.Millisecond,
		MTPCost:    0.15,
		MTPAccept:  0.7,
		Jitter:     0.05,
	}
}

// TPSpeedup is how much faster a worker spread over n GPUs computes: n^0.8.
func TPSpeedup(n int) float64 {
	if n <= 1 {
		return 1
	}
	return math.Pow(float64(n), 0.8)
}

// Prefill is the time to prefill a batch holding tokens prompt tokens on tp GPUs.
func (m Model) Prefill(tokens, tp int, jitter float64) time.Duration {
	d := float64(m.PrefillBase+time.Duration(tokens)*m.PrefillPerToken) / TPSpeedup(tp)
	return time.Duration(d * jitter)
}

// KVTransfer is the time to move the KV cache of a prompt of tokens tokens from a ctx
// to a gen worker with the given backend (unknown backends cost as DEFAULT).
func (m Model) KVTransfer(backend string, tokens int, jitter float64) time.Duration {
	c, ok := m.Transfer[strings.ToUpper(backend)]
	if !ok {
		c = m.Transfer["DEFAULT"]
	}
	return time.Duration(float64(c.Base+time.Duration(tokens)*c.PerToken) * jitter)
}

// Step is the time of one decode step with running sequences in the batch.
func (m Model) Step(running, parallel, mtp int) time.Duration {
	d := float64(m.StepBase+time.Duration(running)*m.StepPerSeq) * (1 + m.MTPCost*float64(mtp)) / TPSpeedup(parallel)
	return time.Duration(d)
}

// Accepted draws how many of mtp draft tokens one step accepts.
func (m Model) Accepted(r *rand.Rand, mtp int) int {
	n := 0
	for n < mtp && r.Float64() < m.MTPAccept {
		n++
	}
	return n
}

// Rand is the generator of one request: seeded with the model's seed and the
// request's number, so the same run draws the same values.
func (m Model) Rand(request uint64) *rand.Rand {
	return rand.New(rand.NewPCG(m.Seed, request))
}

// JitterFactor draws a factor in [1-Jitter, 1+Jitter].
func (m Model) JitterFactor(r *rand.Rand) float64 {
	return 1 + m.Jitter*(2*r.Float64()-1)
}
