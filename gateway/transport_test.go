package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward/sdk/api"
)

// TestUpstreamTransport: plain proxied requests go over h1client's pooled
// connections, a body larger than it carries goes over net/http's
// transport, both arrive whole, and the gateway's metrics say which did
// what.
func TestUpstreamTransport(t *testing.T) {
	p := startPlane(t)
	u := startUpstream(t, p, "web", "web-1", api.Registration{})
	g := startGateway(t, p)
	for i := range 20 {
		if code, body, _ := get(t, fmt.Sprintf("%s/s/web/n%d", g.url, i)); code != 200 || !strings.HasPrefix(body, fmt.Sprintf("web-1 /n%d ", i)) {
			t.Fatalf("GET %d: %d %q", i, code, body)
		}
	}
	small, large := strings.Repeat("s", 1000), strings.Repeat("L", 100<<10)
	for _, b := range []string{small, large} {
		res, err := httpClient.Post(g.url+"/s/web/post", "text/plain", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST of %d bytes: %s", len(b), res.Status)
		}
	}
	u.mu.Lock()
	gotSmall, gotLarge := u.posts[small], u.posts[large]
	u.mu.Unlock()
	if gotSmall != 1 || gotLarge != 1 {
		t.Errorf("the upstream got the 1,000-byte body %d times and the 100 KiB one %d times, want once each", gotSmall, gotLarge)
	}
	carried := metric(t, g, `steward_gateway_upstream_transport_requests_total{transport="h1client"}`)
	fallback := metric(t, g, `steward_gateway_upstream_transport_requests_total{transport="fallback"}`)
	opened := metric(t, g, "steward_gateway_upstream_connections_opened_total")
	reused := metric(t, g, "steward_gateway_upstream_connections_reused_total")
	if carried != 21 || fallback != 1 {
		t.Errorf("h1client carried %v attempts and net/http's transport %v, want 21 and 1", carried, fallback)
	}
	if opened < 1 || opened+reused != carried || reused < 19 {
		t.Errorf("h1client opened %v connections and reused one %v times for %v attempts", opened, reused, carried)
	}
}
