package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/registry"
)

// plane is a real control plane for a gateway under test: embedded NATS,
// a registry and a config service, each served on loopback.
type plane struct {
	registry string // base URL
	config   string
	reg      sdk.Services
	nats     *qlogtest.Server
}

func startPlane(t testing.TB) *plane {
	t.Helper()
	srv := qlogtest.StartServer(t)
	quiet := slog.New(slog.DiscardHandler)
	p := &plane{nats: srv}
	p.registry = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 16, PresenceInterval: 200 * time.Millisecond, Replicated: service.Replicated{ReplicaID: "registry-0", StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
		return registry.Serve(ctx, s, ln, srv.Connect(t), nil, quiet)
	})
	p.config = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 100_000, RegistryURL: p.registry, Process: service.Process{ShutdownTimeout: time.Second}}}
		return config.Serve(ctx, s, ln, srv.Connect(t), nil, quiet)
	})
	p.reg = registryClient(t, p.registry)
	return p
}

// registryClient is the Go SDK's client of the registry replicas at urls
// (comma-separated).
func registryClient(t testing.TB, urls string) sdk.Services {
	t.Helper()
	c, err := sdk.New(urls)
	if err != nil {
		t.Fatal(err)
	}
	return c.Services()
}

// gw is a gateway under test.
type gw struct {
	url string
	id  string
}

func startGateway(t testing.TB, p *plane, tweak ...func(*gateway.Settings)) *gw {
	t.Helper()
	s := gateway.Settings{ID: "gateway-test", RegistryURL: p.registry, ConfigURL: p.config,
		MaxRequests: 1024, MaxPending: 1024, EjectAfter: 5, BaseEjection: 30 * time.Second, MaxEjectedShare: 0.5,
		Process: service.Process{ShutdownTimeout: time.Second}}
	for _, f := range tweak {
		f(&s)
	}
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return gateway.Serve(ctx, s, ln, slog.New(slog.DiscardHandler))
	})
	return &gw{url: url, id: s.ID}
}

// upstream is a real HTTP server registered in the registry as an
// instance of a service. It counts what it served.
type upstream struct {
	id      string
	srv     *httptest.Server
	hits    atomic.Int64
	fail    atomic.Bool  // answer 500
	delay   atomic.Int64 // nanoseconds to wait before answering
	mu      sync.Mutex
	posts   map[string]int // POST bodies seen
	handler http.Handler   // extra routes (SSE, WebSocket)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u.handler != nil && strings.HasPrefix(r.URL.Path, "/special/") {
		u.handler.ServeHTTP(w, r)
		return
	}
	u.hits.Add(1)
	if d := time.Duration(u.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	if r.Method == http.MethodPost {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.posts[string(b)]++
		u.mu.Unlock()
	}
	if u.fail.Load() {
		http.Error(w, "broken", http.StatusInternalServerError)
		return
	}
	w.Header().Set("X-Instance", u.id)
	fmt.Fprintf(w, "%s %s %s", u.id, r.URL.Path, r.Header.Get("X-Forwarded-For"))
}

// startUpstream starts an instance and registers it.
func startUpstream(t testing.TB, p *plane, service, id string, reg api.Registration) *upstream {
	t.Helper()
	u := &upstream{id: id, posts: map[string]int{}}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	host, port, _ := net.SplitHostPort(u.srv.Listener.Addr().String())
	reg.Address = host
	reg.Port, _ = strconv.Atoi(port)
	if _, err := p.reg.Register(context.Background(), service, id, reg); err != nil {
		t.Fatal(err)
	}
	return u
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// get fetches url and returns status, body and the X-Instance header.
func get(t testing.TB, url string, hdr ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header.Get("X-Instance")
}

// putRoute stores a route document in the config service.
func putRoute(t testing.TB, p *plane, name, doc string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, p.config+"/v1/kv/steward/gateway/routes/"+name, strings.NewReader(doc))
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("PUT route %s = %d: %s", name, res.StatusCode, b)
	}
}
