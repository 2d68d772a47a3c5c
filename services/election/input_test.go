package election_test

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestBadInputChangesNothing sends malformed requests: each gets a 4xx
// problem and the revision does not move.
func TestBadInputChangesNothing(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	tok := expect(t, call(t, "POST", n.url+"/v1/elections/a/campaign", campaignBody("c1", "1m")), 200).num("token")
	before := n.rep.Log.Revision()
	bigValue := `{"candidate":"c","ttl":"1s","value":"` + strings.Repeat("x", 70<<10) + `"}`
	cases := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":"1s"`, nil, 400},
		{"POST", "/v1/elections/a/campaign", ``, nil, 400},
		{"POST", "/v1/elections/a/campaign", `null`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":"1s","x":1}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":"999ms"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":"61m"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":10}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"","ttl":"1s"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"a\u0001b","ttl":"1s"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"` + strings.Repeat("c", 257) + `","ttl":"1s"}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", `{"candidate":"c","ttl":"1s"} {}`, nil, 400},
		{"POST", "/v1/elections/a/campaign", bigValue, nil, 413},
		{"POST", "/v1/elections/a/campaign", campaignBody("c", "1s"), []string{"Content-Type", "text/plain"}, 415},
		{"POST", "/v1/elections/a/campaign?wait=forever", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/a/campaign?wait=6m", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/a/campaign?wait=-1s", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/a%2Fb/campaign", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/a b/campaign", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/" + strings.Repeat("n", 129) + "/campaign", campaignBody("c", "1s"), nil, 400},
		{"POST", "/v1/elections/a/renew", `{"candidate":"c1","token":0}`, nil, 400},
		{"POST", "/v1/elections/a/renew", `{"candidate":"c1","token":-3}`, nil, 400},
		{"POST", "/v1/elections/a/renew", `{"candidate":"c1","token":"1"}`, nil, 400},
		{"POST", "/v1/elections/a/renew", `{"candidate":"c1"}`, nil, 400},
		{"POST", "/v1/elections/a/resign", `{"token":1}`, nil, 400},
		{"POST", "/v1/elections/a/resign", `{"candidate":"c1","token":1.5}`, nil, 400},
		{"POST", "/v1/elections/a/resign", `{"candidate":"c1","token":1,"ttl":"1s"}`, nil, 400},
		{"POST", "/v1/elections/a/resign", `{"candidate":"c1","token":1}` + strings.Repeat(" ", 5000), nil, 413},
		{"GET", "/v1/elections/a?consistency=eventual", ``, nil, 400},
		{"GET", "/v1/elections?limit=0", ``, nil, 400},
		{"GET", "/v1/elections?after=a/b", ``, nil, 400},
		{"GET", "/v1/elections/a/watch?fromRevision=0", ``, nil, 400},
		{"GET", "/v1/elections/a/watch", ``, []string{"Last-Event-ID", "x"}, 400},
		{"GET", "/v1/elections/a.b:c/watch", ``, nil, 400},
		{"DELETE", "/v1/elections/a", ``, nil, 405},
		{"PUT", "/v1/elections/a/campaign", campaignBody("c", "1s"), nil, 405},
		{"GET", "/v1/nothing", ``, nil, 404},
	}
	for _, tc := range cases {
		r := call(t, tc.method, n.url+tc.path, tc.body, tc.hdr...)
		if r.status != tc.status {
			t.Errorf("%s %s %.60s = %d, want %d: %s", tc.method, tc.path, tc.body, r.status, tc.status, r.raw)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q, want problem+json", tc.method, tc.path, ct)
		}
	}
	if after := n.rep.Log.Revision(); after != before {
		t.Fatalf("revision moved from %d to %d on bad input", before, after)
	}
	if r := expect(t, call(t, "GET", n.url+"/v1/elections/a", ""), 200); r.num("token") != tok || r.str("leader") != "c1" {
		t.Fatalf("the election changed: %s", r.raw)
	}
}

// TestOpsAndUnavailable covers the operational endpoints, Idempotency-Key
// and what a replica that stopped serving answers.
func TestOpsAndUnavailable(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/status", "/openapi.json"} {
		expect(t, call(t, "GET", n.url+p, ""), 200)
	}
	if r := call(t, "GET", n.url+"/openapi.json", ""); !strings.Contains(r.raw, `"/v1/elections/{name}/campaign"`) {
		t.Fatalf("/openapi.json is not the document: %.200s", r.raw)
	}
	u := n.url + "/v1/elections/idem"
	a := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "1m"), "Idempotency-Key", "k1"), 200)
	b := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "1m"), "Idempotency-Key", "k1"), 200)
	if revision(t, a) != revision(t, b) {
		t.Fatalf("a retry with the same Idempotency-Key took effect again: revisions %d and %d", revision(t, a), revision(t, b))
	}
	tok := a.num("token")
	expect(t, call(t, "POST", u+"/renew", tokenBody("c1", tok), "Idempotency-Key", "k1"), 409)
	expect(t, call(t, "POST", u+"/renew", tokenBody("c1", tok), "Idempotency-Key", "k2"), 200)
	expect(t, call(t, "POST", u+"/resign", tokenBody("c1", tok), "Idempotency-Key", "k2"), 409)

	n.kill()
	n.start() // the same replica again, then closed under its server
	if err := n.rep.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, "GET", n.url+"/healthz", ""), 200)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/readyz", ""},
		{"GET", "/v1/elections", ""},
		{"GET", "/v1/elections/idem", ""},
		{"GET", "/v1/elections/idem/watch", ""},
		{"POST", "/v1/elections/idem/campaign", campaignBody("c1", "1m")},
		{"POST", "/v1/elections/idem/renew", tokenBody("c1", tok)},
		{"POST", "/v1/elections/idem/resign", tokenBody("c1", tok)},
	} {
		expect(t, call(t, c.method, n.url+c.path, c.body), 503)
	}
}
