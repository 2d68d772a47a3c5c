package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry/catalog"
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
	startUpstream(t, p, "web", "web-1", catalog.Registration{})
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
	startUpstream(t, p, "late", "late-1", catalog.Registration{})
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
