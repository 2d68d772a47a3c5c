package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/fault"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceparentKey
	servingKey
	connKey
)

// RequestIDHeader carries the request ID in and out.
const RequestIDHeader = "X-Request-Id"

// RequestID returns the request's ID, or "" outside a request.
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// Traceparent returns the request's W3C traceparent header if it was well
// formed, so that outgoing calls (the gateway, drivers) can pass it on.
func Traceparent(ctx context.Context) string {
	s, _ := ctx.Value(traceparentKey).(string)
	return s
}

// withRequestID gives every request an ID (WithRequestID) before the
// handlers and the request log see it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, WithRequestID(w, r))
	})
}

// WithRequestID returns r with a request ID in its context, and sets it on
// the answer's X-Request-Id: the client's X-Request-Id when it is short and
// printable, else a new one. A request that has one already is returned as
// it is. Every handler of NewHandler gets it from the middleware; a handler
// outside that middleware (the gateway's proxied path) calls it before it
// logs about a request, so that the line carries the ID the client sees.
func WithRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	if RequestID(r.Context()) != "" {
		return r
	}
	id := r.Header.Get(RequestIDHeader)
	if !validRequestID(id) {
		id = newRequestID()
	}
	w.Header().Set(RequestIDHeader, id)
	return r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// withTraceparent keeps a well-formed W3C traceparent (version 00) in the
// context; a malformed one is dropped, as the Trace Context spec asks.
func withTraceparent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tp := r.Header.Get("Traceparent"); validTraceparent(tp) {
			r = r.WithContext(context.WithValue(r.Context(), traceparentKey, tp))
		}
		next.ServeHTTP(w, r)
	})
}

// validTraceparent checks "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>"
// with non-zero IDs.
func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] != "00" {
		return false
	}
	traceID, parentID, flags := tp[3:35], tp[36:52], tp[53:55]
	for _, part := range []string{traceID, parentID, flags} {
		if _, err := hex.DecodeString(part); err != nil {
			return false
		}
		for i := 0; i < len(part); i++ {
			if part[i] >= 'A' && part[i] <= 'F' {
				return false // the spec requires lower case
			}
		}
	}
	return traceID != "00000000000000000000000000000000" && parentID != "0000000000000000"
}

// traceID returns the trace-id part of a valid traceparent, for logs.
func traceID(ctx context.Context) string {
	if tp := Traceparent(ctx); tp != "" {
		return tp[3:35]
	}
	return ""
}

// metrics are the per-handler Prometheus series; each handler owns its own
// so that tests and the all-in-one binary never share global state.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, service string) *metrics {
	labels := prometheus.Labels{"service": service}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steward_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
			ConstLabels: labels,
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steward_http_request_duration_seconds", Help: "HTTP request latency by route pattern, method and status.",
			ConstLabels: labels,
			Buckets:     []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "method", "status"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steward_http_requests_in_flight", Help: "HTTP requests being served now, streams included.",
			ConstLabels: labels,
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

// observe logs and counts each request once it is done, labelled by the chi
// route pattern (never the raw path, which would explode cardinality).
func observe(logger *slog.Logger, m *metrics, quietRoutes []string) func(http.Handler) http.Handler {
	quiet := map[string]bool{}
	for _, r := range quietRoutes {
		quiet[r] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			m.inFlight.Inc()
			defer func() {
				m.inFlight.Dec()
				elapsed := time.Since(start)
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				code := strconv.Itoa(status)
				m.requests.WithLabelValues(route, r.Method, code).Inc()
				m.duration.WithLabelValues(route, r.Method, code).Observe(elapsed.Seconds())
				level := LogLevel(status)
				switch {
				case quiet[route] && status < 400:
					level = slog.LevelDebug
				case route == readyRoute && status == http.StatusServiceUnavailable:
					// A replica that is starting or catching up says so
					// to every probe: expected, and not an operator's
					// concern until it lasts (the qlog logs why).
					level = slog.LevelInfo
				}
				logger.LogAttrs(r.Context(), level, "request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Int("bytes", ww.BytesWritten()),
					slog.Duration("duration", elapsed),
					slog.String("remote", r.RemoteAddr),
					slog.String("request_id", RequestID(r.Context())),
					slog.String("trace_id", traceID(r.Context())),
				)
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// recoverPanics turns a handler panic into a 500 problem+json and a logged
// stack, keeping the process alive. http.ErrAbortHandler is re-raised since
// it is net/http's own way to abort a response.
func recoverPanics(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				logger.ErrorContext(r.Context(), "handler panicked",
					"panic", fmt.Sprint(rec), "stack", string(debug.Stack()),
					"method", r.Method, "path", r.URL.Path, "request_id", RequestID(r.Context()))
				if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
					return // headers are out; the best we can do is end the response
				}
				WriteProblem(w, ProblemFor(r, fault.Wrap(fault.Internal, fmt.Errorf("panic: %v", rec), "panic")))
			}()
			next.ServeHTTP(w, r)
		})
	}
}
