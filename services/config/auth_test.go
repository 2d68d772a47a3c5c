package config_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/config"
)

// rootSecret is the bootstrap token of the auth tests.
const rootSecret = "stw_test-root-secret-0123456789abcdefghijklmnop"

// startAuthNode serves a config replica with STEWARD_AUTH on and the
// bootstrap root token, and waits until the root token works.
func startAuthNode(t *testing.T) string {
	t.Helper()
	var s config.Settings
	s.ReplicaID, s.StreamReplicas, s.SnapshotEvery, s.RetainRevisions = "config-0", 1, 100_000, 1000
	s.Auth, s.BootstrapToken, s.ShutdownTimeout = true, rootSecret, time.Second
	nc := qlogtest.StartServer(t).Connect(t)
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return config.Serve(ctx, s, ln, nc, nil, slog.New(slog.DiscardHandler))
	})
	webtest.WaitFor(t, 30*time.Second, "root token accepted", func() bool {
		code, _, _ := authtest.Call(t, "GET", url+"/v1/auth/whoami", rootSecret, "")
		return code == http.StatusOK
	})
	return url
}

// newToken creates a role with one kv rule and a token holding it, and
// returns the token's id and secret.
func newToken(t *testing.T, url, role, prefix, access string) (string, string) {
	t.Helper()
	doc := fmt.Sprintf(`{"name":%q,"rules":[{"resource":"kv","prefix":%q,"access":%q}]}`, role, prefix, access)
	if code, _, body := authtest.Call(t, "POST", url+"/v1/auth/roles", rootSecret, doc); code != http.StatusCreated {
		t.Fatalf("create role %s: %d %v", role, code, body)
	}
	code, _, body := authtest.Call(t, "POST", url+"/v1/auth/tokens", rootSecret, fmt.Sprintf(`{"description":"test","roles":[%q],"ttl":"1h"}`, role))
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %v", code, body)
	}
	return body["id"].(string), body["secret"].(string)
}

// TestAuthOnConfig: with STEWARD_AUTH on, every kv route answers 401
// without a valid token and 403 outside the token's rules, and a token
// works exactly inside them.
func TestAuthOnConfig(t *testing.T) {
	url := startAuthNode(t)
	_, reader := newToken(t, url, "app-reader", "/app/", "read")
	_, writer := newToken(t, url, "app-writer", "/app/", "write")
	for _, k := range []string{"/app/a", "/other/b"} {
		if code, _, body := authtest.Call(t, "PUT", url+"/v1/kv"+k, rootSecret, `{"value":"v"}`); code != http.StatusOK && code != http.StatusCreated {
			t.Fatalf("root PUT %s: %d %v", k, code, body)
		}
	}
	tests := []struct {
		name, method, path, secret, body string
		want                             int
	}{
		{"no token", "GET", "/v1/kv/app/a", "", "", 401},
		{"unknown token", "GET", "/v1/kv/app/a", "stw_unknown-0123456789abcdefghijklmnopqrstuv", "", 401},
		{"malformed header", "GET", "/v1/kv/app/a", "two words", "", 401},
		{"reader reads", "GET", "/v1/kv/app/a", reader, "", 200},
		{"reader outside prefix", "GET", "/v1/kv/other/b", reader, "", 403},
		{"reader writes", "PUT", "/v1/kv/app/a", reader, `{"value":"x"}`, 403},
		{"writer writes", "PUT", "/v1/kv/app/a", writer, `{"value":"x"}`, 200},
		{"writer outside prefix", "PUT", "/v1/kv/other/b", writer, `{"value":"x"}`, 403},
		{"writer deletes prefix outside", "DELETE", "/v1/kv?prefix=/", writer, "", 403},
		{"reader txn touching outside", "POST", "/v1/txn", reader, `{"compare":[],"success":[{"get":{"key":"/other/b"}}],"failure":[]}`, 403},
		{"writer txn inside", "POST", "/v1/txn", writer, `{"compare":[{"key":"/app/a","target":"exists","op":"==","value":true}],"success":[{"put":{"key":"/app/c","value":"1"}}],"failure":[]}`, 200},
		{"reader history outside", "GET", "/v1/history?key=/other/b", reader, "", 403},
		{"reader leases", "POST", "/v1/leases", reader, `{"ttl":"10s"}`, 403},
		{"reader auth admin", "GET", "/v1/auth/tokens", reader, "", 403},
		{"metrics without token", "GET", "/metrics", "", "", 401},
		{"metrics without metrics read", "GET", "/metrics", reader, "", 403},
		{"status without token", "GET", "/status", "", "", 401},
		{"status without metrics read", "GET", "/status", reader, "", 403},
		{"status with root", "GET", "/status", rootSecret, "", 200},
		{"healthz open", "GET", "/healthz", "", "", 200},
		{"openapi open", "GET", "/openapi.json", "", "", 200},
		{"root anything", "GET", "/v1/kv/other/b", rootSecret, "", 200},
	}
	for _, tc := range tests {
		code, hdr, body := authtest.Call(t, tc.method, url+tc.path, tc.secret, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d, want %d: %v", tc.name, tc.method, tc.path, code, tc.want, body)
		}
		if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate: Bearer", tc.name)
		}
		if code == http.StatusForbidden && body["resource"] == nil && tc.path != "/v1/auth/tokens" {
			t.Errorf("%s: 403 does not name the resource: %v", tc.name, body)
		}
	}
	// A routes rule grants the gateway's route documents, named by route.
	doc := `{"name":"route-admin","rules":[{"resource":"routes","prefix":"api","access":"write"}]}`
	if code, _, body := authtest.Call(t, "POST", url+"/v1/auth/roles", rootSecret, doc); code != http.StatusCreated {
		t.Fatalf("create role: %d %v", code, body)
	}
	_, _, tok := authtest.Call(t, "POST", url+"/v1/auth/tokens", rootSecret, `{"description":"routes","roles":["route-admin"]}`)
	routes := tok["secret"].(string)
	for path, want := range map[string]int{
		"/v1/kv" + config.RoutesPrefix + "api":   200,
		"/v1/kv" + config.RoutesPrefix + "admin": 403,
		"/v1/kv/app/a":                           403,
	} {
		if code, _, body := authtest.Call(t, "PUT", url+path, routes, `{"value":"{}"}`); code != want {
			t.Errorf("routes token PUT %s = %d, want %d: %v", path, code, want, body)
		}
	}
	// A list over / answers only what the reader may read.
	code, _, body := authtest.Call(t, "GET", url+"/v1/kv?prefix=/", reader, "")
	if code != http.StatusOK {
		t.Fatalf("reader list: %d %v", code, body)
	}
	for _, it := range body["items"].([]any) {
		if k := it.(map[string]any)["key"].(string); !strings.HasPrefix(k, "/app/") {
			t.Errorf("reader's list of / shows %s", k)
		}
	}
}

// TestAuthWatchAndRevocation: a watch on /app/ with an /app/-only token
// sees only /app/ events while /other/ is written, and ends within a
// second of its token's revocation; the revoked token is refused.
func TestAuthWatchAndRevocation(t *testing.T) {
	url := startAuthNode(t)
	id, reader := newToken(t, url, "app-reader", "/app/", "read")
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/watch?prefix=/", reader, ""); code != http.StatusForbidden {
		t.Fatalf("reader watching / = %d, want 403", code)
	}
	lines := authtest.Lines(t, url+"/v1/watch?prefix=/app/", reader)
	for i := range 5 {
		authtest.Call(t, "PUT", fmt.Sprintf("%s/v1/kv/other/k%d", url, i), rootSecret, `{"value":"secret"}`)
		authtest.Call(t, "PUT", fmt.Sprintf("%s/v1/kv/app/k%d", url, i), rootSecret, `{"value":"v"}`)
	}
	seen := 0
	for seen < 5 {
		select {
		case l := <-lines:
			if strings.Contains(l, "/other/") {
				t.Fatalf("the /app/ watch sent %s", l)
			}
			if strings.HasPrefix(l, "data:") && strings.Contains(l, "/app/") {
				seen++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("saw %d of 5 /app/ events in 10s", seen)
		}
	}
	revoked := time.Now()
	if code, _, body := authtest.Call(t, "DELETE", url+"/v1/auth/tokens/"+id, rootSecret, ""); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, body)
	}
	for ended := false; !ended; {
		select {
		case l, ok := <-lines:
			if strings.Contains(l, "/other/") {
				t.Fatalf("the /app/ watch sent %s", l)
			}
			ended = !ok
		case <-time.After(5 * time.Second):
			t.Fatal("the watch was still open 5s after its token was revoked")
		}
	}
	if d := time.Since(revoked); d > time.Second {
		t.Errorf("the watch ended %v after the revocation, want within 1s", d)
	} else {
		t.Logf("the watch ended %v after the revocation was acknowledged", d)
	}
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/kv/app/k0", reader, ""); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
}

// TestAuthSurvivesRestart: tokens and roles are replicated state: a
// replica restarted on the same stream (snapshots due every 3 entries,
// so it may restore one and replay the rest) knows them again, and the
// token list shows neither secrets nor hashes.
func TestAuthSurvivesRestart(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	var s config.Settings
	s.ReplicaID, s.StreamReplicas, s.SnapshotEvery, s.RetainRevisions = "config-0", 1, 3, 1000
	s.Auth, s.BootstrapToken = true, rootSecret
	open := func() (*config.Replica, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep, err := config.Open(ctx, s, nc, nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Auth.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(rep.Handler)
		t.Cleanup(srv.Close)
		return rep, srv.URL
	}
	rep, url := open()
	cmd, _ := json.Marshal(auth.Bootstrap(rootSecret))
	if _, err := rep.Auth.Propose(context.Background(), cmd, qlog.ProposeOptions{}); err != nil {
		t.Fatal(err)
	}
	_, secret := newToken(t, url, "app-reader", "/app/", "read")
	for i := range 6 { // past SnapshotEvery
		newToken(t, url, fmt.Sprintf("filler-%d", i), "/f/", "read")
	}
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	rep, url = open()
	defer rep.Close()
	if code, _, body := authtest.Call(t, "GET", url+"/v1/auth/whoami", secret, ""); code != http.StatusOK || body["description"] != "test" {
		t.Fatalf("after the restart the token answers %d %v", code, body)
	}
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/kv/other/x", secret, ""); code != http.StatusForbidden {
		t.Fatalf("after the restart the token's rules are lost: %d", code)
	}
	code, _, body := authtest.Call(t, "GET", url+"/v1/auth/tokens", rootSecret, "")
	if code != http.StatusOK || strings.Contains(fmt.Sprint(body), secret) || strings.Contains(fmt.Sprint(body), auth.HashSecret(secret)) {
		t.Fatalf("token list: %d, with a secret or hash in it: %v", code, body)
	}
}

// TestAuthMatrix: every route of the config service against every kind of
// credential (authtest.Matrix), from the route table itself, so that a
// route added with a wrong Need fails here.
func TestAuthMatrix(t *testing.T) {
	url := startAuthNode(t)
	if code, _, body := authtest.Call(t, "PUT", url+"/v1/kv/in/x", rootSecret, `{"value":"v"}`); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("root PUT: %d %v", code, body)
	}
	_, _, lease := authtest.Call(t, "POST", url+"/v1/leases", rootSecret, `{"ttl":"60s"}`)
	authtest.Matrix{
		URL: url, Root: rootSecret, Table: config.RouteTable(),
		Inside:  map[auth.Resource]string{auth.KV: "/in/"},
		Outside: map[auth.Resource]string{auth.KV: "/out/"},
		Request: func(rt authhttp.Route, in string) (string, string) {
			switch rt.Pattern {
			case "/v1/kv":
				return "/v1/kv?prefix=" + in, ""
			case "/v1/kv/*":
				return "/v1/kv" + in + "x", `{"value":"w"}`
			case "/v1/txn":
				return "/v1/txn", fmt.Sprintf(`{"compare":[],"success":[{"get":{"key":%q}}],"failure":[]}`, in+"x")
			case "/v1/watch":
				return "/v1/watch?prefix=" + in, ""
			case "/v1/history":
				return "/v1/history?key=" + in + "x", ""
			case "/v1/leases":
				return "/v1/leases", `{"ttl":"10s"}`
			}
			return strings.Replace(rt.Pattern, "{id}", fmt.Sprint(lease["id"]), 1), ""
		},
	}.Run(t)
}
