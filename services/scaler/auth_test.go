package scaler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler"
)

// rootSecret is the bootstrap token of the auth tests.
const rootSecret = "stw_test-root-secret-0123456789abcdefghijklmnop"

// startAuthNode opens a scaler replica with STEWARD_AUTH on, voting on
// the auth log itself, and serves its API with the Guard's revocation
// checks and the bootstrap root token, as Serve does, but without the
// control loop (it would campaign and register). It waits until the root
// token works.
func startAuthNode(t *testing.T) string {
	t.Helper()
	var s scaler.Settings
	s.ReplicaID, s.StreamReplicas, s.SnapshotEvery, s.SampleTTL = "scaler-0", 1, 100_000, 30*time.Second
	s.Auth, s.BootstrapToken, s.AuthVoters = true, rootSecret, []string{"scaler-0"}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	rep, err := scaler.Open(ctx, s, qlogtest.StartServer(t).Connect(t), nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Auth.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	boot, _ := json.Marshal(auth.Bootstrap(rootSecret))
	if _, err := rep.Auth.Propose(ctx, boot, qlog.ProposeOptions{IdempotencyKey: "bootstrap"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rep.Guard.Run(sctx) })
	wg.Go(func() { _ = web.Serve(sctx, ln, rep.Handler, quiet, time.Second, web.Limits{}) })
	t.Cleanup(func() { stop(); wg.Wait(); _ = rep.Close() })
	url := "http://" + ln.Addr().String()
	webtest.WaitFor(t, 30*time.Second, "root token accepted", func() bool {
		code, _, _ := authtest.Call(t, "GET", url+"/v1/auth/whoami", rootSecret, "")
		return code == http.StatusOK
	})
	return url
}

// newToken creates a role with one rule per "resource:prefix:access"
// and a token holding it, and returns the token's id and secret.
func newToken(t *testing.T, url, role string, rules ...string) (string, string) {
	t.Helper()
	var rs []map[string]string
	for _, r := range rules {
		f := strings.Split(r, ":")
		rs = append(rs, map[string]string{"resource": f[0], "prefix": f[1], "access": f[2]})
	}
	doc, _ := json.Marshal(map[string]any{"name": role, "rules": rs})
	if code, _, body := authtest.Call(t, "POST", url+"/v1/auth/roles", rootSecret, string(doc)); code != http.StatusCreated {
		t.Fatalf("create role %s: %d %v", role, code, body)
	}
	code, _, body := authtest.Call(t, "POST", url+"/v1/auth/tokens", rootSecret, fmt.Sprintf(`{"description":"test","roles":[%q],"ttl":"1h"}`, role))
	if code != http.StatusCreated {
		t.Fatalf("create token: %d %v", code, body)
	}
	return body["id"].(string), body["secret"].(string)
}

// authSpec is a scaler spec whose driver is never called (no control
// loop runs in these tests).
const authSpec = `{"service":"web","minReplicas":1,"maxReplicas":10,
	"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
	"driver":{"type":"webhook","url":"http://127.0.0.1:9/scale","secret":"s3cret"}}`

// putAsRoot creates or replaces scaler name with the root token.
func putAsRoot(t *testing.T, url, name string) {
	t.Helper()
	putSpecAsRoot(t, url, name, authSpec)
}

func putSpecAsRoot(t *testing.T, url, name, spec string) {
	t.Helper()
	if code, _, body := authtest.Call(t, "PUT", url+"/v1/scalers/"+name, rootSecret, spec); code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("root put %s: %d %v", name, code, body)
	}
}

// rollingOutAsRoot puts scaler name and then its template at version
// v2: a rollout in progress, which stays so without a control loop.
func rollingOutAsRoot(t *testing.T, url, name string) {
	t.Helper()
	putAsRoot(t, url, name)
	putSpecAsRoot(t, url, name, strings.Replace(authSpec, `"type":"webhook"`, `"type":"webhook","version":"v2"`, 1))
}

// routeCase is how the matrix calls one route on a fresh scaler: setup
// (as root) comes first, ok is the status of an allowed call; need is
// the access it needs on resource (scalers, on the name, unless metrics).
type routeCase struct {
	path  func(name string) string
	body  string
	setup bool
	// rollout: the setup also starts a rollout (rollingOutAsRoot).
	rollout  bool
	ok       int
	resource auth.Resource
	need     auth.Access
}

// TestAuthMatrix: every route of the route table × {no token, bad token,
// a token for another prefix, read-only, write, write outside its
// prefix, root} answers the status the matrix expects; a route missing
// from the matrix, or whose Need differs from it, fails the test.
func TestAuthMatrix(t *testing.T) {
	url := startAuthNode(t)
	_, other := newToken(t, url, "zzz-writer", "scalers:zzz-:write")
	_, reader := newToken(t, url, "app-reader", "scalers:app-:read", "metrics::read")
	_, writer := newToken(t, url, "app-writer", "scalers:app-:write", "metrics::write")
	under := func(suffix string) func(string) string {
		return func(name string) string { return "/v1/scalers/" + name + suffix }
	}
	fixed := func(path string) func(string) string { return func(string) string { return path } }
	series := `{"series":{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"gateway_rps":10}}]}}`
	cases := map[string]routeCase{
		"GET /v1/scalers":                         {path: fixed("/v1/scalers"), setup: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"GET /v1/scalers/{name}":                  {path: under(""), setup: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"PUT /v1/scalers/{name}":                  {path: under(""), body: authSpec, ok: 201, resource: auth.Scalers, need: auth.Write},
		"DELETE /v1/scalers/{name}":               {path: under(""), setup: true, ok: 200, resource: auth.Scalers, need: auth.Write},
		"GET /v1/scalers/{name}/decisions":        {path: under("/decisions"), setup: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"POST /v1/scalers/{name}/simulate":        {path: under("/simulate"), body: series, setup: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"GET /v1/scalers/{name}/watch":            {path: under("/watch"), ok: 200, resource: auth.Scalers, need: auth.Read},
		"GET /v1/scalers/{name}/rollout":          {path: under("/rollout"), rollout: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"GET /v1/scalers/{name}/rollouts":         {path: under("/rollouts"), setup: true, ok: 200, resource: auth.Scalers, need: auth.Read},
		"POST /v1/scalers/{name}/rollout/pause":   {path: under("/rollout/pause"), rollout: true, ok: 200, resource: auth.Scalers, need: auth.Write},
		"POST /v1/scalers/{name}/rollout/promote": {path: under("/rollout/promote"), rollout: true, ok: 200, resource: auth.Scalers, need: auth.Write},
		"POST /v1/scalers/{name}/rollout/abort":   {path: under("/rollout/abort"), rollout: true, ok: 200, resource: auth.Scalers, need: auth.Write},
		// resume needs a pause first; a resume of a rollout in progress
		// is refused as a conflict, after auth let it through.
		"POST /v1/scalers/{name}/rollout/resume": {path: under("/rollout/resume"), rollout: true, ok: 409, resource: auth.Scalers, need: auth.Write},
		"POST /v1/metrics":                       {path: fixed("/v1/metrics"), body: `{"samples":[{"service":"web","name":"gateway_rps","value":1}]}`, ok: 202, resource: auth.Metrics, need: auth.Write},
	}
	const unknown = "stw_unknown-0123456789abcdefghijklmnopqrstuv"
	_, expired := authtest.Token(t, url, rootSecret, "", "1s")
	time.Sleep(1100 * time.Millisecond)
	kinds := []struct{ name, secret, prefix string }{
		{"no token", "", "app-"}, {"bad token", unknown, "app-"}, {"expired root token", expired, "app-"},
		{"other prefix", other, "app-"}, {"read-only", reader, "app-"}, {"write", writer, "app-"},
		{"write outside its prefix", writer, "zzz-"}, {"root", rootSecret, "app-"},
	}
	for j, rt := range scaler.RouteTable() {
		route := rt.Method + " " + rt.Pattern
		c, ok := cases[route]
		if !ok {
			t.Errorf("%s is not in the auth matrix", route)
			continue
		}
		delete(cases, route)
		named := strings.Contains(rt.Pattern, "{name}")
		list := !named && c.resource == auth.Scalers
		if rt.Need.Resource != c.resource || rt.Need.Access != c.need {
			t.Errorf("%s needs %s %s, the matrix says %s %s", route, rt.Need.Resource, rt.Need.Access, c.resource, c.need)
		}
		for i, k := range kinds {
			want := c.ok
			switch {
			case k.secret == "" || k.secret == unknown || k.secret == expired:
				want = http.StatusUnauthorized
			case list: // a list answers every token with a scalers rule, filtered
			case k.secret == rootSecret:
			case k.secret == other || (named && k.prefix != "app-") || (k.secret == reader && c.need == auth.Write):
				want = http.StatusForbidden
			}
			name := fmt.Sprintf("%s%d-%d", k.prefix, j, i)
			switch {
			case c.rollout:
				rollingOutAsRoot(t, url, name)
			case c.setup:
				putAsRoot(t, url, name)
			}
			code, hdr, resp := authtest.Call(t, rt.Method, url+c.path(name), k.secret, c.body)
			if code != want {
				t.Errorf("%s with %s = %d, want %d: %v", route, k.name, code, want, resp)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %s: 401 without WWW-Authenticate: Bearer", route, k.name)
			}
			if code == http.StatusForbidden && (resp["resource"] != string(c.resource) || resp["access"] != string(c.need)) {
				t.Errorf("%s with %s: 403 does not name resource and access: %v", route, k.name, resp)
			}
		}
	}
	for route := range cases {
		t.Errorf("the matrix lists %s, which the route table does not", route)
	}
	// The list answers only what the token may read.
	for _, k := range kinds[3:6] {
		code, _, body := authtest.Call(t, "GET", url+"/v1/scalers", k.secret, "")
		if code != http.StatusOK {
			t.Fatalf("list with %s: %d %v", k.name, code, body)
		}
		prefix := "app-"
		if k.secret == other {
			prefix = "zzz-"
		}
		items := body["items"].([]any)
		for _, it := range items {
			if n := it.(map[string]any)["name"].(string); !strings.HasPrefix(n, prefix) {
				t.Errorf("the list with %s shows %s", k.name, n)
			}
		}
		if len(items) == 0 {
			t.Errorf("the list with %s shows nothing", k.name)
		}
	}
}

// TestAuthWatchAuditAndRevocation: a watch on app-w with an app- token
// sees only app-w's changes, each with the token id that made it, while
// other scalers change; it and a blocking query end within a second of
// the token's revocation, and the revoked token is refused.
func TestAuthWatchAuditAndRevocation(t *testing.T) {
	url := startAuthNode(t)
	id, reader := newToken(t, url, "app-reader", "scalers:app-:read")
	writerID, writer := newToken(t, url, "app-writer", "scalers:app-:write")
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/scalers/zzz-w/watch", reader, ""); code != http.StatusForbidden {
		t.Fatalf("reader watching zzz-w = %d, want 403", code)
	}
	lines := authtest.Lines(t, url+"/v1/scalers/app-w/watch", reader)
	leak := func(l string) bool { return strings.Contains(l, "zzz-") || strings.Contains(l, "app-w2") }
	next := func(typ string) {
		t.Helper()
		for event := ""; ; {
			select {
			case l := <-lines:
				if leak(l) {
					t.Fatalf("the app-w watch sent %s", l)
				}
				if e, ok := strings.CutPrefix(l, "event: "); ok {
					event = e
				}
				if strings.HasPrefix(l, "data:") && event == typ {
					if !strings.Contains(l, fmt.Sprintf(`"by":%q`, writerID)) {
						t.Fatalf("%s event without by %s: %s", typ, writerID, l)
					}
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s event in 10s", typ)
			}
		}
	}
	for i := range 3 {
		putAsRoot(t, url, fmt.Sprintf("zzz-w%d", i))
		putAsRoot(t, url, fmt.Sprintf("app-w2%d", i))
		if code, _, resp := authtest.Call(t, "PUT", url+"/v1/scalers/app-w", writer, authSpec); code != http.StatusCreated {
			t.Fatalf("writer put: %d %v", code, resp)
		}
		next("put")
		if code, _, resp := authtest.Call(t, "DELETE", url+"/v1/scalers/app-w", writer, ""); code != http.StatusOK {
			t.Fatalf("writer delete: %d %v", code, resp)
		}
		next("deleted")
	}
	// A blocking query waits on app-w20 until something happens to it.
	blocked := make(chan int, 1)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/v1/scalers/app-w20?index=1000000&wait=30s", nil)
	req.Header.Set("Authorization", "Bearer "+reader)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			blocked <- 0
			return
		}
		res.Body.Close()
		blocked <- res.StatusCode
	}()
	time.Sleep(200 * time.Millisecond)
	revoked := time.Now()
	if code, _, body := authtest.Call(t, "DELETE", url+"/v1/auth/tokens/"+id, rootSecret, ""); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, body)
	}
	for ended := false; !ended; {
		select {
		case l, ok := <-lines:
			if leak(l) {
				t.Fatalf("the app-w watch sent %s", l)
			}
			ended = !ok
		case <-time.After(5 * time.Second):
			t.Fatal("the watch was still open 5s after its token was revoked")
		}
	}
	if d := time.Since(revoked); d > time.Second {
		t.Errorf("the watch ended %v after the revocation, want within 1s", d)
	}
	select {
	case code := <-blocked:
		if code != http.StatusUnauthorized {
			t.Errorf("the cut blocking query answered %d, want 401", code)
		}
		if d := time.Since(revoked); d > time.Second {
			t.Errorf("the blocking query ended %v after the revocation, want within 1s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the blocking query was still waiting 5s after its token was revoked")
	}
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/scalers/app-w", reader, ""); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
}
