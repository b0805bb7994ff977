package obs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyFunc says why the service is not ready (nil: ready).
type ReadyFunc func(ctx context.Context) error

// Server serves /healthz, /readyz and /metrics.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	ready atomic.Pointer[ReadyFunc]
	done  chan struct{}
}

// Listen starts serving on addr (HOST:PORT; port 0 picks one). Until SetReady is
// called, /readyz answers 503 "not connected".
func Listen(addr string, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http %s: %w", addr, err)
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{ErrorLog: nil}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && log != nil {
			log.Warn("health and metrics server stopped", "err", err)
		}
	}()
	if log != nil {
		log.Info("health and metrics", "url", "http://"+ln.Addr().String())
	}
	return s, nil
}

// Addr is where the server listens (HOST:PORT).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetReady sets the readiness check.
func (s *Server) SetReady(f ReadyFunc) { s.ready.Store(&f) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	f := s.ready.Load()
	if f == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: not connected to NATS yet")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := (*f)(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready:", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Close stops serving.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
