// Package web is the HTTP scaffolding every Steward service shares: the
// server lifecycle with graceful shutdown, JSON encode/decode with limits,
// RFC 9457 problem details, and the middleware for request IDs, trace
// context, access logs, panics and Prometheus metrics.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stewardhq/steward/platform/fault"
)

// Options describe one service's HTTP handler.
type Options struct {
	// Service names the service in metrics and logs, e.g. "config".
	Service string
	Logger  *slog.Logger
	// Registry receives the HTTP metrics and is served on /metrics. Nil
	// makes a fresh registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Ready reports whether the service can serve: nil when it is caught up
	// with its log, else why not. Nil Ready means always ready.
	Ready func(ctx context.Context) error
	// Middleware runs inside the built-in middleware, around every route
	// (health and metrics included), e.g. to set a header on every answer.
	Middleware []func(http.Handler) http.Handler
	// QuietRoutes are chi route patterns (e.g. a heartbeat) whose
	// successful requests are logged at debug level: at thousands a
	// second, an info line each would drown everything else.
	QuietRoutes []string
	// Routes mounts the service's API.
	Routes func(r chi.Router)
}

// NewHandler returns the service's full handler: middleware, the API from
// Options.Routes, and /healthz, /readyz and /metrics.
func NewHandler(o Options) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	logger = logger.With("service", o.Service)

	r := chi.NewRouter()
	r.Use(withRequestID, withTraceparent, observe(logger, newMetrics(reg, o.Service), o.QuietRoutes), recoverPanics(logger))
	r.Use(o.Middleware...)
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		Error(w, req, logger, fault.New(fault.NotFound, "no route for %s", req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		Error(w, req, logger, fault.New(fault.NotAllowed, "method %s is not allowed on %s", req.Method, req.URL.Path))
	})

	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_ = Encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, req *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(req.Context()); err != nil {
				Error(w, req, nil, fault.Wrap(fault.Unavailable, err, "not ready: "+err.Error()))
				return
			}
		}
		_ = Encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if o.Routes != nil {
		o.Routes(r)
	}
	return r
}

// Stopping returns a channel that is closed when the server that serves
// this request begins to shut down. Long-lived handlers (watch streams,
// blocking reads) select on it to end cleanly so shutdown can drain them;
// ordinary requests just finish. Outside a served request it never closes.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey).(chan struct{})
	return ch
}

// Serve serves h on ln until ctx is done, then shuts down gracefully: it
// stops accepting, signals Stopping to long-lived handlers, and waits up to
// drain for in-flight requests before closing what is left. It returns nil
// after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, drain time.Duration) error {
	stopping := make(chan struct{})
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), stoppingKey, stopping)
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(stopping) })

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", ln.Addr().String(), "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("drain timed out; closing remaining connections", "addr", ln.Addr().String())
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, drain time.Duration) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String())
	return Serve(ctx, ln, h, logger, drain)
}
