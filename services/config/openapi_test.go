package config_test

// This file checks api/openapi.json against the service as implemented:
//
//   - every request the end-to-end tests make goes through client, whose
//     transport (platform/web/openapitest) validates the request and the
//     response against the document with kin-openapi (status, headers and
//     body; for a watch, status and headers, then every server-sent event
//     as it is read);
//   - the chi route list is pinned in testdata/routes.golden (go test
//     -update rewrites it) and every route must be an operation of the
//     document, and every operation a route.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/services/config"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the router")

// client is the HTTP client of every test in this package: it validates
// each exchange against the OpenAPI document and fails the request (the
// caller sees an error) when either side does not match. TestMain makes it.
var client *http.Client

// e2eTests are the tests whose exchanges must all have been validated; when
// all of them ran, TestMain also requires a minimum number of validations.
var e2eTests = []string{
	"TestKVLifecycle", "TestTxnLeasesFencing", "TestBadInputChangesNothing", "TestIdempotencyKey",
	"TestWatchResumeAndCompaction", "TestAPIEdgeCases",
}

// minValidated is a floor well under what the tests above produce (about
// 150 responses), so that a refactor that silently bypasses the validator
// fails.
const minValidated = 100

func TestMain(m *testing.M) {
	flag.Parse()
	client = &http.Client{Transport: contract().Transport(http.DefaultTransport, true)}
	fuzzClient = &http.Client{Transport: contract().Transport(http.DefaultTransport, false), Timeout: time.Minute}
	code := m.Run()
	n, events := contract().Validated(), contract().Events()
	ran := 0
	for _, name := range e2eTests {
		if _, ok := e2eRan.Load(name); ok {
			ran++
		}
	}
	if ran > 0 {
		fmt.Fprintf(os.Stderr, "openapi: %d requests and responses validated against api/openapi.json, %d watch events\n", n, events)
		if testing.Verbose() {
			for _, s := range contract().Unexercised() {
				fmt.Fprintf(os.Stderr, "openapi: documented but not exercised: %s\n", s)
			}
		}
	}
	if code == 0 && ran == len(e2eTests) && n < minValidated {
		fmt.Fprintf(os.Stderr, "FAIL: only %d responses were validated against the OpenAPI document, want at least %d\n", n, minValidated)
		code = 1
	}
	// A test that leaves a goroutine behind (a replica's log, server,
	// expiry or watch loop) fails the package. The clients' idle keep-alive
	// connections (http.DefaultTransport's) outlive the tests by design.
	client.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(qlogtest.IgnoreNATSLeaks()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// e2eRan records which top-level tests started a node.
var e2eRan sync.Map

func init() {
	openapi3filter.RegisterBodyDecoder("application/json", lenientJSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("application/problem+json", lenientJSONBodyDecoder)
}

// lenientJSONBodyDecoder is kin-openapi's JSON decoder except for numbers
// beyond float64's range, such as 1e400: kin-openapi converts every number
// to a float64 to check it and refuses those outright, though they are
// valid JSON and the service stores values as sent (schema JSONValue). So
// they become ±MaxFloat64 first; a schema that constrains a number (every
// integer of the service's own fields) still refuses the clamped value.
func lenientJSONBodyDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	return v, nil
}

// decodeJSON decodes one JSON document, clamping numbers beyond float64.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return clampNumbers(v), nil
}

func clampNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if _, err := v.Float64(); err != nil {
			if strings.HasPrefix(string(v), "-") {
				return -math.MaxFloat64
			}
			return math.MaxFloat64
		}
	case []any:
		for i := range v {
			v[i] = clampNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = clampNumbers(v[k])
		}
	}
	return v
}

// contract loads api/openapi.json once, with the service's own routing
// and watch events (see checkEvent).
var contract = sync.OnceValue(func() *openapitest.Contract {
	c, err := openapitest.Load("api/openapi.json")
	if err != nil {
		panic(err)
	}
	// The key of /v1/kv/{key} contains '/', which OpenAPI path templating
	// cannot match (a template parameter is one segment): a path under
	// /v1/kv/ is routed as chi does with /v1/kv/*, the key the whole rest.
	c.Route = c.RestOfPath("/v1/kv/{key}", "key")
	c.Event = func(event, id, data string) error { return checkEvent(c, event, id, data) }
	return c
})

// checkEvent checks one watch event: put and delete carry an id (the
// revision) and WatchEventData whose entry is at that revision; error
// carries WatchErrorData; shutdown carries {}.
func checkEvent(c *openapitest.Contract, event, id, data string) error {
	v, err := decodeJSON([]byte(data))
	if err != nil {
		return fmt.Errorf("openapi: watch event %q data %q is not JSON: %v", event, data, err)
	}
	var schema string
	switch event {
	case "put", "delete":
		rev, err := strconv.ParseInt(id, 10, 64)
		if err != nil || rev <= 0 {
			return fmt.Errorf("openapi: watch event %q has id %q, want a revision", event, id)
		}
		schema = "WatchEventData"
		if m, ok := v.(map[string]any); ok {
			if e, ok := m["entry"].(map[string]any); ok && e["modRevision"] != json.Number(id) {
				return fmt.Errorf("openapi: watch event id %d but entry.modRevision %v", rev, e["modRevision"])
			}
		}
	case "error":
		schema = "WatchErrorData"
	case "shutdown":
		if data != "{}" {
			return fmt.Errorf("openapi: shutdown event data %q, want {}", data)
		}
		return nil
	default:
		return fmt.Errorf("openapi: undocumented watch event %q", event)
	}
	if err := c.VisitSchema(schema, v); err != nil {
		return fmt.Errorf("openapi: watch event %q data does not match the document: %v\ndata: %s", event, err, data)
	}
	return nil
}

// openAPIPath maps a chi pattern to the document's path template.
func openAPIPath(pattern string) string {
	if p, ok := strings.CutSuffix(pattern, "/*"); ok {
		return p + "/{key}"
	}
	return pattern
}

func TestRoutesGolden(t *testing.T) {
	contract().RoutesGolden(t, config.NewServer(nil, nil, nil), "testdata/routes.golden", *update, openAPIPath)
}

// TestValidatorRejects proves the validator is not vacuous: responses and
// requests that break the document are refused.
func TestValidatorRejects(t *testing.T) {
	v := contract()
	mk := func(method, url string, status int, ctype, body string, hdr ...string) (*http.Request, *http.Response) {
		req, _ := http.NewRequest(method, "http://example.test"+url, nil)
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Steward-Revision", "7")
		h.Set("X-Request-Id", "r1")
		h.Set("X-Content-Type-Options", "nosniff")
		for i := 0; i+1 < len(hdr); i += 2 {
			if hdr[i+1] == "" {
				h.Del(hdr[i])
			} else {
				h.Set(hdr[i], hdr[i+1])
			}
		}
		return req, &http.Response{StatusCode: status, Header: h}
	}
	entry := `{"key":"/a","value":1,"createRevision":3,"modRevision":7,"version":1}`
	good := []struct {
		method, url string
		status      int
		body        string
		hdr         []string
	}{
		{"GET", "/v1/kv/a/b", 200, entry, []string{"ETag", `"7"`}},
		{"GET", "/v1/kv?prefix=/a/", 200, `{"items":[],"revision":7,"next":null}`, nil},
	}
	for _, c := range good {
		req, res := mk(c.method, c.url, c.status, "application/json", c.body, c.hdr...)
		if err := v.Check(req, nil, res, []byte(c.body), true); err != nil {
			t.Errorf("a valid exchange was refused: %v", err)
		}
	}
	bad := []struct {
		name, method, url string
		status            int
		ctype, body       string
		hdr               []string
	}{
		{"unknown field in an entry", "GET", "/v1/kv/a", 200, "application/json", `{"key":"/a","createRevision":3,"modRevision":7,"version":1,"extra":1}`, []string{"ETag", `"7"`}},
		{"wrong type", "GET", "/v1/kv/a", 200, "application/json", `{"key":"/a","createRevision":"3","modRevision":7,"version":1}`, []string{"ETag", `"7"`}},
		{"missing ETag", "GET", "/v1/kv/a", 200, "application/json", entry, nil},
		{"missing X-Steward-Revision", "GET", "/v1/kv/a", 200, "application/json", entry, []string{"ETag", `"7"`, "X-Steward-Revision", ""}},
		{"undocumented status", "GET", "/v1/kv/a", 418, "application/problem+json", `{"type":"urn:steward:problem:invalid","title":"x","status":418,"instance":"/v1/kv/a","requestId":"r1"}`, nil},
		{"error that is not problem+json", "GET", "/v1/kv/a", 404, "application/json", `{"error":"nope"}`, nil},
		{"problem with an unknown member", "GET", "/v1/kv/a", 404, "application/problem+json", `{"type":"urn:steward:problem:not-found","title":"Not Found","status":404,"instance":"/v1/kv/a","requestId":"r1","hint":1}`, nil},
		{"list without next", "GET", "/v1/kv", 200, "application/json", `{"items":[],"revision":7}`, nil},
		{"405 answered with 200", "PATCH", "/v1/kv/a", 200, "application/json", entry, nil},
		{"invalid request answered 200", "GET", "/v1/kv/a?revision=-1", 200, "application/json", entry, []string{"ETag", `"7"`}},
	}
	for _, c := range bad {
		req, res := mk(c.method, c.url, c.status, c.ctype, c.body, c.hdr...)
		if err := v.Check(req, nil, res, []byte(c.body), true); err == nil {
			t.Errorf("%s: the validator accepted it", c.name)
		}
	}
	// An invalid request body: the txn schema refuses unknown fields.
	req, res := mk("POST", "/v1/txn", 200, "application/json", `{"succeeded":true,"results":[],"revision":7}`)
	req.Header.Set("Content-Type", "application/json")
	if err := v.Check(req, []byte(`{"bogus":1}`), res, []byte(`{"succeeded":true,"results":[],"revision":7}`), true); err == nil {
		t.Error("an invalid txn body answered 200 was accepted")
	}
	// And a watch event that breaks WatchEventData.
	s := v.Stream("example.test", io.NopCloser(strings.NewReader("id: 3\nevent: put\ndata: {\"entry\":{\"key\":\"/a\"}}\n\n")))
	if _, err := io.ReadAll(s); err == nil {
		t.Error("a watch event without the entry's revisions was accepted")
	}
	v.Failures("example.test")
}

// TestAPIEdgeCases exercises the statuses and routes the other end-to-end
// tests do not, all through the validating client.
func TestAPIEdgeCases(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 5)

	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/status", "/openapi.json"} {
		expect(t, call(t, "GET", n.url+p, ""), 200)
	}
	if r := call(t, "GET", n.url+"/metrics", ""); !strings.Contains(r.raw, `steward_qlog_apply_lag{replica="config-0",service="config"}`) {
		t.Fatalf("/metrics has no log metrics: %.300s", r.raw)
	}
	if r := call(t, "GET", n.url+"/openapi.json", ""); !strings.Contains(r.raw, `"/v1/kv/{key}"`) {
		t.Fatalf("/openapi.json is not the document: %.200s", r.raw)
	}
	expect(t, call(t, "GET", n.url+"/nope", ""), 404)
	expect(t, call(t, "POST", n.url+"/v1/history", ""), 405)
	r := expect(t, call(t, "GET", n.url+"/healthz", "", "X-Request-Id", "my-id-1"), 200)
	if r.header.Get("X-Request-Id") != "my-id-1" {
		t.Fatalf("X-Request-Id not echoed: %v", r.header)
	}

	// History with a tombstone; a compacted revision is 410.
	u := n.url + "/v1/kv/edge/k"
	first := expect(t, call(t, "PUT", u, `{"v":"<&>"}`), 200).num("modRevision")
	expect(t, call(t, "DELETE", u, ""), 200)
	expect(t, call(t, "PUT", u, `2`), 200)
	r = expect(t, call(t, "GET", n.url+"/v1/history?key=/edge/k&limit=10", ""), 200)
	if items := r.body["items"].([]any); len(items) < 2 || items[1].(map[string]any)["deleted"] != true {
		t.Fatalf("history = %v", r.body)
	}
	for i := range 6 {
		expect(t, call(t, "PUT", n.url+"/v1/kv/edge/fill", strconv.Itoa(i)), 200)
	}
	r = expect(t, call(t, "GET", fmt.Sprintf("%s?revision=%d", u, first), ""), 410)
	if r.num("compactRevision") <= first {
		t.Fatalf("410 = %v", r.body)
	}
	expect(t, call(t, "GET", fmt.Sprintf("%s?revision=%d", u, 1<<40), ""), 400)

	// Blocking reads: one that times out with the key as it is, one that a
	// write wakes.
	cur := expect(t, call(t, "GET", u, ""), 200).num("modRevision")
	expect(t, call(t, "GET", fmt.Sprintf("%s?index=%d&wait=100ms", u, cur), ""), 200)
	done := make(chan resp, 1)
	go func() { done <- call(t, "GET", fmt.Sprintf("%s?index=%d&wait=10s", u, cur), "") }()
	time.Sleep(100 * time.Millisecond)
	expect(t, call(t, "PUT", u, `3`), 200)
	if r := expect(t, <-done, 200); r.num("modRevision") <= cur {
		t.Fatalf("blocking read = %v", r.body)
	}
	expect(t, call(t, "GET", n.url+"/v1/kv/edge/none?index=0&wait=50ms", ""), 404)
	expect(t, call(t, "GET", u+"?index=1&revision=1", ""), 400)

	// Transactions: every op kind, both branches, an unknown lease (404),
	// a stale fence (409), too many ops (400), a body over the limit (413).
	txn := `{"compare":[{"key":"/edge/k","target":"version","op":">","value":0},{"key":"/edge/k","target":"value","op":"==","value":3}],
		"success":[{"put":{"key":"/edge/t/1","value":[1,{"a":null}]}},{"get":{"key":"/edge/t/1"}},{"get":{"key":"/edge/none"}},
			{"delete":{"key":"/edge/t/1"}},{"delete":{"prefix":"/edge/t/"}},{"delete":{"key":"/edge/none"}}],
		"failure":[]}`
	r = expect(t, call(t, "POST", n.url+"/v1/txn", txn), 200)
	if r.body["succeeded"] != true || len(r.body["results"].([]any)) != 6 {
		t.Fatalf("txn = %v", r.body)
	}
	expect(t, call(t, "POST", n.url+"/v1/txn", `{"success":[{"put":{"key":"/edge/l","value":1,"lease":424242}}]}`), 404)
	expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "X-Steward-Fence", "edge:5"), 200)
	r = expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "X-Steward-Fence", "edge:4"), 409)
	if r.num("fenceToken") != 5 {
		t.Fatalf("409 = %v", r.body)
	}
	expect(t, call(t, "DELETE", n.url+"/v1/kv?prefix=/edge/", "", "X-Steward-Fence", "edge:4"), 409)
	expect(t, call(t, "DELETE", u, "", "X-Steward-Fence", "edge:4"), 409)
	ops := strings.TrimSuffix(strings.Repeat(`{"get":{"key":"/a"}},`, 129), ",")
	if r := expect(t, call(t, "POST", n.url+"/v1/txn", `{"success":[`+ops+`]}`), 400); r.num("limit") != 128 {
		t.Fatalf("129 ops = %v", r.body)
	}
	expect(t, call(t, "POST", n.url+"/v1/txn", `{"x":`+strings.Repeat(" ", 5<<20)+`1}`), 413)
	expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "Content-Type", "text/plain"), 415)

	// Leases: read, keep alive, revoke (its keys go), then 404 everywhere.
	r = expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"1m"}`), 201)
	lease := r.num("id")
	lu := fmt.Sprintf("%s/v1/leases/%d", n.url, lease)
	expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/kv/edge/leased?lease=%d", n.url, lease), `1`), 200)
	expect(t, call(t, "POST", n.url+"/v1/txn", fmt.Sprintf(`{"success":[{"put":{"key":"/edge/leased2","value":1,"lease":%d}}]}`, lease)), 200)
	expect(t, call(t, "GET", lu, ""), 200)
	expect(t, call(t, "POST", lu+"/keepalive", ""), 200)
	if r := expect(t, call(t, "DELETE", lu, ""), 200); len(r.body["keys"].([]any)) != 2 {
		t.Fatalf("revoke = %v", r.body)
	}
	expect(t, call(t, "GET", n.url+"/v1/kv/edge/leased", ""), 404)
	expect(t, call(t, "GET", lu, ""), 404)
	expect(t, call(t, "POST", lu+"/keepalive", ""), 404)
	expect(t, call(t, "DELETE", lu, ""), 404)
	expect(t, call(t, "GET", n.url+"/v1/leases/0", ""), 400)
	expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"1s"}`, "Content-Type", "text/plain"), 415)
	expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"`+strings.Repeat("1", 5000)+`s"}`), 413)

	// Conditional deletes and the DELETE-only rule.
	cur = expect(t, call(t, "GET", u, ""), 200).num("modRevision")
	expect(t, call(t, "DELETE", u, "", "If-None-Match", "*"), 400)
	r = expect(t, call(t, "DELETE", u, "", "If-Match", fmt.Sprintf(`"%d"`, cur)), 200)
	if r.header.Get("ETag") != fmt.Sprintf(`"%d"`, cur) {
		t.Fatalf("DELETE ETag = %q, want the deleted entry's %d", r.header.Get("ETag"), cur)
	}
	expect(t, call(t, "PUT", u, `1`, "If-Match", `"1"`), 412)
	expect(t, call(t, "PUT", u, `1`, "If-None-Match", "*"), 200)

	// Lists: default prefix, paging, keysOnly spelled 1.
	expect(t, call(t, "GET", n.url+"/v1/kv", ""), 200)
	expect(t, call(t, "GET", n.url+"/v1/kv?prefix=/edge&limit=5000&keysOnly=1&consistency=serializable", ""), 200)
	expect(t, call(t, "GET", n.url+"/v1/kv?keysOnly=maybe", ""), 400)
	expect(t, call(t, "GET", n.url+"/v1/kv?prefix=nope", ""), 400)

	// Watch: the problem answers before a stream starts.
	expect(t, call(t, "GET", n.url+"/v1/watch?prefix=/edge/&fromRevision=0", ""), 400)
	expect(t, call(t, "GET", n.url+"/v1/watch?key=/edge/k", "", "Last-Event-ID", "x"), 400)
	expect(t, call(t, "GET", n.url+"/v1/watch?key=edge", ""), 400)

	// A value under 1 MiB dense in characters JSON may escape ('<' would be
	// six bytes escaped) is stored: commands travel unescaped. A txn whose
	// values add up to more than one log entry holds is 413, not 500.
	if r := call(t, "PUT", u, `"`+strings.Repeat("<", 800_000)+`"`); r.status != 200 {
		t.Fatalf("PUT of 800 kB of '<' = %d, want 200", r.status)
	}
	before := n.rep.Log.Revision()
	big := make([]string, 5)
	for i := range big {
		big[i] = `{"put":{"key":"/edge/big","value":"` + strings.Repeat("x", 900_000) + `"}}`
	}
	r = expect(t, call(t, "POST", n.url+"/v1/txn", `{"success":[`+strings.Join(big, ",")+`]}`), 413)
	if r.num("limit") == 0 {
		t.Fatalf("413 = %v", r.body)
	}
	if after := n.rep.Log.Revision(); after != before {
		t.Fatalf("revision moved from %d to %d on oversized commands", before, after)
	}

	// An Idempotency-Key reused for a different kind of request is 409,
	// not a nil dereference.
	expect(t, call(t, "PUT", n.url+"/v1/kv/edge/idem", `1`, "Idempotency-Key", "edge-1"), 200)
	expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "Idempotency-Key", "edge-1"), 409)
	expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"10s"}`, "Idempotency-Key", "edge-1"), 409)
	expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "Idempotency-Key", "edge-2"), 200)
	expect(t, call(t, "PUT", n.url+"/v1/kv/edge/idem", `1`, "Idempotency-Key", "edge-2"), 409)
	expect(t, call(t, "DELETE", n.url+"/v1/kv/edge/idem", "", "Idempotency-Key", "edge-2"), 409)
	r = expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"10s"}`, "Idempotency-Key", "edge-3"), 201)
	lu = fmt.Sprintf("%s/v1/leases/%d", n.url, r.num("id"))
	expect(t, call(t, "POST", n.url+"/v1/txn", `{}`, "Idempotency-Key", "edge-4"), 200)
	expect(t, call(t, "POST", lu+"/keepalive", "", "Idempotency-Key", "edge-4"), 409)
	expect(t, call(t, "DELETE", lu, "", "Idempotency-Key", "edge-4"), 409)
	expect(t, call(t, "DELETE", n.url+"/v1/leases/-3", ""), 400)

	// A replica that stopped serving answers 503 everywhere but /healthz.
	if err := n.rep.Close(); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, "GET", n.url+"/healthz", ""), 200)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/readyz", ""},
		{"GET", "/v1/kv/edge/k", ""},
		{"PUT", "/v1/kv/edge/k", "1"},
		{"DELETE", "/v1/kv/edge/k", ""},
		{"GET", "/v1/kv", ""},
		{"DELETE", "/v1/kv?prefix=/", ""},
		{"POST", "/v1/txn", "{}"},
		{"GET", "/v1/watch?prefix=/", ""},
		{"GET", "/v1/history?key=/edge/k", ""},
		{"POST", "/v1/leases", `{"ttl":"10s"}`},
		{"GET", lu[len(n.url):], ""},
		{"POST", lu[len(n.url):] + "/keepalive", ""},
		{"DELETE", lu[len(n.url):], ""},
	} {
		expect(t, call(t, c.method, n.url+c.path, c.body), 503)
	}
}
