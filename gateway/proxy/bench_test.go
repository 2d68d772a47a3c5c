package proxy_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/gateway/proxy"
)

// pools is a fixed set of pools, one per service.
type pools map[string]*balancer.Pool

func (p pools) Pool(_ context.Context, service string) *balancer.Pool { return p[service] }

func (p pools) Known(_ context.Context, service string) bool { _, ok := p[service]; return ok }

// discard is a ResponseWriter that keeps nothing but the header map,
// cleared between requests, so that the benchmark counts the proxy's
// allocations and not a recorder's.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// upstream starts the benchmarks' upstream: net/http answering 13 bytes.
func upstream(b *testing.B) (host string, port int) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		_, _ = w.Write([]byte("hello, world\n"))
	}))
	b.Cleanup(up.Close)
	h, p, _ := net.SplitHostPort(up.Listener.Addr().String())
	port, _ = strconv.Atoi(p)
	return h, port
}

// serve calls h with the same GET until the benchmark ends.
func serve(b *testing.B, h http.Handler, url string) {
	req := httptest.NewRequest(http.MethodGet, url, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(req.Header) // the proxy edits the request's header, as a handler may
		clear(w.h)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkServeHTTP is the gateway's request path on the built-in route
// (/s/{service}/: least-request, metrics, retries in the budget) to a real
// upstream over loopback, as in production but for the client side: the
// handler is called directly.
func BenchmarkServeHTTP(b *testing.B) {
	host, port := upstream(b)
	pool := balancer.NewPool(balancer.Options{})
	pool.Update([]balancer.Instance{{ID: "up-0", Address: host, Port: port}})
	px := proxy.New(proxy.Config{Pools: pools{"bench": pool}, ID: "gateway-bench", Registerer: prometheus.NewRegistry()})
	serve(b, px, "http://gateway/s/bench/hello")
}

// BenchmarkFloor is what the gateway builds on, alone: a ReverseProxy
// whose Rewrite sets the URL and X-Forwarded-*, on the gateway's transport
// and buffer pool size. ServeHTTP's allocations less these are the
// gateway's own.
func BenchmarkFloor(b *testing.B) {
	host, port := upstream(b)
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(host, strconv.Itoa(port))}
	rp := &httputil.ReverseProxy{Transport: proxy.NewTransport(), BufferPool: &buffers{},
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() }}
	serve(b, rp, "http://gateway/hello")
}

type buffers struct{ pool sync.Pool }

func (p *buffers) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *buffers) Put(b []byte) { p.pool.Put(&b) }
