package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// rootSecret is the bootstrap token of the auth tests.
const rootSecret = "stw_test-root-secret-0123456789abcdefghijklmnop"

// badSecret is well formed but was never issued.
const badSecret = "stw_unknown-0123456789abcdefghijklmnopqrstuv"

// plainClient sends the auth tests' requests past the OpenAPI contract
// check (the document does not declare auth yet).
var plainClient = &http.Client{Timeout: 60 * time.Second}

// authRequest sends a request with the bearer secret (none if empty).
func authRequest(ctx context.Context, t *testing.T, method, url, secret, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res
}

// authCall sends a request and returns its answer; of an event stream
// only the status and headers.
func authCall(t *testing.T, method, url, secret, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := authRequest(ctx, t, method, url, secret, body)
	defer res.Body.Close()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		return res.StatusCode, res.Header, nil
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// mustCall is authCall expecting status want; it decodes the body into
// out unless out is nil.
func mustCall(t *testing.T, method, url, secret, body string, want int, out any) http.Header {
	t.Helper()
	code, hdr, b := authCall(t, method, url, secret, body)
	if code != want {
		t.Fatalf("%s %s = %d, want %d: %s", method, url, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
	return hdr
}

// startAuthNode serves a registry replica with STEWARD_AUTH on and the
// bootstrap root token, and waits until the root token works.
func startAuthNode(t *testing.T) string {
	t.Helper()
	t.Cleanup(plainClient.CloseIdleConnections)
	s := testSettings("registry-0", nil)
	// This replica votes on the auth log too (by default config-0 does).
	s.Auth, s.BootstrapToken, s.AuthVoters = true, rootSecret, []string{s.ReplicaID}
	n := startNode(t, qlogtest.StartServer(t).Connect(t), s)
	webtest.WaitFor(t, 30*time.Second, "root token accepted", func() bool {
		code, _, _ := authCall(t, "GET", n.url+"/v1/auth/whoami", rootSecret, "")
		return code == http.StatusOK
	})
	return n.url
}

// newToken creates a role with rules (a JSON list) and a token holding
// it, and returns the token's id and secret.
func newToken(t *testing.T, url, role, rules string) (string, string) {
	t.Helper()
	mustCall(t, "POST", url+"/v1/auth/roles", rootSecret, fmt.Sprintf(`{"name":%q,"rules":%s}`, role, rules), http.StatusCreated, nil)
	var tok struct{ ID, Secret string }
	mustCall(t, "POST", url+"/v1/auth/tokens", rootSecret, fmt.Sprintf(`{"description":"test","roles":[%q],"ttl":"1h"}`, role), http.StatusCreated, &tok)
	return tok.ID, tok.Secret
}

// The test roles: services under "web" (and the registry's leases) to
// read or write, and services under "api" to write.
const (
	readerRules = `[{"resource":"services","prefix":"web","access":"read"},{"resource":"leases","prefix":"","access":"read"}]`
	writerRules = `[{"resource":"services","prefix":"web","access":"write"},{"resource":"leases","prefix":"","access":"write"}]`
	otherRules  = `[{"resource":"services","prefix":"api","access":"write"}]`
)

// instanceDoc registers an instance with a TTL check.
const instanceDoc = `{"address":"127.0.0.1","port":8080,"check":{"ttl":"30s"}}`

// revoke revokes a token with the root token.
func revoke(t *testing.T, url, id string) {
	t.Helper()
	mustCall(t, "DELETE", url+"/v1/auth/tokens/"+id, rootSecret, "", http.StatusOK, nil)
}

// serviceNames lists the services a token sees.
func serviceNames(t *testing.T, url, secret string) []string {
	t.Helper()
	var list []catalog.Service
	mustCall(t, "GET", url+"/v1/services", secret, "", http.StatusOK, &list)
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

// TestAuthOnRegistry: with STEWARD_AUTH on, every route of the route
// table answers no token, a bad token, a token for another prefix, a
// read-only, a write and the root token as its access rule says; the
// matrix must cover every route of the table.
func TestAuthOnRegistry(t *testing.T) {
	url := startAuthNode(t)
	_, other := newToken(t, url, "api-writer", otherRules)
	_, reader := newToken(t, url, "web-reader", readerRules)
	_, writer := newToken(t, url, "web-writer", writerRules)

	// What each kind of route answers each token, in this order.
	_, expired := authtest.Token(t, url, rootSecret, "", "1s")
	time.Sleep(1100 * time.Millisecond)
	tokens := []struct{ name, secret string }{{"no token", ""}, {"bad token", badSecret}, {"expired root token", expired}, {"other prefix", other}, {"reader", reader}, {"writer", writer}, {"root", rootSecret}}
	const ok = 0 // the route's own success status
	// The other-prefix token holds no leases rule; the reader reads them.
	var (
		readRoute  = []int{401, 401, 401, 403, ok, ok, ok}
		writeRoute = []int{401, 401, 401, 403, 403, ok, ok}
		// The list answers every token with a services rule, filtered.
		listRoute = []int{401, 401, 401, ok, ok, ok, ok}
	)
	matrix := map[string]struct {
		path, body string
		success    int
		want       []int
	}{
		"GET /v1/services":                                    {"/v1/services", "", 200, listRoute},
		"GET /v1/services/{service}/instances":                {"/v1/services/web-1/instances", "", 200, readRoute},
		"PUT /v1/services/{service}/instances/{id}":           {"/v1/services/web-1/instances/i1", instanceDoc, 200, writeRoute},
		"GET /v1/services/{service}/instances/{id}":           {"/v1/services/web-1/instances/i1", "", 200, readRoute},
		"DELETE /v1/services/{service}/instances/{id}":        {"/v1/services/web-1/instances/i1", "", 200, writeRoute},
		"PUT /v1/services/{service}/instances/{id}/heartbeat": {"/v1/services/web-1/instances/i1/heartbeat", "", 200, writeRoute},
		"GET /v1/services/{service}/watch":                    {"/v1/services/web-1/watch", "", 200, readRoute},
		"DELETE /v1/services/{service}/protection":            {"/v1/services/web-1/protection", "", 204, writeRoute},
		"POST /v1/registry/leases":                            {"/v1/registry/leases", `{"ttl":"30s"}`, 201, writeRoute},
		"GET /v1/registry/leases/{id}":                        {"/v1/registry/leases/{lease}", "", 200, readRoute},
		"POST /v1/registry/leases/{id}/keepalive":             {"/v1/registry/leases/{lease}/keepalive", "", 200, writeRoute},
		"DELETE /v1/registry/leases/{id}":                     {"/v1/registry/leases/{lease}", "", 200, writeRoute},
	}
	for _, rt := range registry.RouteTable() {
		route := rt.Method + " " + rt.Pattern
		tc, found := matrix[route]
		if !found {
			t.Errorf("%s: not in the auth matrix", route)
			continue
		}
		for i, tok := range tokens {
			// Every call finds the instance and a lease to act on.
			mustCall(t, "PUT", url+"/v1/services/web-1/instances/i1", rootSecret, instanceDoc, http.StatusOK, nil)
			var lease catalog.Lease
			mustCall(t, "POST", url+"/v1/registry/leases", rootSecret, `{"ttl":"30s"}`, http.StatusCreated, &lease)
			path := strings.ReplaceAll(tc.path, "{lease}", fmt.Sprint(lease.ID))
			want := tc.want[i]
			if want == ok {
				want = tc.success
			}
			code, hdr, body := authCall(t, rt.Method, url+path, tok.secret, tc.body)
			if code != want {
				t.Errorf("%s as %s: %s %s = %d, want %d: %s", route, tok.name, rt.Method, path, code, want, body)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s as %s: 401 without WWW-Authenticate: Bearer", route, tok.name)
			}
			if code == http.StatusForbidden && !strings.Contains(string(body), `"resource"`) {
				t.Errorf("%s as %s: 403 does not name the resource: %s", route, tok.name, body)
			}
		}
	}
	if len(matrix) != len(registry.RouteTable()) {
		t.Errorf("the matrix has %d routes, the table %d", len(matrix), len(registry.RouteTable()))
	}

	// The service list shows each token only the services it may read.
	mustCall(t, "PUT", url+"/v1/services/api-1/instances/x", rootSecret, instanceDoc, http.StatusOK, nil)
	for _, tc := range []struct{ name, secret, prefix string }{{"reader", reader, "web"}, {"other prefix", other, "api"}} {
		names := serviceNames(t, url, tc.secret)
		if len(names) == 0 {
			t.Errorf("%s sees no service", tc.name)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, tc.prefix) {
				t.Errorf("%s's service list shows %s", tc.name, n)
			}
		}
	}
	if names := serviceNames(t, url, rootSecret); !slices.Contains(names, "api-1") || !slices.Contains(names, "web-1") {
		t.Errorf("root's service list = %v, want api-1 and web-1", names)
	}

	// A blocking query on the list wakes for what the reader may read,
	// not for a service it may not: a change to api-2 first leaves it
	// waiting until web-2 appears.
	hdr := mustCall(t, "GET", url+"/v1/services", reader, "", http.StatusOK, nil)
	index := hdr.Get(registry.IndexHeader)
	type answer struct {
		code  int
		names []string
	}
	done := make(chan answer, 1)
	go func() {
		res, err := plainClient.Do(bearer(t, url+"/v1/services?wait=20s&index="+index, reader))
		if err != nil {
			done <- answer{}
			return
		}
		defer res.Body.Close()
		var list []catalog.Service
		_ = json.NewDecoder(res.Body).Decode(&list)
		a := answer{code: res.StatusCode}
		for _, s := range list {
			a.names = append(a.names, s.Name)
		}
		done <- a
	}()
	time.Sleep(300 * time.Millisecond)
	mustCall(t, "PUT", url+"/v1/services/api-2/instances/x", rootSecret, instanceDoc, http.StatusOK, nil)
	time.Sleep(300 * time.Millisecond)
	mustCall(t, "PUT", url+"/v1/services/web-2/instances/x", rootSecret, instanceDoc, http.StatusOK, nil)
	select {
	case a := <-done:
		if a.code != http.StatusOK || !slices.Contains(a.names, "web-2") || slices.Contains(a.names, "api-2") {
			t.Errorf("reader's blocking list = %d %v, want 200 with web-2 and without api-2", a.code, a.names)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the reader's blocking list did not wake for web-2")
	}
}

// watchSets reads a watch stream's instance sets until it ends.
func watchSets(t *testing.T, body io.ReadCloser) <-chan catalog.InstanceSet {
	out := make(chan catalog.InstanceSet, 100)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			data, found := strings.CutPrefix(sc.Text(), "data: ")
			if !found {
				continue
			}
			var set catalog.InstanceSet
			if err := json.Unmarshal([]byte(data), &set); err != nil {
				t.Errorf("watch event %s: %v", data, err)
				continue
			}
			out <- set
		}
	}()
	return out
}

// nextAuthSet waits for the next instance set of a stream.
func nextAuthSet(t *testing.T, sets <-chan catalog.InstanceSet) catalog.InstanceSet {
	t.Helper()
	select {
	case set, open := <-sets:
		if !open {
			t.Fatal("the watch ended")
		}
		return set
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event in 10s")
	}
	return catalog.InstanceSet{}
}

// cutWithin revokes a token and fails unless ended (closed when the
// request it serves ends) closes within a second.
func cutWithin(t *testing.T, url, id, what string, ended <-chan struct{}) {
	t.Helper()
	revoke(t, url, id)
	revoked := time.Now()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatalf("the %s was still open 5s after its token was revoked", what)
	}
	if d := time.Since(revoked); d > time.Second {
		t.Errorf("the %s ended %v after the revocation, want within 1s", what, d)
	} else {
		t.Logf("the %s ended %v after the revocation was acknowledged", what, d)
	}
}

// TestAuthWatchAuditAndRevocation: a watch needs read access to its
// service; its events name the token of each write (by); revoking the
// token ends the watch, and a blocking query on the instances, within a
// second.
func TestAuthWatchAuditAndRevocation(t *testing.T) {
	url := startAuthNode(t)
	watcherID, watcher := newToken(t, url, "web-reader", readerRules)
	blockerID, blocker := newToken(t, url, "web-blocker", readerRules)
	writerID, writer := newToken(t, url, "web-writer", writerRules)
	mustCall(t, "PUT", url+"/v1/services/web-1/instances/a", writer, instanceDoc, http.StatusOK, nil)
	if code, _, body := authCall(t, "GET", url+"/v1/services/api-1/watch", watcher, ""); code != http.StatusForbidden {
		t.Fatalf("reader watching api-1 = %d, want 403: %s", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := authRequest(ctx, t, "GET", url+"/v1/services/web-1/watch", watcher, "")
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("watch = %d, want 200", res.StatusCode)
	}
	sets := watchSets(t, res.Body)
	if set := nextAuthSet(t, sets); len(set.Instances) != 1 || set.Instances[0].By != writerID {
		t.Fatalf("first set = %+v, want instance a by %s", set, writerID)
	}
	mustCall(t, "PUT", url+"/v1/services/web-1/instances/b", writer, instanceDoc, http.StatusOK, nil)
	if set := nextAuthSet(t, sets); set.By != writerID || len(set.Instances) != 2 || set.Instances[1].By != writerID {
		t.Fatalf("set after registering b = %+v, want a and b by %s", set, writerID)
	}
	mustCall(t, "DELETE", url+"/v1/services/web-1/instances/b", rootSecret, "", http.StatusOK, nil)
	if set := nextAuthSet(t, sets); set.By == "" || set.By == writerID || len(set.Instances) != 1 {
		t.Fatalf("set after root deregistered b = %+v, want a alone, by root's token", set)
	}
	var inst catalog.Instance
	mustCall(t, "GET", url+"/v1/services/web-1/instances/a", watcher, "", http.StatusOK, &inst)
	if inst.By != writerID {
		t.Errorf("instance a by %q, want %q", inst.By, writerID)
	}

	ended := make(chan struct{})
	go func() {
		for range sets {
		}
		close(ended)
	}()
	cutWithin(t, url, watcherID, "watch", ended)

	// A blocking query on the instances ends as its token is revoked.
	hdr := mustCall(t, "GET", url+"/v1/services/web-1/instances", blocker, "", http.StatusOK, nil)
	answered, blockEnded := make(chan int, 1), make(chan struct{})
	go func() {
		defer close(blockEnded)
		res, err := plainClient.Do(bearer(t, url+"/v1/services/web-1/instances?wait=30s&index="+hdr.Get(registry.IndexHeader), blocker))
		if err != nil {
			answered <- 0 // the connection closed
			return
		}
		res.Body.Close()
		answered <- res.StatusCode
	}()
	time.Sleep(300 * time.Millisecond)
	cutWithin(t, url, blockerID, "blocking query", blockEnded)
	if c := <-answered; c != 0 && c != http.StatusUnauthorized && c != http.StatusForbidden {
		t.Errorf("revoked blocking query = %d, want 401, 403 or a closed connection", c)
	} else {
		t.Logf("the revoked blocking query answered %d (0: the connection closed)", c)
	}
	if code, _, _ := authCall(t, "GET", url+"/v1/services/web-1/instances", watcher, ""); code != http.StatusUnauthorized {
		t.Errorf("revoked token: %d, want 401", code)
	}
}

// bearer is a GET request with a bearer secret.
func bearer(t *testing.T, url, secret string) *http.Request {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Error(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	return req
}
