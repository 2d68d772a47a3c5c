package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
)

// TestEscapedPathsThroughGateway: the gateway forwards a path escaped as
// the client sent it, neither decoding it (a%2Fb would become a/b) nor
// escaping it again (a%2Fb would become a%252Fb), so a config key reached
// through the gateway is the key reached directly. key is the key the
// path names, "" when the config service refuses it with 400.
func TestEscapedPathsThroughGateway(t *testing.T) {
	p := startPlane(t)
	g := startGateway(t, p)
	webtest.WaitFor(t, 10*time.Second, "config reachable through the gateway", func() bool {
		code, _ := send(t, "GET", g.url+"/v1/kv?prefix=/")
		return code == 200
	})
	tests := []struct{ name, path, key string }{
		{"raw slashes", "app/db/url", "/app/db/url"},
		{"escaped slashes", "app%2Fdb%2Furl", "/app/db/url"},
		{"double-escaped slash is a literal %2F", "app%252Fdb", "/app%2Fdb"},
		{"escaped percent", "rate/100%25", "/rate/100%"},
		{"unicode", "caf%C3%A9/%E2%82%AC", "/café/€"},
		{"dot-dot", "app/../other", ""},
		{"escaped dot-dot", "app%2F..%2Fother", ""},
		{"escaped dots", "app/%2E%2E/other", ""},
		{"escaped empty segment", "app%2F%2Fx", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(t, "PUT", g.url+"/v1/kv/"+tc.path)
			if tc.key == "" {
				if code != http.StatusBadRequest {
					t.Fatalf("PUT %s through the gateway = %d, want 400: %s", tc.path, code, body)
				}
				return
			}
			var e struct{ Key string }
			_ = json.Unmarshal([]byte(body), &e)
			if code != 200 || e.Key != tc.key {
				t.Fatalf("PUT %s through the gateway = %d, key %q, want 200 and %q: %s", tc.path, code, e.Key, tc.key, body)
			}
			segs := strings.Split(tc.key, "/")
			for i, s := range segs {
				segs[i] = url.PathEscape(s)
			}
			if code, body := send(t, "GET", p.config+"/v1/kv"+strings.Join(segs, "/")); code != 200 {
				t.Fatalf("GET %s directly = %d: %s", tc.key, code, body)
			}
			if code, body := send(t, "DELETE", g.url+"/v1/kv/"+tc.path); code != 200 {
				t.Fatalf("DELETE %s through the gateway = %d: %s", tc.path, code, body)
			}
		})
	}

	// A service's instance sees the request line's path as the client
	// escaped it, minus the route's prefix.
	up := startUpstream(t, p, "web", "web-1", api.Registration{})
	up.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.RequestURI) })
	for in, want := range map[string]string{
		"/s/web/special/a%2Fb":       "/special/a%2Fb",
		"/s/web/special/a%252Fb":     "/special/a%252Fb",
		"/s/web/special/caf%C3%A9":   "/special/caf%C3%A9",
		"/s/web/special/a/b?x=%2F":   "/special/a/b?x=%2F",
		"/s/web/special/%7Euser%2Dx": "/special/%7Euser%2Dx",
		"/s/web/special/a%2F..%2Fb":  "/special/a%2F..%2Fb",
	} {
		var got string
		webtest.WaitFor(t, 10*time.Second, "web routed", func() bool {
			var code int
			code, got = send(t, "GET", g.url+in)
			return code == 200
		})
		if got != want {
			t.Errorf("GET %s: upstream saw %s, want %s", in, got, want)
		}
	}
}

// send makes one request (a JSON string body for PUT) and returns the
// status and body.
func send(t *testing.T, method, u string) (int, string) {
	t.Helper()
	var body io.Reader
	if method == "PUT" {
		body = strings.NewReader(`"v"`)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
