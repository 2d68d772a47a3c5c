package gateway_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/config"
)

// TestOwnEndpointsNeedTokens: with STEWARD_AUTH on, the gateway's own
// /gateway/routes needs routes read, /metrics, /gateway/upstreams and
// /gateway/cluster metrics read, checked
// with the config service (a real replica with auth on); a revoked token
// is refused within a second; /healthz stays open.
func TestOwnEndpointsNeedTokens(t *testing.T) {
	const root = "stw_gateway-test-root-0123456789abcdefghijkl"
	var cs config.Settings
	cs.ReplicaID, cs.StreamReplicas, cs.SnapshotEvery, cs.RetainRevisions = "config-0", 1, 100_000, 1000
	cs.Auth, cs.BootstrapToken, cs.ShutdownTimeout = true, root, time.Second
	nc := qlogtest.StartServer(t).Connect(t)
	configURL := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return config.Serve(ctx, cs, ln, nc, nil, slog.New(slog.DiscardHandler))
	})
	call := func(method, url, secret, body string) (int, map[string]any) {
		code, _, out := authtest.Call(t, method, url, secret, body)
		return code, out
	}
	webtest.WaitFor(t, 30*time.Second, "the root token", func() bool {
		code, _ := call("GET", configURL+"/v1/auth/whoami", root, "")
		return code == http.StatusOK
	})
	if code, body := call("POST", configURL+"/v1/auth/roles", root, `{"name":"routes-reader","rules":[{"resource":"routes","prefix":"","access":"read"}]}`); code != http.StatusCreated {
		t.Fatalf("role: %d %v", code, body)
	}
	_, tok := call("POST", configURL+"/v1/auth/tokens", root, `{"description":"gw","roles":["routes-reader"]}`)
	reader, id := tok["secret"].(string), tok["id"].(string)

	var s gateway.Settings
	// The registry (auth off here) is only what makes the gateway ready.
	s.ID, s.RegistryURL, s.ConfigURL = "gateway-test", startPlane(t).registry, configURL
	s.MaxRequests, s.MaxPending, s.EjectAfter, s.BaseEjection, s.MaxEjectedShare = 1024, 1024, 5, 30*time.Second, 0.5
	s.ShutdownTimeout, s.Auth, s.Token = time.Second, true, root
	gw := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return gateway.Serve(ctx, s, ln, slog.New(slog.DiscardHandler))
	})
	for _, tc := range []struct {
		path, secret string
		want         int
	}{
		{"/gateway/routes", "", 401},
		{"/gateway/routes", "stw_unknown-0123456789abcdefghijklmnopqrstuv", 401},
		{"/gateway/routes", reader, 200},
		{"/metrics", reader, 403},
		{"/metrics", root, 200},
		{"/gateway/upstreams", "", 401},
		{"/gateway/upstreams", reader, 403},
		{"/gateway/upstreams", root, 200},
		{"/gateway/cluster", "", 401},
		{"/gateway/cluster", reader, 403},
		{"/gateway/cluster", root, 200},
		{"/healthz", "", 200},
	} {
		if code, body := call("GET", gw+tc.path, tc.secret, ""); code != tc.want {
			t.Errorf("GET %s = %d, want %d: %v", tc.path, code, tc.want, body)
		}
	}
	if code, _ := call("DELETE", configURL+"/v1/auth/tokens/"+id, root, ""); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	revoked := time.Now()
	webtest.WaitFor(t, 2*time.Second, "the revoked token refused", func() bool {
		code, _ := call("GET", gw+"/gateway/routes", reader, "")
		return code == http.StatusUnauthorized
	})
	if d := time.Since(revoked); d > time.Second {
		t.Errorf("the gateway accepted the revoked token for %v", d)
	}
}
