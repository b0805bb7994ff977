package emu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
)

// ServerConfig is the disaggregated server's config file (server_config.yaml), as the
// job script writes it.
type ServerConfig struct {
	Hostname          string        `yaml:"hostname"`
	Port              int           `yaml:"port"`
	Backend           string        `yaml:"backend"`
	ContextServers    ServerSection `yaml:"context_servers"`
	GenerationServers ServerSection `yaml:"generation_servers"`
}

// ServerSection lists one role's workers.
type ServerSection struct {
	NumInstances int      `yaml:"num_instances"`
	URLs         []string `yaml:"urls"`
}

// ReadServerConfig reads and checks a server config; an error names the file and field.
func ReadServerConfig(path string) (ServerConfig, error) {
	var c ServerConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	if c.Port <= 0 || c.Port > 65535 {
		return c, fmt.Errorf("%s: port: %d is not a TCP port", path, c.Port)
	}
	if len(c.GenerationServers.URLs) == 0 {
		return c, fmt.Errorf("%s: generation_servers.urls: at least one is required", path)
	}
	for _, s := range []struct {
		field string
		sec   ServerSection
	}{{"context_servers", c.ContextServers}, {"generation_servers", c.GenerationServers}} {
		for i, u := range s.sec.URLs {
			if _, _, err := net.SplitHostPort(u); err != nil {
				return c, fmt.Errorf("%s: %s.urls[%d]: %q is not host:port", path, s.field, i, u)
			}
		}
	}
	return c, nil
}

// Router is the emulated disaggregated server: each request is prefilled on a ctx
// worker (max_tokens 1, context_only) and then generated on a gen worker
// (generation_only, with the ctx worker's disaggregated_params), both picked round
// robin; the gen worker's answer, streamed or not, is passed to the client as it comes.
type Router struct {
	Config ServerConfig
	Log    *log.Logger

	client   *http.Client
	ctxNext  atomic.Uint64
	genNext  atomic.Uint64
	initOnce sync.Once
}

func (rt *Router) init() {
	rt.initOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 0
		tr.MaxIdleConnsPerHost = 4096
		tr.DisableCompression = true
		rt.client = &http.Client{Transport: tr}
	})
}

// Handler serves the router's HTTP API.
func (rt *Router) Handler() http.Handler {
	rt.init()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", rt.health)
	mux.HandleFunc("GET /v1/models", func(rw http.ResponseWriter, r *http.Request) {
		rt.forwardGET(rw, r, rt.Config.GenerationServers.URLs[0]+"/v1/models")
	})
	mux.HandleFunc("POST /v1/completions", func(rw http.ResponseWriter, r *http.Request) { rt.complete(rw, r, "/v1/completions") })
	mux.HandleFunc("POST /v1/chat/completions", func(rw http.ResponseWriter, r *http.Request) { rt.complete(rw, r, "/v1/chat/completions") })
	return mux
}

// health answers 200 only when every worker answers /health with 200.
func (rt *Router) health(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	for _, u := range append(append([]string{}, rt.Config.ContextServers.URLs...), rt.Config.GenerationServers.URLs...) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+u+"/health", nil)
		resp, err := rt.client.Do(req)
		if err != nil {
			http.Error(rw, "worker "+u+" is not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			http.Error(rw, "worker "+u+" answered "+resp.Status, http.StatusServiceUnavailable)
			return
		}
	}
	rw.WriteHeader(http.StatusOK)
}

func (rt *Router) forwardGET(rw http.ResponseWriter, r *http.Request, url string) {
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, "http://"+url, nil)
	resp, err := rt.client.Do(req)
	if err != nil {
		httpError(rw, http.StatusBadGateway, err.Error())
		return
	}
	defer resp.Body.Close()
	rw.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	rw.WriteHeader(resp.StatusCode)
	io.Copy(rw, resp.Body)
}

func pick(urls []string, next *atomic.Uint64) string {
	return urls[(next.Add(1)-1)%uint64(len(urls))]
}

func (rt *Router) complete(rw http.ResponseWriter, hr *http.Request, path string) {
	body, err := io.ReadAll(io.LimitReader(hr.Body, maxBody))
	if err != nil {
		httpError(rw, http.StatusBadRequest, err.Error())
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		httpError(rw, http.StatusBadRequest, "request body: "+err.Error())
		return
	}
	ctx := hr.Context()
	if urls := rt.Config.ContextServers.URLs; len(urls) > 0 {
		cm := make(map[string]any, len(m)+1)
		for k, v := range m {
			cm[k] = v
		}
		delete(cm, "max_completion_tokens")
		delete(cm, "stream_options")
		cm["max_tokens"], cm["stream"] = 1, false
		cm["disaggregated_params"] = DisaggParams{RequestType: ContextOnly}
		resp, err := rt.post(ctx, pick(urls, &rt.ctxNext), path, cm)
		if err != nil {
			httpError(rw, http.StatusBadGateway, "ctx worker: "+err.Error())
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(resp.StatusCode)
			rw.Write(b)
			return
		}
		var out response
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) == 0 || out.Choices[0].DisaggregatedParams == nil {
			httpError(rw, http.StatusBadGateway, "ctx worker: answer without disaggregated_params")
			return
		}
		dp := *out.Choices[0].DisaggregatedParams
		dp.RequestType = GenerationOnly
		m["disaggregated_params"] = dp
	}
	resp, err := rt.post(ctx, pick(rt.Config.GenerationServers.URLs, &rt.genNext), path, m)
	if err != nil {
		httpError(rw, http.StatusBadGateway, "gen worker: "+err.Error())
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Cache-Control"} {
		if v := resp.Header.Get(h); v != "" {
			rw.Header().Set(h, v)
		}
	}
	rw.WriteHeader(resp.StatusCode)
	f, _ := rw.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := rw.Write(buf[:n]); werr != nil {
				return
			}
			if f != nil {
				f.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && hr.Context().Err() == nil {
				rt.Log.Printf("gen stream: %v", err)
			}
			return
		}
	}
}

func (rt *Router) post(ctx context.Context, hostport, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hostport+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Length", strconv.Itoa(len(b)))
	return rt.client.Do(req)
}

// listenAddr joins a host and port; an empty host listens on every address.
// ListenAddr is host:port, the host trimmed.
func ListenAddr(host string, port int) string {
	return net.JoinHostPort(strings.TrimSpace(host), strconv.Itoa(port))
}
