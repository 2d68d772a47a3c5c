package election_test

// api/openapi.json is checked against the service as implemented: every
// exchange of the end-to-end tests goes through apiClient (or, in the
// fuzz targets, fuzzClient), which validates it with platform's
// openapitest, watch events included; the chi route list is pinned in
// testdata/routes.golden (go test -update rewrites it) and must equal the
// document's operations.

import (
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/services/election"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the router")

// loadContract loads api/openapi.json with the watch's events: current,
// elected, resigned and expired carry a Leadership, vacant a Vacant,
// error a WatchErrorData, shutdown {}; an id is a revision.
func loadContract() (*openapitest.Contract, error) {
	c, err := openapitest.Load("api/openapi.json")
	if err != nil {
		return nil, err
	}
	c.Event = c.EventSchemas(map[string]string{"current": "Leadership", "elected": "Leadership", "resigned": "Leadership",
		"expired": "Leadership", "vacant": "Vacant", "error": "WatchErrorData"})
	return c, nil
}

func TestRoutesGolden(t *testing.T) {
	contractDoc.RoutesGolden(t, election.NewServer(nil, nil, nil), "testdata/routes.golden", *update, nil)
}

// TestContractRejects shows the validator is not vacuous.
func TestContractRejects(t *testing.T) {
	c := contractDoc
	mk := func(method, url string, status int, ctype string) (*http.Request, *http.Response) {
		req, _ := http.NewRequest(method, "http://example.test"+url, nil)
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Steward-Revision", "7")
		h.Set("X-Request-Id", "r1")
		h.Set("X-Content-Type-Options", "nosniff")
		return req, &http.Response{StatusCode: status, Header: h}
	}
	good := `{"name":"a","leader":"c1","term":1,"token":5,"ttl":"2s","expiresAt":"2030-01-01T00:00:02Z","queue":0}`
	req, res := mk("GET", "/v1/elections/a", 200, "application/json")
	if err := c.Check(req, nil, res, []byte(good), true); err != nil {
		t.Fatalf("a valid exchange was refused: %v", err)
	}
	for name, body := range map[string]string{
		"token 0":         strings.Replace(good, `"token":5`, `"token":0`, 1),
		"unknown field":   strings.Replace(good, `"queue":0`, `"queue":0,"x":1`, 1),
		"missing leader":  strings.Replace(good, `"leader":"c1",`, ``, 1),
		"name with slash": strings.Replace(good, `"name":"a"`, `"name":"a/b"`, 1),
	} {
		req, res := mk("GET", "/v1/elections/a", 200, "application/json")
		if err := c.Check(req, nil, res, []byte(body), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	req, res = mk("GET", "/v1/elections/a", 418, "application/problem+json")
	if err := c.Check(req, nil, res, []byte(`{"type":"urn:steward:problem:invalid","title":"x","status":418,"instance":"/","requestId":"r1"}`), true); err == nil {
		t.Error("an undocumented status was accepted")
	}
	req, res = mk("POST", "/v1/elections/a/renew", 200, "application/json")
	if err := c.Check(req, []byte(`{"candidate":"c1","token":0}`), res, []byte(good), true); err == nil {
		t.Error("an invalid request answered 200 was accepted")
	}
	for _, ev := range []string{"id: 3\nevent: elected\ndata: {\"name\":\"a\"}\n\n", "event: bogus\ndata: {}\n\n", "id: x\nevent: vacant\ndata: {\"name\":\"a\"}\n\n"} {
		if _, err := io.ReadAll(c.Stream("example.test", io.NopCloser(strings.NewReader(ev)))); err == nil {
			t.Errorf("event %q was accepted", ev)
		}
	}
	c.Failures("example.test")
}
