// Package proxy is the gateway's request path: it matches a request to a
// route, applies the route's rate limit and the service's circuit breaker,
// and proxies it to an instance the balancer picks, retrying elsewhere
// within a retry budget. A request is proxied by forward (forward.go);
// a protocol upgrade (WebSocket) by httputil.ReverseProxy, which takes
// the connection over.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"

	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/gateway/route"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/sdk/h1client"
)

// Pools gives the balancer pool of a service (discovery.Discovery), and
// says whether the registry lists a service at all.
type Pools interface {
	Pool(ctx context.Context, service string) *balancer.Pool
	Known(ctx context.Context, service string) bool
}

// Config configures a Proxy.
type Config struct {
	Pools Pools
	// ID names this gateway in Via headers; a request that already
	// passed through it is a loop.
	ID string
	// Zone is preferred for instances unless the request names one in
	// X-Steward-Zone.
	Zone string
	// MaxRequests and MaxPending are each service's circuit breaker:
	// requests in flight, and requests waiting for an upstream's
	// response headers. 0 means 1024 each.
	MaxRequests int64
	MaxPending  int64
	// RetryBudget is the share of a service's active requests that may
	// be retries at once; MinRetries are always allowed. 0 means 0.2 and
	// 3, as Linkerd's budget and Envoy's retry_budget.
	RetryBudget float64
	MinRetries  int64
	// MaxReplayBody bounds the request body buffered so a retry can
	// resend it. 0 means 64 KiB.
	MaxReplayBody int64
	// Transport is the upstream transport; nil is h1client's over a
	// fallback from NewTransport (see NewUpstreamTransport).
	Transport  http.RoundTripper
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Proxy is the gateway's handler for proxied requests.
type Proxy struct {
	cfg       Config
	routes    atomic.Pointer[route.Table]
	rp        *httputil.ReverseProxy
	upstream  http.RoundTripper
	via       string
	viaValues []string // {via}, shared
	services  sync.Map // service name → *serviceState
	builtin   sync.Map // service name → *route.Route for /s/{service}
	limits    *limiters
	m         *metrics
	buffers   bufferPool
	// reference sends every request through ReverseProxy, as before
	// forward: the reference test holds forward to it.
	reference bool
}

// New returns a proxy with no configured routes (the built-in ones work).
func New(cfg Config) *Proxy {
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 1024
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	if cfg.RetryBudget <= 0 {
		cfg.RetryBudget = 0.2
	}
	if cfg.MinRetries <= 0 {
		cfg.MinRetries = 3
	}
	if cfg.MaxReplayBody <= 0 {
		cfg.MaxReplayBody = 64 << 10
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{cfg: cfg, via: "1.1 " + cfg.ID, limits: newLimiters(), m: newMetrics(cfg.Registerer)}
	p.viaValues = []string{p.via}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(newUpstreamCollector(p))
	}
	p.upstream = cfg.Transport
	if p.upstream == nil {
		p.upstream = NewUpstreamTransport(NewTransport())
	}
	p.routes.Store(route.NewTable(nil))
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    (*balancing)(p),
		ErrorHandler: p.proxyError,
		ErrorLog:     slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		BufferPool:   &p.buffers,
	}
	return p
}

// NewUpstreamTransport is the gateway's upstream transport: plain HTTP/1.1
// on h1client's pools, and the rest (HTTPS instances, WebSocket upgrades,
// large or chunked request bodies) on fallback, whose TLSClientConfig is
// what instances that serve HTTPS are verified with.
func NewUpstreamTransport(fallback *http.Transport) *h1client.Transport {
	return h1client.New(h1client.Options{Fallback: fallback, MaxIdlePerHost: fallback.MaxIdleConnsPerHost,
		IdleTimeout: fallback.IdleConnTimeout, DialTimeout: dialTimeout, KeepAlive: tcpKeepAlive})
}

// Connecting to an instance: how long it may take, and the TCP keep-alive
// period of the connection; both transports dial the same.
const (
	dialTimeout  = 5 * time.Second
	tcpKeepAlive = 30 * time.Second
)

// NewTransport is net/http's transport tuned for a proxy: keep-alive pools
// per upstream sized for a proxy, not for a client.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // never through an environment proxy
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		// A proxy passes the client's Accept-Encoding on and the answer
		// as it comes: no gzip asked for and unzipped on the client's
		// behalf, as h1client does not either.
		DisableCompression: true,
	}
}

// SetRoutes replaces the configured routes atomically.
func (p *Proxy) SetRoutes(t *route.Table) { p.routes.Store(t) }

// exchange is what forward, the rewrite and the transport know of a
// request. It is also the context of the request sent upstream: it wraps
// the client's request context and answers Value(exchangeKey{}) with
// itself, which carries it to the rewrite, the transport and the error
// handler without a context.WithValue per request. It holds the request's
// recorder and the answer's tracked body too, one allocation for the three.
type exchange struct {
	context.Context // the client's request context, once routed

	rec      recorder
	tracked  trackedBody
	route    *route.Route
	svc      *serviceState
	pool     *balancer.Pool
	version  string
	hashKey  string
	zone     string
	retries  int
	perTry   time.Duration
	replay   []byte // the buffered body, when a retry may resend it
	canRetry bool   // idempotent, or carries an Idempotency-Key
	body     *bodyReader
	upstream *balancer.Endpoint
	tries    int
	budgeted int64  // retries taken from the budget
	path     string // the client's path (the upstream's is rewritten), for error lines
	forwardState
}

type exchangeKey struct{}

// Value answers exchangeKey{} with the exchange, anything else from the
// client's context.
func (x *exchange) Value(key any) any {
	if _, ok := key.(exchangeKey); ok {
		return x
	}
	return x.Context.Value(key)
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	x := &exchange{rec: recorder{ResponseWriter: w}}
	rt := p.serve(x, r)
	name, svc := "none", "none"
	if rt != nil {
		name, svc = rt.Name, rt.Service
	}
	p.m.observe(name, svc, x.rec.status(), time.Since(start))
}

func (p *Proxy) serve(x *exchange, r *http.Request) *route.Route {
	w := &x.rec
	if p.looped(r) {
		p.fail(w, r, fault.New(fault.LoopDetected, "this request already passed through gateway %s", p.cfg.ID))
		return nil
	}
	rt := p.resolve(r)
	if rt == nil {
		p.fail(w, r, fault.New(fault.NotFound, "no route for %s", r.URL.Path))
		return nil
	}
	if rl := rt.RateLimit; rl != nil && !p.limits.allow(rt, r) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(1/rl.RPS))))
		p.fail(w, r, fault.New(fault.TooManyRequests, "route %s allows %g requests a second", rt.Name, rl.RPS))
		return rt
	}
	if longLived(r, rt) {
		// A stream or a blocking query holds a goroutine and two
		// connections for minutes: one client gets as many as any
		// Steward server gives it (web.Hold).
		release, err := web.Hold(r)
		if err != nil {
			p.fail(w, r, err)
			return rt
		}
		defer release()
	}
	svc := p.service(rt.Service)
	if !svc.admit(p.cfg.MaxRequests) {
		svc.release()
		p.m.overflow(rt.Service, "requests")
		p.fail(w, r, fault.New(fault.Unavailable, "service %s has %d requests in flight, the most this gateway sends it", rt.Service, p.cfg.MaxRequests))
		return rt
	}
	defer svc.release()
	pool := p.cfg.Pools.Pool(r.Context(), rt.Service)
	if pool.Len() == 0 {
		p.fail(w, r, fault.New(fault.Unavailable, "service %s has no passing instance", rt.Service))
		return rt
	}
	x.route, x.svc, x.pool, x.version = rt, svc, pool, pickVersion(rt.Split, pool)
	x.path = r.URL.Path
	x.zone, x.canRetry = r.Header.Get("X-Steward-Zone"), idempotent(r)
	if x.zone == "" {
		x.zone = p.cfg.Zone
	}
	if lb := rt.LoadBalancer; lb != nil && lb.Policy == route.RingHash {
		x.hashKey = hashKey(r, lb)
	}
	if rt.Retry != nil {
		x.retries, x.perTry = rt.Retry.Attempts, rt.Retry.PerTryTimeout.Std()
	}
	if r.Body != nil && r.Body != http.NoBody {
		x.body = &bodyReader{ReadCloser: r.Body}
		r.Body = x.body
	}
	if x.retries > 0 {
		var err error
		if x.replay, err = p.bufferBody(r); err != nil {
			p.fail(w, r, fault.Wrap(fault.Invalid, err, "the request body is malformed: "+err.Error()))
			return rt
		}
	}
	x.Context = r.Context()
	ctx := context.Context(x)
	if rt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rt.Timeout.Std())
		defer cancel()
	}
	if upgrading(r) || p.reference {
		p.rp.ServeHTTP(w, r.WithContext(ctx))
	} else {
		p.forward(w, r, x, ctx)
	}
	return rt
}

// upgrading reports whether r asks to switch protocols (WebSocket), as
// ReverseProxy, which carries those, tells.
func upgrading(r *http.Request) bool {
	return httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade") && r.Header.Get("Upgrade") != ""
}

// longLived reports whether r is, by its form, a request that lasts:
// an event stream, a protocol upgrade (WebSocket), or a blocking query or
// waiting campaign on Steward's own API.
func longLived(r *http.Request, rt *route.Route) bool {
	if r.Header.Get("Upgrade") != "" || strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		return true
	}
	q := r.URL.RawQuery
	return (strings.Contains(q, "index=") || strings.Contains(q, "wait=")) && slices.Contains(controlRoutes, rt)
}

// looped reports whether r already passed through this gateway.
func (p *Proxy) looped(r *http.Request) bool {
	for _, v := range r.Header.Values("Via") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(part) == p.via {
				return true
			}
		}
	}
	return false
}

// bufferBody reads a body small enough to resend into memory; nil when
// the body is too large (the request is then not retried once sent). A
// body that cannot be read (bad chunking) is the client's error.
func (p *Proxy) bufferBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return []byte{}, nil
	}
	if r.ContentLength > p.cfg.MaxReplayBody {
		return nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxReplayBody+1))
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > p.cfg.MaxReplayBody {
		// Too large after all: send what was read and the rest.
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	return buf, nil
}

// bodyReader remembers a failure reading the client's body, so that it
// is answered as the client's error (400), not the upstream's (502).
type bodyReader struct {
	io.ReadCloser
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// idempotent: a method RFC 9110 calls idempotent, or a request the client
// made safe to repeat with an Idempotency-Key.
func idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// pickVersion draws the version a split sends this request to, among the
// versions the pool has; "" when there is no split or none is present.
func pickVersion(split []route.Split, pool *balancer.Pool) string {
	if len(split) == 0 {
		return ""
	}
	total := 0
	for _, s := range split {
		if pool.HasVersion(s.Version) {
			total += s.Weight
		}
	}
	if total == 0 {
		return ""
	}
	n := rand.IntN(total)
	for _, s := range split {
		if !pool.HasVersion(s.Version) {
			continue
		}
		if n < s.Weight {
			return s.Version
		}
		n -= s.Weight
	}
	return ""
}

func hashKey(r *http.Request, lb *route.LoadBalancer) string {
	if lb.HashHeader != "" {
		return r.Header.Get(lb.HashHeader)
	}
	if c, err := r.Cookie(lb.HashCookie); err == nil {
		return c.Value
	}
	return ""
}

// rewrite builds the outbound request; the transport fills in the
// instance: its address and its scheme (https when it serves TLS).
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	x := pr.In.Context().Value(exchangeKey{}).(*exchange)
	pr.SetXForwarded()
	p.addressUpstream(x.route, pr.In.URL, pr.Out.URL, pr.Out.Header)
}

// addressUpstream points u, the outbound request's URL, at the route's
// service (the transport fills in the instance) and its path upstream,
// and gives h, the outbound header, the gateway's Via and not the
// client's X-Steward-Zone: what forward and rewrite both send.
func (p *Proxy) addressUpstream(rt *route.Route, in, u *url.URL, h http.Header) {
	u.Scheme, u.Host = "http", rt.Service
	// The path goes upstream escaped as the client sent it: a%2Fb stays
	// a%2Fb and a%252Fb stays a%252Fb, so the upstream decodes it once,
	// as if it were asked directly. The route's prefix is cut from the
	// escaped path as from the decoded one; where the client escaped the
	// prefix itself the two disagree, EscapedPath ignores RawPath and
	// Path goes re-escaped (the same name once decoded).
	u.Path = rt.UpstreamPath(in.Path)
	u.RawPath = rt.UpstreamPath(in.EscapedPath())
	if prior := h["Via"]; len(prior) > 0 {
		h["Via"] = append(prior, p.via)
	} else {
		// Shared by every request: its length is its capacity, so
		// that an append copies it.
		h["Via"] = p.viaValues
	}
	delete(h, "X-Steward-Zone")
}

// proxyError answers a failed exchange as problem+json.
func (p *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var f error
	x, _ := r.Context().Value(exchangeKey{}).(*exchange)
	switch {
	case x != nil && x.body != nil && x.body.err != nil:
		f = fault.Wrap(fault.Invalid, x.body.err, "the request body is malformed: "+x.body.err.Error())
	case errors.Is(err, errNoInstance):
		f = fault.Wrap(fault.Unavailable, err, "no instance of the service is available")
	case errors.Is(err, errPending):
		f = fault.Wrap(fault.Unavailable, err, "too many requests are waiting for this service's instances")
	case errors.Is(err, context.DeadlineExceeded):
		f = fault.Wrap(fault.Timeout, err, "the upstream did not answer in time")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away: nobody reads an answer, but the
		// metrics say so (nginx's 499), not 200.
		if rec, ok := w.(*recorder); ok {
			rec.code = web.StatusClientClosed
		}
		return
	default:
		f = fault.Wrap(fault.BadGateway, err, "the upstream failed: "+err.Error())
	}
	if x != nil && x.path != "" && x.path != r.URL.Path {
		// r is the request sent upstream; the line names the path the
		// client asked for, as every other gateway line does.
		in, u := *r, *r.URL
		u.Path, u.RawPath = x.path, ""
		in.URL = &u
		r = &in
	}
	p.fail(w, r, f)
}

// fail answers err. The proxied path runs outside web's middleware (an
// access log line per proxied request is the upstream's job), so the
// request gets its ID here, only on this path: the client's X-Request-Id,
// or a new one, in the log line, the problem and the answer's header.
func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, err error) {
	web.Error(w, web.WithRequestID(w, r), p.cfg.Logger, err)
}

// serviceState is a service's circuit breaker and retry budget.
type serviceState struct {
	served   atomic.Int64 // requests admitted, ever
	active   atomic.Int64 // admitted requests
	pending  atomic.Int64 // attempts waiting for response headers
	retrying atomic.Int64 // retries in flight
	versions versionSet   // attempts by instance version
}

func (p *Proxy) service(name string) *serviceState {
	if s, ok := p.services.Load(name); ok {
		return s.(*serviceState)
	}
	s, _ := p.services.LoadOrStore(name, &serviceState{})
	return s.(*serviceState)
}

// admit counts a request in; the caller releases it either way.
func (s *serviceState) admit(limit int64) bool {
	s.served.Add(1)
	return s.active.Add(1) <= limit
}
func (s *serviceState) release() { s.active.Add(-1) }

// retryAllowed takes a retry from the budget if one is left.
func (s *serviceState) retryAllowed(budget float64, minRetries int64) bool {
	allowed := max(minRetries, int64(budget*float64(s.active.Load())))
	if s.retrying.Add(1) > allowed {
		s.retrying.Add(-1)
		return false
	}
	return true
}

// recorder remembers the final status written (not a 103 Early Hints
// before it); Unwrap lets a ResponseController reach the connection for
// flushes and upgrades.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// bufferPool lends forward and ReverseProxy their 32 KiB copy buffers
// instead of a new one per response. It pools pointers to the arrays: a
// slice put in a sync.Pool would cost an allocation for its header each
// time.
type bufferPool struct{ pool sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[copyBufferSize]byte); ok {
		return buf[:]
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == copyBufferSize {
		b.pool.Put((*[copyBufferSize]byte)(buf))
	}
}

// Load is a service's load as this gateway sees it, for the scaler.
type Load struct {
	Served   int64 // requests admitted since start
	InFlight int64
}

// Loads reports every service this gateway has sent requests to.
func (p *Proxy) Loads() map[string]Load {
	out := map[string]Load{}
	p.services.Range(func(k, v any) bool {
		s := v.(*serviceState)
		out[k.(string)] = Load{Served: s.served.Load(), InFlight: s.active.Load()}
		return true
	})
	return out
}
