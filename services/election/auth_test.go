package election_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/election"
)

// rootSecret is the bootstrap token of the auth tests.
const rootSecret = "stw_test-root-secret-0123456789abcdefghijklmnop"

// startAuthNode serves an election replica with STEWARD_AUTH on, voting
// on the auth log itself, and the bootstrap root token; it waits until
// the root token works.
func startAuthNode(t *testing.T) string {
	t.Helper()
	var s election.Settings
	s.ReplicaID, s.StreamReplicas, s.SnapshotEvery = "election-0", 1, 100_000
	s.Auth, s.BootstrapToken, s.AuthVoters, s.ShutdownTimeout = true, rootSecret, []string{"election-0"}, time.Second
	nc := qlogtest.StartServer(t).Connect(t)
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return election.Serve(ctx, s, ln, nc, nil, quiet)
	})
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

// campaignAsRoot makes candidate c lead election name with the root token and
// returns its fencing token.
func campaignAsRoot(t *testing.T, url, name string) int64 {
	t.Helper()
	code, _, body := authtest.Call(t, "POST", url+"/v1/elections/"+name+"/campaign", rootSecret, `{"candidate":"c","ttl":"1m"}`)
	if code != http.StatusOK {
		t.Fatalf("root campaign %s: %d %v", name, code, body)
	}
	return int64(body["token"].(float64))
}

// routeCase is how the matrix calls one route on a fresh election: setup
// (as root) returns the body, ok is the status of an allowed call, and
// write says the route needs elections write (else read).
type routeCase struct {
	path  func(name string) string
	setup func(t *testing.T, url, name string) string
	ok    int
	write bool
}

// TestAuthMatrix: every route of the route table × {no token, bad token,
// a token for another prefix, read-only, write, write outside its
// prefix, root} answers the status the matrix expects; a route missing
// from the matrix, or whose Need differs from it, fails the test.
func TestAuthMatrix(t *testing.T) {
	url := startAuthNode(t)
	_, other := newToken(t, url, "zzz-writer", "elections:zzz-:write")
	_, reader := newToken(t, url, "app-reader", "elections:app-:read")
	_, writer := newToken(t, url, "app-writer", "elections:app-:write")
	noBody := func(*testing.T, string, string) string { return "" }
	leader := func(t *testing.T, url, name string) string {
		return fmt.Sprintf(`{"candidate":"c","token":%d}`, campaignAsRoot(t, url, name))
	}
	led := func(t *testing.T, url, name string) string { campaignAsRoot(t, url, name); return "" }
	under := func(suffix string) func(string) string {
		return func(name string) string { return "/v1/elections/" + name + suffix }
	}
	cases := map[string]routeCase{
		"GET /v1/elections":                  {path: func(string) string { return "/v1/elections" }, setup: led, ok: 200},
		"GET /v1/elections/{name}":           {path: under(""), setup: led, ok: 200},
		"POST /v1/elections/{name}/campaign": {path: under("/campaign"), setup: func(*testing.T, string, string) string { return `{"candidate":"c","ttl":"1m"}` }, ok: 200, write: true},
		"POST /v1/elections/{name}/renew":    {path: under("/renew"), setup: leader, ok: 200, write: true},
		"POST /v1/elections/{name}/resign":   {path: under("/resign"), setup: leader, ok: 200, write: true},
		"GET /v1/elections/{name}/watch":     {path: under("/watch"), setup: noBody, ok: 200},
	}
	const unknown = "stw_unknown-0123456789abcdefghijklmnopqrstuv"
	_, expired := authtest.Token(t, url, rootSecret, "", "1s")
	time.Sleep(1100 * time.Millisecond)
	kinds := []struct{ name, secret, prefix string }{
		{"no token", "", "app-"}, {"bad token", unknown, "app-"}, {"expired root token", expired, "app-"},
		{"other prefix", other, "app-"}, {"read-only", reader, "app-"}, {"write", writer, "app-"},
		{"write outside its prefix", writer, "zzz-"}, {"root", rootSecret, "app-"},
	}
	for j, rt := range election.RouteTable() {
		route := rt.Method + " " + rt.Pattern
		c, ok := cases[route]
		if !ok {
			t.Errorf("%s is not in the auth matrix", route)
			continue
		}
		delete(cases, route)
		list := !strings.Contains(rt.Pattern, "{name}")
		if want := map[bool]auth.Access{false: auth.Read, true: auth.Write}[c.write]; rt.Need.Resource != auth.Elections || rt.Need.Access != want {
			t.Errorf("%s needs %s %s, the matrix says elections %s", route, rt.Need.Resource, rt.Need.Access, want)
		}
		for i, k := range kinds {
			want := c.ok
			switch {
			case k.secret == "" || k.secret == unknown || k.secret == expired:
				want = http.StatusUnauthorized
			case list: // a list answers every token with an elections rule, filtered
			case k.secret == rootSecret:
			case k.secret == other || k.prefix != "app-" || (k.secret == reader && c.write):
				want = http.StatusForbidden
			}
			name := fmt.Sprintf("%s%d-%d", k.prefix, j, i)
			body := c.setup(t, url, name)
			code, hdr, resp := authtest.Call(t, rt.Method, url+c.path(name), k.secret, body)
			if code != want {
				t.Errorf("%s with %s = %d, want %d: %v", route, k.name, code, want, resp)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with %s: 401 without WWW-Authenticate: Bearer", route, k.name)
			}
			if code == http.StatusForbidden && (resp["resource"] != string(auth.Elections) || resp["access"] != string(rt.Need.Access)) {
				t.Errorf("%s with %s: 403 does not name resource and access: %v", route, k.name, resp)
			}
		}
	}
	for route := range cases {
		t.Errorf("the matrix lists %s, which the route table does not", route)
	}
	// The list answers only what the token may read.
	campaignAsRoot(t, url, "zzz-hidden")
	for _, k := range kinds[3:6] {
		code, _, body := authtest.Call(t, "GET", url+"/v1/elections", k.secret, "")
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
// other elections change; it ends within a second of its token's
// revocation, and the revoked token is refused.
func TestAuthWatchAuditAndRevocation(t *testing.T) {
	url := startAuthNode(t)
	id, reader := newToken(t, url, "app-reader", "elections:app-:read")
	writerID, writer := newToken(t, url, "app-writer", "elections:app-:write")
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/elections/zzz-w/watch", reader, ""); code != http.StatusForbidden {
		t.Fatalf("reader watching zzz-w = %d, want 403", code)
	}
	lines := authtest.Lines(t, url+"/v1/elections/app-w/watch", reader)
	leak := func(l string) bool { return strings.Contains(l, "zzz-") || strings.Contains(l, "app-w2") }
	for i := range 3 {
		campaignAsRoot(t, url, fmt.Sprintf("zzz-w%d", i))
		campaignAsRoot(t, url, fmt.Sprintf("app-w2%d", i))
		body := fmt.Sprintf(`{"candidate":"c%d","ttl":"1m"}`, i)
		if code, _, resp := authtest.Call(t, "POST", url+"/v1/elections/app-w/campaign", writer, body); code != http.StatusOK {
			t.Fatalf("writer campaign: %d %v", code, resp)
		}
		tok := 0
		for tok == 0 {
			select {
			case l := <-lines:
				if leak(l) {
					t.Fatalf("the app-w watch sent %s", l)
				}
				if strings.HasPrefix(l, "data:") && strings.Contains(l, fmt.Sprintf(`"leader":"c%d"`, i)) {
					if !strings.Contains(l, fmt.Sprintf(`"by":%q`, writerID)) {
						t.Fatalf("elected event without by %s: %s", writerID, l)
					}
					var ev struct{ Token int }
					_ = json.Unmarshal([]byte(strings.TrimPrefix(l, "data:")), &ev)
					tok = ev.Token
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no elected event for c%d in 10s", i)
			}
		}
		body = fmt.Sprintf(`{"candidate":"c%d","token":%d}`, i, tok)
		if code, _, resp := authtest.Call(t, "POST", url+"/v1/elections/app-w/resign", writer, body); code != http.StatusOK {
			t.Fatalf("writer resign: %d %v", code, resp)
		}
	}
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
	if code, _, _ := authtest.Call(t, "GET", url+"/v1/elections/app-w", reader, ""); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
}
