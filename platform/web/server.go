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
	"github.com/stewardhq/steward/platform/web/h1server"
)

// Options describe one service's HTTP handler.
type Options struct {
	// Service names the service in metrics and logs, e.g. "config".
	Service string
	Logger  *slog.Logger
	// Registry receives the HTTP metrics and is served on /metrics. Nil
	// makes a fresh registry with the Go and process collectors
	// (NewRegistry). Pass it to Serve too (WithMetrics) for the
	// listener's HTTP/1.1 counters.
	Registry *prometheus.Registry
	// Collectors are the service's own metrics beyond HTTP (its log's
	// health, say), registered on Registry.
	Collectors []prometheus.Collector
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
	// OpenAPI, if set, is the API's OpenAPI document, served at
	// /openapi.json.
	OpenAPI []byte
}

// NewHandler returns the service's full handler: middleware, the API from
// Options.Routes, and /healthz, /readyz, /metrics and /openapi.json.
func NewHandler(o Options) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := o.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	reg.MustRegister(o.Collectors...)
	logger = logger.With("service", o.Service)

	r := chi.NewRouter()
	r.Use(withRequestContext, observe(logger, newMetrics(reg, o.Service), o.QuietRoutes), recoverPanics(logger))
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
	r.Get(readyRoute, func(w http.ResponseWriter, req *http.Request) {
		if o.Ready != nil {
			if err := o.Ready(req.Context()); err != nil {
				Error(w, req, nil, fault.Wrap(fault.Unavailable, err, "not ready: "+err.Error()))
				return
			}
		}
		_ = Encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if o.OpenAPI != nil {
		r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
			_ = WriteJSON(w, http.StatusOK, o.OpenAPI)
		})
	}
	if o.Routes != nil {
		o.Routes(r)
	}
	return r
}

// NewRegistry returns a registry with the Go and process collectors:
// NewHandler's when Options.Registry is nil.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// readyRoute is the readiness probe's route.
const readyRoute = "/readyz"

// Stopping returns a channel that is closed when the server that serves
// this request begins to shut down. Long-lived handlers (watch streams,
// blocking reads) select on it to end cleanly so shutdown can drain them;
// ordinary requests just finish. Outside a served request it never closes.
func Stopping(ctx context.Context) <-chan struct{} {
	if st, _ := ctx.Value(servingKey).(*serving); st != nil {
		return st.stopping
	}
	return nil
}

// serving is what Serve puts in every request's context: the shutdown
// signal and the server's limits.
type serving struct {
	stopping chan struct{}
	holds    *holds
	trusted  Proxies
}

// Limits bound what clients can make a server hold. Every service's
// Settings embed them, so each reads the same STEWARD_* variables; a zero
// field takes its default.
type Limits struct {
	// WatchesPerClient bounds the long-lived requests (watch streams,
	// blocking queries, candidates waiting in line) one client may hold
	// open on this server at once; one more is refused with 429 (see
	// Hold). 0 means 256.
	WatchesPerClient int `envconfig:"MAX_WATCHES_PER_CLIENT" default:"256"`
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers, and IdleTimeout how long a kept-alive
	// connection may wait for the next request; 0 means 10s and 2m.
	// There is no read or write timeout on a whole request: it would cut
	// watch streams and blocking queries, which last minutes by design.
	ReadHeaderTimeout time.Duration `envconfig:"READ_HEADER_TIMEOUT" default:"10s"`
	IdleTimeout       time.Duration `envconfig:"IDLE_TIMEOUT" default:"2m"`
	// TrustedProxies are proxies (Steward's gateways, a load balancer)
	// whose X-Forwarded-For names the client a request is counted
	// against; empty trusts none, so every client behind a proxy counts
	// as the proxy.
	TrustedProxies Proxies `envconfig:"TRUSTED_PROXIES"`
	// HTTP1Server picks what reads plain HTTP/1.1 requests: "steward"
	// serves plain keep-alive requests with package h1server, over TLS
	// too, and hands everything else to net/http; "net/http" leaves them
	// all to net/http.
	HTTP1Server string `envconfig:"HTTP1_SERVER" default:"steward"`
}

func (l Limits) withDefaults() Limits {
	if l.WatchesPerClient <= 0 {
		l.WatchesPerClient = 256
	}
	if l.ReadHeaderTimeout <= 0 {
		l.ReadHeaderTimeout = 10 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 2 * time.Minute
	}
	if l.HTTP1Server == "" {
		l.HTTP1Server = HTTP1Steward
	}
	return l
}

// The values of Limits.HTTP1Server.
const (
	HTTP1Steward = "steward"
	HTTP1NetHTTP = "net/http"
)

// Validate reports a setting no server can run with.
func (l Limits) Validate() error {
	switch l.HTTP1Server {
	case "", HTTP1Steward, HTTP1NetHTTP:
		return nil
	}
	return fmt.Errorf("STEWARD_HTTP1_SERVER=%q: want %q or %q", l.HTTP1Server, HTTP1Steward, HTTP1NetHTTP)
}

// Serve serves h on ln until ctx is done, then shuts down gracefully: it
// stops accepting, signals Stopping to long-lived handlers, and waits up to
// drain for in-flight requests and held streams (Hold) before closing what
// is left. It returns nil after a clean shutdown. Every request, before h
// sees it, is checked for ambiguous framing (see framedConn). Over a TLS
// listener (ServeTLS), requests carry their connection's TLS state in
// Request.TLS.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, drain time.Duration, limits Limits, opts ...ServeOption) error {
	return serve(ctx, ln, h, logger, drain, limits, opts)
}

// A ServeOption adds to what Serve and ServeTLS do.
type ServeOption func(*serveOptions)

type serveOptions struct {
	metrics prometheus.Registerer
}

// WithMetrics registers on reg, while Serve runs, the counters of the
// HTTP/1.1 server in front of net/http (package h1server):
// steward_http1_requests_total, steward_http1_connections_total and
// steward_http1_handoffs_total by reason, over TLS as over plain TCP.
// When net/http serves the listener alone (HTTP1Server "net/http")
// nothing is registered.
// A registry holds one listener's counters at a time: pass it to the
// listener the service is served on, not to a side one (pprof); another
// Serve with it, while the first runs, returns an error.
func WithMetrics(reg prometheus.Registerer) ServeOption {
	return func(o *serveOptions) { o.metrics = reg }
}

// serve is Serve and ServeTLS. Over TLS, h1server completes each
// connection's handshake before its first request, as net/http does.
func serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, drain time.Duration, limits Limits, opts []ServeOption) error {
	if err := limits.Validate(); err != nil {
		return err
	}
	limits = limits.withDefaults()
	var o serveOptions
	for _, opt := range opts {
		opt(&o)
	}
	st := &serving{stopping: make(chan struct{}), holds: newHolds(limits.WatchesPerClient), trusted: limits.TrustedProxies}
	srv := &http.Server{
		Handler:           refuseAmbiguousFraming(withTLSState(h)),
		ReadHeaderTimeout: limits.ReadHeaderTimeout,
		IdleTimeout:       limits.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// Every request reaches the handler, OPTIONS * included, so
		// that the handler counts a connection's requests as they came
		// (refuseAmbiguousFraming).
		DisableGeneralOptionsHandler: true,
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.Background(), servingKey, st)
		},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey, c)
		},
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(st.stopping) })

	errc := make(chan error, 2)
	var front *h1server.Server
	if limits.HTTP1Server == HTTP1Steward {
		// h1server takes the connections and hands net/http, through
		// fallback, each one whose next request it does not take.
		fallback := newFallbackListener(ln.Addr())
		front = &h1server.Server{Handler: srv.Handler, Fallback: fallback.push,
			ReadHeaderTimeout: limits.ReadHeaderTimeout, IdleTimeout: limits.IdleTimeout,
			BaseContext: srv.BaseContext(ln),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				return srv.ConnContext(context.WithValue(ctx, http.ServerContextKey, srv), c)
			},
			Logger: logger}
		if o.metrics != nil {
			c := newH1Collector(front)
			if err := o.metrics.Register(c); err != nil {
				return fmt.Errorf("serve %s: register the HTTP/1.1 server's metrics: %w", ln.Addr(), err)
			}
			defer o.metrics.Unregister(c)
		}
		go func() { errc <- srv.Serve(framedListener{fallback}) }()
		go func() { errc <- front.Serve(ln) }()
	} else {
		go func() { errc <- srv.Serve(framedListener{ln}) }()
	}

	select {
	case err := <-errc:
		if front != nil {
			_ = front.Close()
		}
		_ = srv.Close()
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("shutting down", "addr", ln.Addr().String(), "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	var frontErr chan error
	if front != nil {
		frontErr = make(chan error, 1)
		go func() { frontErr <- front.Shutdown(sctx) }()
	}
	err := srv.Shutdown(sctx)
	if frontErr != nil {
		if ferr := <-frontErr; err == nil {
			err = ferr
		}
	}
	if err == nil {
		// Streams that took their connections over are not the
		// server's any more; they end on Stopping, within their write
		// timeout, and give their slots back.
		err = st.holds.wait(sctx)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("drain timed out; closing remaining connections", "addr", ln.Addr().String())
		err = srv.Close()
		if front != nil {
			_ = front.Close()
		}
	}
	serving := 1
	if front != nil {
		serving = 2
	}
	for range serving {
		if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	if err != nil {
		return fmt.Errorf("shutdown %s: %w", ln.Addr(), err)
	}
	return nil
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, logger *slog.Logger, drain time.Duration, limits Limits, opts ...ServeOption) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	logger.Info("listening", "addr", ln.Addr().String())
	return Serve(ctx, ln, h, logger, drain, limits, opts...)
}
