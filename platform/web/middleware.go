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
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/fault"
)

type ctxKey int

const (
	requestKey ctxKey = iota
	servingKey
	connKey
	handoffKey
)

// RequestIDHeader carries the request ID in and out.
const RequestIDHeader = "X-Request-Id"

// requestContext is a request's context carrying its ID and traceparent.
// It is a context.Context itself, so that one allocation holds the context
// node, the ID's bytes and the X-Request-Id header's value: the middleware
// runs for every request, and each allocation there is paid by all of them.
// Everything else a context does is the parent's (Deadline, Done, Err and
// every other key's Value come from the embedded Context).
type requestContext struct {
	context.Context
	id          string
	traceparent string
	header      [1]string // the answer's X-Request-Id value
	buf         [requestIDLen]byte
}

func (c *requestContext) Value(key any) any {
	if key == requestKey {
		return c
	}
	return c.Context.Value(key)
}

func (c *requestContext) String() string {
	return fmt.Sprintf("%v.WithRequestID(%s)", c.Context, c.id)
}

// requestInfo returns the request's requestContext, or nil outside a
// request.
func requestInfo(ctx context.Context) *requestContext {
	c, _ := ctx.Value(requestKey).(*requestContext)
	return c
}

// RequestID returns the request's ID, or "" outside a request.
func RequestID(ctx context.Context) string {
	if c := requestInfo(ctx); c != nil {
		return c.id
	}
	return ""
}

// Traceparent returns the request's W3C traceparent header if it was well
// formed, so that outgoing calls (the gateway, drivers) can pass it on.
func Traceparent(ctx context.Context) string {
	if c := requestInfo(ctx); c != nil {
		return c.traceparent
	}
	return ""
}

// withRequestContext gives every request an ID (WithRequestID) and keeps a
// well-formed W3C traceparent (version 00), before the handlers and the
// request log see them; a malformed traceparent is dropped, as the Trace
// Context spec asks. Both go into the context at once, so that the request
// is copied once (http.Request.WithContext) instead of once for each.
func withRequestContext(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp := r.Header.Get("Traceparent")
		if !validTraceparent(tp) {
			tp = ""
		}
		if outer := requestInfo(r.Context()); outer != nil {
			// An ID already (a handler of NewHandler's inside another):
			// keep it, and take this request's traceparent if it is valid.
			if tp != "" {
				r = r.WithContext(&requestContext{Context: r.Context(), id: outer.id, traceparent: tp})
			}
			next.ServeHTTP(w, r)
			return
		}
		c := newRequestContext(w, r)
		c.traceparent = tp
		next.ServeHTTP(w, r.WithContext(c))
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
	return r.WithContext(newRequestContext(w, r))
}

// newRequestContext makes r's requestContext with its ID, and sets the ID
// on the answer's X-Request-Id.
func newRequestContext(w http.ResponseWriter, r *http.Request) *requestContext {
	c := &requestContext{Context: r.Context()}
	c.id = r.Header.Get(RequestIDHeader)
	if !validRequestID(c.id) {
		c.id = c.newRequestID()
	}
	c.header[0] = c.id
	// RequestIDHeader is in canonical form, so this is Header().Set
	// without the allocation of a new []string.
	w.Header()[RequestIDHeader] = c.header[:]
	return c
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

// requestIDLen is the length of a request ID the server makes: 32 hex
// digits, as it was when they were 16 random bytes.
const requestIDLen = 32

// requestIDPrefix is this process's random half of every request ID it
// makes, and requestIDCount the other half: the IDs are unique across
// processes in practice (two processes share a prefix with probability
// 2^-64) and within one by the counter. They are not unguessable and not
// in random order (consecutive requests differ in the last digits): a
// request ID only names a request in logs and answers, it grants nothing.
// This replaces a crypto/rand read per request.
var (
	requestIDPrefix [requestIDLen / 2]byte
	requestIDCount  atomic.Uint64
)

func init() {
	var b [requestIDLen / 4]byte
	_, _ = rand.Read(b[:])
	hex.Encode(requestIDPrefix[:], b[:])
}

// newRequestID formats a new request ID into c.buf and returns it as a
// string sharing c.buf's bytes, which are never written again.
func (c *requestContext) newRequestID() string {
	const digits = "0123456789abcdef"
	copy(c.buf[:], requestIDPrefix[:])
	n := requestIDCount.Add(1)
	for i := requestIDLen - 1; i >= len(requestIDPrefix); i-- {
		c.buf[i] = digits[n&0xf]
		n >>= 4
	}
	return unsafe.String(&c.buf[0], len(c.buf))
}

// validTraceparent checks "00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>"
// with non-zero IDs; the spec requires lower-case hex.
func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] != "00" {
		return false
	}
	traceID, parentID, flags := tp[3:35], tp[36:52], tp[53:55]
	return lowerHex(traceID) && lowerHex(parentID) && lowerHex(flags) &&
		traceID != "00000000000000000000000000000000" && parentID != "0000000000000000"
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// metrics are the per-handler Prometheus series; each handler owns its own
// so that tests and the all-in-one binary never share global state.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	// series caches the children of requests and duration by route,
	// method and status, so that WithLabelValues (hashing three labels,
	// formatting the status) runs once per series instead of twice per
	// request. Routes are chi patterns and statuses a few, so the cache
	// holds a handful of entries; maxCachedSeries bounds it all the same,
	// since the method is the client's: past it, lookups go to the vectors
	// as before. The vectors' children are never deleted, so a cached one
	// is always the one WithLabelValues would return.
	mu     sync.RWMutex
	series map[seriesKey]series
}

type seriesKey struct {
	route, method string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

const maxCachedSeries = 1024

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
			Name: "steward_http_requests_in_flight", Help: "HTTP requests being served now, streams included; an HTTP/1 watch stream counts until it takes its connection over from the server (platform/sse).",
			ConstLabels: labels,
		}),
		series: map[seriesKey]series{},
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m
}

// of returns the series of a request to route with method answered status.
func (m *metrics) of(route, method string, status int) series {
	k := seriesKey{route: route, method: method, status: status}
	m.mu.RLock()
	s, ok := m.series[k]
	m.mu.RUnlock()
	if ok {
		return s
	}
	code := strconv.Itoa(status)
	s = series{m.requests.WithLabelValues(route, method, code), m.duration.WithLabelValues(route, method, code)}
	m.mu.Lock()
	if len(m.series) < maxCachedSeries {
		m.series[k] = s
	}
	m.mu.Unlock()
	return s
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
				if rc := chi.RouteContext(r.Context()); rc != nil {
					if p := rc.RoutePattern(); p != "" {
						route = p
					}
				}
				s := m.of(route, r.Method, status)
				s.requests.Inc()
				s.duration.Observe(elapsed.Seconds())
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
				var id, trace string
				if c := requestInfo(r.Context()); c != nil {
					id, trace = c.id, c.traceparent
					if trace != "" {
						trace = trace[3:35]
					}
				}
				logger.LogAttrs(r.Context(), level, "request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("route", route),
					slog.Int("status", status),
					slog.Int("bytes", ww.BytesWritten()),
					slog.Duration("duration", elapsed),
					slog.String("remote", r.RemoteAddr),
					slog.String("request_id", id),
					slog.String("trace_id", trace),
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
