package gateway_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
)

// TestErrorLogLines: the gateway's error path (a routing loop, an upstream
// that refuses connections) logs lines with no key twice, each carrying the
// request ID the client was answered with (its own X-Request-Id, or one the
// gateway made) and the path the client asked for.
func TestErrorLogLines(t *testing.T) {
	p := startPlane(t)
	var logs webtest.Logs
	s := gateway.Settings{ID: "gateway-test", RegistryURL: p.registry, ConfigURL: p.config,
		MaxRequests: 1024, MaxPending: 1024, EjectAfter: 5, BaseEjection: 30 * time.Second, MaxEjectedShare: 0.5,
		Process: service.Process{ShutdownTimeout: time.Second}}
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return gateway.Serve(ctx, s, ln, logs.Logger().With("service", "gateway")) // as steward dev does
	})
	u := startUpstream(t, p, "web", "web-1", api.Registration{})
	webtest.WaitFor(t, 10*time.Second, "the gateway to route web", func() bool {
		code, _, _ := get(t, url+"/s/web/x")
		return code == http.StatusOK
	})
	u.srv.Close() // refuses connections from now on

	ids := map[string]bool{}
	for _, tc := range []struct {
		name, path, via, id string
		want                int
	}{
		{"loop", "/s/web/x", "1.1 gateway-test", "", http.StatusLoopDetected},
		{"loop, client's id", "/s/web/x", "1.1 gateway-test", "client-loop", http.StatusLoopDetected},
		{"upstream down", "/s/web/x", "", "", http.StatusBadGateway},
		{"upstream down, client's id", "/s/web/x", "", "client-down", http.StatusBadGateway},
	} {
		req, _ := http.NewRequest(http.MethodGet, url+tc.path, nil)
		if tc.via != "" {
			req.Header.Set("Via", tc.via)
		}
		if tc.id != "" {
			req.Header.Set(web.RequestIDHeader, tc.id)
		}
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		got := res.Header.Get(web.RequestIDHeader)
		if res.StatusCode != tc.want || got == "" || (tc.id != "" && got != tc.id) {
			t.Fatalf("%s: GET %s = %d, X-Request-Id %q; want %d and the client's id %q or a new one", tc.name, tc.path, res.StatusCode, got, tc.want, tc.id)
		}
		ids[got] = true
	}

	lines := logs.RequestLines(t, "request failed", ids)
	for _, rec := range lines {
		if rec["path"] != "/s/web/x" {
			t.Errorf("path %v, want the client's /s/web/x: %v", rec["path"], rec)
		}
	}
	if len(lines) != 4 {
		t.Errorf("%d request failed lines, want 4", len(lines))
	}
}
