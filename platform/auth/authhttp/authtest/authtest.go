// Package authtest is what the services' auth tests share: requests with a
// bearer token past the OpenAPI contract check, an event stream's lines,
// and the check that every route of a service declares its Need.
package authtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// Call sends a request with the bearer secret (none if empty) and
// returns the status, the header and the JSON body. A stream's body is
// not read: its status is the answer.
func Call(t testing.TB, method, url, secret, body string) (int, http.Header, map[string]any) {
	t.Helper()
	code, hdr, raw := call(t, method, url, secret, body)
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	return code, hdr, out
}

// Lines opens the event stream at url with the bearer secret and sends
// its lines until it ends, when the channel closes.
func Lines(t testing.TB, url, secret string) chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("watch: %v %v", res, err)
	}
	t.Cleanup(func() { res.Body.Close() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// EveryRouteHasANeed fails unless every route mounted on r is in table
// (authhttp.Unruled finds none) and the table has the want routes of the
// service's API.
func EveryRouteHasANeed(t testing.TB, r chi.Router, table []authhttp.Route, want int) {
	t.Helper()
	unruled, err := authhttp.Unruled(r, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(unruled) > 0 {
		t.Fatalf("routes without a Need: %v", unruled)
	}
	if len(table) != want {
		t.Fatalf("%d routes in the table, want the %d of the API", len(table), want)
	}
}

// Token creates a role with rules (none: a token of the built-in root
// role) and a token holding it that lives for ttl ("" never expires),
// asking the replica at url with the root secret; it returns the token's
// id and secret.
func Token(t testing.TB, url, root, role, ttl string, rules ...auth.Rule) (string, string) {
	t.Helper()
	if len(rules) == 0 {
		role = auth.RootRole
	} else {
		doc, _ := json.Marshal(auth.Role{Name: role, Rules: rules})
		if code, _, body := Call(t, "POST", url+"/v1/auth/roles", root, string(doc)); code != http.StatusCreated {
			t.Fatalf("create role %s: %d %v", role, code, body)
		}
	}
	req, _ := json.Marshal(auth.TokenRequest{Description: "test " + role, Roles: []string{role}, TTL: ttl})
	code, _, body := Call(t, "POST", url+"/v1/auth/tokens", root, string(req))
	if code != http.StatusCreated {
		t.Fatalf("create token of %s: %d %v", role, code, body)
	}
	return body["id"].(string), body["secret"].(string)
}

// Matrix checks every route of a service's table against every kind of
// credential, with the answer the route's Need implies: no token, an
// unknown secret and an expired token are 401 everywhere; a token for
// another prefix (for an unnamed resource: for another resource) is 403;
// a read-only token is 403 on a write and allowed on a read; read-write
// and root tokens are allowed. Allowed means neither 401, 403 nor a 5xx:
// the request itself may still be wrong for the state (404, 409). A list
// that filters what the token may read (an InHandler GET) answers a
// token allowed its access 200 naming the inside prefix, which the
// caller made exist; a token without it 200 without that name, or 403
// when the list is of a prefix (the route's Need has a Name) the token
// reaches none of.
type Matrix struct {
	URL, Root string // a replica with auth on and its root secret
	Table     []authhttp.Route
	// Inside and Outside are, for each named resource in the table, the
	// prefix the tokens' rules cover and another one.
	Inside, Outside map[auth.Resource]string
	// Request returns the path (and query) and JSON body of a request to
	// route rt acting on inside, the Inside prefix of its resource (a
	// request should name something under it). The caller made it exist
	// if the route should find it.
	Request func(rt authhttp.Route, inside string) (path, body string)
}

// credential is one column of the matrix: a secret and what each route
// answers it (skip: the column is another resource's).
type credential struct {
	name, secret string
	want         func(authhttp.Route) outcome
}

// outcome is what a cell expects.
type outcome int

const (
	skip outcome = iota
	unauthorized
	forbidden
	allowed
	listedWithout // a list that filters, without the inside name
	listedWith    // a list that filters, with it
)

// Run creates the tokens and walks the table.
func (m Matrix) Run(t *testing.T) {
	t.Helper()
	_, expired := Token(t, m.URL, m.Root, "", "1s")
	always := func(o outcome) func(authhttp.Route) outcome { return func(authhttp.Route) outcome { return o } }
	cols := []credential{
		{"no token", "", always(unauthorized)},
		{"unknown token", "stw_never-issued-0123456789abcdefghijklmnop", always(unauthorized)},
		{"expired token", expired, always(unauthorized)},
		{"root", m.Root, granted},
	}
	resources := map[auth.Resource]bool{}
	for _, rt := range m.Table {
		resources[rt.Need.Resource] = true
	}
	for res := range resources {
		rule := func(prefix string, access auth.Access) auth.Rule {
			return auth.Rule{Resource: res, Prefix: prefix, Access: access}
		}
		other := rule(m.Outside[res], auth.Write)
		if _, named := m.Inside[res]; !named {
			other = auth.Rule{Resource: auth.Metrics, Access: auth.Write}
			if res == auth.Metrics {
				other.Resource = auth.Leases
			}
		}
		role := "matrix-" + string(res)
		_, reader := Token(t, m.URL, m.Root, role+"-read", "", rule(m.Inside[res], auth.Read))
		_, writer := Token(t, m.URL, m.Root, role+"-write", "", rule(m.Inside[res], auth.Write))
		_, outsider := Token(t, m.URL, m.Root, role+"-other", "", other)
		of := func(want func(authhttp.Route) outcome) func(authhttp.Route) outcome {
			return func(rt authhttp.Route) outcome {
				if rt.Need.Resource != res {
					return skip
				}
				return want(rt)
			}
		}
		cols = append(cols,
			credential{string(res) + " other prefix", outsider, of(denied)},
			credential{string(res) + " read", reader, of(func(rt authhttp.Route) outcome {
				if rt.Need.Access == auth.Write {
					return denied(rt)
				}
				return granted(rt)
			})},
			credential{string(res) + " write", writer, of(granted)},
		)
	}
	// The expired token was issued for a second; creating the others
	// took about that long, but wait it out to be sure.
	time.Sleep(1100 * time.Millisecond)
	for _, rt := range m.Table {
		inside := m.Inside[rt.Need.Resource]
		path, body := m.Request(rt, inside)
		for _, c := range cols {
			want := c.want(rt)
			if want == skip {
				continue
			}
			code, hdr, raw := call(t, rt.Method, m.URL+path, c.secret, body)
			cell := fmt.Sprintf("%s %s as %s with %s: %d %.300s", rt.Method, path, rt.Pattern, c.name, code, raw)
			switch want {
			case unauthorized:
				if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s; want 401 with WWW-Authenticate: Bearer", cell)
				}
			case forbidden:
				if code != http.StatusForbidden {
					t.Errorf("%s; want 403", cell)
				}
			case allowed:
				if code == http.StatusUnauthorized || code == http.StatusForbidden || code >= 500 {
					t.Errorf("%s; want it allowed", cell)
				}
			case listedWith, listedWithout:
				if code != http.StatusOK {
					t.Errorf("%s; want 200", cell)
				} else if strings.Contains(raw, inside) != (want == listedWith) {
					t.Errorf("%s; want %q in it: %v", cell, inside, want == listedWith)
				}
			}
		}
	}
}

// granted is what a token with the route's access gets.
func granted(rt authhttp.Route) outcome {
	if isList(rt) {
		return listedWith
	}
	return allowed
}

// denied is what a token without the route's access gets.
func denied(rt authhttp.Route) outcome {
	switch {
	case rt.Need.AnyToken:
		return allowed
	case isList(rt) && rt.Need.Name == nil:
		return listedWithout
	}
	return forbidden // a list of a named prefix the token reaches none of too
}

// isList says the route lists what the token may read, filtering rather
// than refusing.
func isList(rt authhttp.Route) bool { return rt.Method == http.MethodGet && rt.Need.InHandler }

// call is Call answering the raw body, as a string.
func call(t testing.TB, method, url, secret, body string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		return res.StatusCode, res.Header, ""
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}
