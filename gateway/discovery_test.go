package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/registry"
)

// registryRequests is how many requests the registry was sent on routes
// whose pattern contains route ("" for all), whatever their answer.
func registryRequests(t *testing.T, p *plane, route string) float64 {
	t.Helper()
	_, body, _ := get(t, p.registry+"/metrics")
	var n float64
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "steward_http_requests_total{") && strings.Contains(line, `route="`+route) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			n += v
		}
	}
	return n
}

// TestUnknownServicesHoldNothing: thousands of requests for names the
// registry does not list are each answered 404 problem+json by the
// gateway alone: no registry watch or request per name, no goroutine, no
// metric series, nothing kept once they are answered.
func TestUnknownServicesHoldNothing(t *testing.T) {
	const names = 3000
	p := startPlane(t)
	startUpstream(t, p, "web", "web-1", api.Registration{})
	g := startGateway(t, p)
	if code, body, _ := get(t, g.url+"/s/web/x"); code != 200 {
		t.Fatalf("GET /s/web/x = %d %s", code, body)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	settle := func() int {
		client.CloseIdleConnections()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	const watchRoute = "/v1/services/{service}/watch"
	watches, watchRequests, requests := metric(t, g, "steward_gateway_registry_watches"), registryRequests(t, p, watchRoute), registryRequests(t, p, "")
	goroutines := settle()
	if watches != 1 {
		t.Fatalf("%v registry watches after one request for web, want 1", watches)
	}

	var wg sync.WaitGroup
	errs := make(chan string, names)
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				res, err := client.Get(fmt.Sprintf("%s/s/nobody-%d/x", g.url, i))
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/problem+json" {
					errs <- fmt.Sprintf("nobody-%d: %d %s", i, res.StatusCode, b)
				}
			}
		}()
	}
	for i := range names {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("a request for an unknown service: %s", e)
	}

	if got := metric(t, g, "steward_gateway_registry_watches"); got != watches {
		t.Errorf("registry watches: %v after %d unknown names, %v before", got, names, watches)
	}
	if got := registryRequests(t, p, watchRoute); got != watchRequests {
		t.Errorf("the registry was sent %v watch requests for unknown names", got-watchRequests)
	}
	// What the registry is sent meanwhile is the gateway's list reads
	// and the services' heartbeats, not a request per name.
	if got := registryRequests(t, p, ""); got-requests >= 100 {
		t.Errorf("the registry was sent %v requests while %d unknown names were asked for", got-requests, names)
	}
	// A few goroutines come and go (connections, timers); one per name
	// would be thousands.
	if got := settle(); got > goroutines+20 {
		t.Errorf("%d goroutines after %d unknown names, %d before", got, names, goroutines)
	}
	if _, body, _ := get(t, g.url+"/metrics"); strings.Contains(body, "nobody-") {
		t.Errorf("the gateway's metrics name unknown services")
	}
}

// TestServiceListFollowed: a service registered after the gateway started
// is routed once the registry lists it, and when its last instance leaves,
// its watch is stopped and it is a 404 again.
func TestServiceListFollowed(t *testing.T) {
	p := startPlane(t)
	g := startGateway(t, p)
	if code, _, _ := get(t, g.url+"/s/late/x"); code != 404 {
		t.Fatalf("GET /s/late/x before it registered = %d, want 404", code)
	}
	startUpstream(t, p, "late", "late-1", api.Registration{})
	webtest.WaitFor(t, 10*time.Second, "late routed", func() bool { c, _, _ := get(t, g.url+"/s/late/x"); return c == 200 })
	if got := metric(t, g, "steward_gateway_registry_watches"); got != 1 {
		t.Fatalf("%v registry watches, want 1 (late)", got)
	}
	if err := p.reg.Deregister(context.Background(), "late", "late-1"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "late unrouted", func() bool { c, _, _ := get(t, g.url+"/s/late/x"); return c == 404 })
	webtest.WaitFor(t, 10*time.Second, "late's watch stopped", func() bool {
		return metric(t, g, "steward_gateway_registry_watches") == 0
	})
}

// TestDiscoveryFailsOverBetweenRegistries: a gateway given every
// registry replica keeps learning instances, and keeps fronting the
// registry's API, when the replica it was following stops.
func TestDiscoveryFailsOverBetweenRegistries(t *testing.T) {
	srv := qlogtest.StartServer(t)
	quiet := slog.New(slog.DiscardHandler)
	voters := []string{"registry-0", "registry-1", "registry-2"}
	urls := make([]string, len(voters))
	stops := make([]func(), len(voters))
	for i, id := range voters {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		nc := srv.Connect(t)
		go func() {
			s := registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 16, PresenceInterval: 200 * time.Millisecond,
				Replicated: service.Replicated{ReplicaID: id, Voters: voters, StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
			done <- registry.Serve(ctx, s, ln, nc, nil, quiet)
		}()
		var once sync.Once
		stops[i] = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Serve %s: %v", id, err)
				}
			})
		}
		t.Cleanup(stops[i])
		urls[i] = "http://" + ln.Addr().String()
		webtest.WaitFor(t, 30*time.Second, id+" ready", func() bool {
			code, _, _ := get(t, urls[i]+"/readyz")
			return code == 200
		})
	}
	all := strings.Join(urls, ",")
	p := &plane{registry: all, reg: registryClient(t, all)}
	p.config = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 100_000, RegistryURL: all, Process: service.Process{ShutdownTimeout: time.Second}}}
		return config.Serve(ctx, s, ln, srv.Connect(t), nil, quiet)
	})
	startUpstream(t, p, "web", "web-1", api.Registration{})
	g := startGateway(t, p)
	if code, body, _ := get(t, g.url+"/s/web/x"); code != 200 {
		t.Fatalf("GET /s/web/x = %d %s", code, body)
	}

	stops[0]()
	// Registered through the gateway (the registry's API it fronts),
	// then learnt through the watch, now on another replica.
	u := &upstream{id: "web-2", posts: map[string]int{}}
	u.srv = httptest.NewServer(u)
	t.Cleanup(u.srv.Close)
	host, port, _ := net.SplitHostPort(u.srv.Listener.Addr().String())
	body := fmt.Sprintf(`{"address":%q,"port":%s}`, host, port)
	webtest.WaitFor(t, 30*time.Second, "web-2 registered through the gateway", func() bool {
		req, _ := http.NewRequest(http.MethodPut, g.url+"/v1/services/web/instances/web-2", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := httpClient.Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	if err := p.reg.Deregister(context.Background(), "web", "web-1"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "the gateway routing web to web-2 only", func() bool {
		for range 5 {
			if code, _, inst := get(t, g.url+"/s/web/x"); code != 200 || inst != "web-2" {
				return false
			}
		}
		return true
	})
}
