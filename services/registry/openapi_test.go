package registry_test

// This file checks api/openapi.json against the service as implemented,
// with platform/web/openapitest:
//
//   - every exchange the package's tests make through httpClient (the
//     client of call and stream) or fuzzClient is validated against the
//     document with kin-openapi (status, headers, body; through
//     httpClient, a request the document calls invalid must get a 4xx),
//     and every event of a watch stream as it is read (watchEvents);
//   - TestOpenAPIContract exercises every operation of the document on a
//     replica run as the service runs (registry.Serve) and fails if one is
//     never exercised;
//   - the chi route list is pinned in testdata/routes.golden (go test -run
//     TestRoutesGolden -update rewrites it), and every route must be an
//     operation of the document and every operation a route.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/catalog"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the router")

// contract is api/openapi.json; TestMain loads it and makes httpClient and
// fuzzClient validate every exchange against it.
var contract *openapitest.Contract

// loadContract loads api/openapi.json with the watch's event checks.
func loadContract() (*openapitest.Contract, error) {
	c, err := openapitest.Load("api/openapi.json")
	if err != nil {
		return nil, err
	}
	c.StreamEvents = func(req *http.Request) func(event, id, data string) error { return watchEvents(c, req) }
	return c, nil
}

// watchEvents checks the events of the watch req opened: instances
// carries an id (its revision) and an InstanceSet of the watched service
// at that revision, sorted by id, whose instances pass the stream's
// filters, at a revision above the stream's previous event; error carries
// WatchErrorData; shutdown carries {}.
func watchEvents(c *openapitest.Contract, req *http.Request) func(event, id, data string) error {
	q := req.URL.Query()
	service := strings.TrimSuffix(strings.TrimPrefix(req.URL.Path, "/v1/services/"), "/watch")
	filter := catalog.Filter{Status: catalog.Status(q.Get("status")), Tag: q.Get("tag"), Zone: q.Get("zone")}
	// -1: the first set may be at revision 0, a registry nothing was
	// written to yet.
	lastRev := int64(-1)
	return func(event, id, data string) error {
		var v any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			return fmt.Errorf("openapi: watch event %q data %q is not JSON: %v", event, data, err)
		}
		var schema string
		switch event {
		case "instances":
			schema = "InstanceSet"
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
			return fmt.Errorf("openapi: watch event %q data does not match %s: %v\ndata: %s", event, schema, err, data)
		}
		if event != "instances" {
			return nil
		}
		var set registry.InstanceSet
		if err := json.Unmarshal([]byte(data), &set); err != nil {
			return err
		}
		if want := strconv.FormatInt(set.Revision, 10); set.Revision > 0 && id != want || set.Revision == 0 && id != "" {
			return fmt.Errorf("openapi: instances event id %q at revision %d", id, set.Revision)
		}
		if set.Service != service || set.Revision <= lastRev {
			return fmt.Errorf("openapi: instances event of %q at revision %d on the stream of %q after revision %d", set.Service, set.Revision, service, lastRev)
		}
		lastRev = set.Revision
		for i, inst := range set.Instances {
			if inst.Service != service || !filter.Match(&inst) || i > 0 && set.Instances[i-1].ID >= inst.ID {
				return fmt.Errorf("openapi: instances event %s: instance %s/%s is out of order or does not pass the filter %+v", data, inst.Service, inst.ID, filter)
			}
		}
		return nil
	}
}

// waitSet reads instances events until one satisfies ok.
func waitSet(t testing.TB, events <-chan sseEvent, ok func(registry.InstanceSet) bool) (registry.InstanceSet, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		set, id := nextSet(t, events, time.Until(deadline))
		if ok(set) {
			return set, id
		}
	}
}

// noEvent fails t if an event arrives within d.
func noEvent(t testing.TB, events <-chan sseEvent, d time.Duration) {
	t.Helper()
	select {
	case ev := <-events:
		t.Fatalf("event %q (id %s) %s, want none", ev.typ, ev.id, ev.data)
	case <-time.After(d):
	}
}

func TestRoutesGolden(t *testing.T) {
	contract.RoutesGolden(t, registry.NewServer(nil, nil, false, nil, nil), "testdata/routes.golden", *update, nil)
}

// TestValidatorRejects proves the validator is not vacuous: exchanges and
// watch events that break the document are refused.
func TestValidatorRejects(t *testing.T) {
	c := contract
	const host = "validator.test"
	mk := func(method, path string, status int, ctype string, hdr ...string) (*http.Request, *http.Response) {
		req, _ := http.NewRequest(method, "http://"+host+path, nil)
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Steward-Revision", "7")
		h.Set("X-Steward-Index", "7")
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
	inst := `{"service":"web","id":"a","address":"10.0.0.1","port":80,"tags":[],"metadata":{},"weight":1,"status":"passing","statusSince":"2026-01-02T03:04:05Z","createRevision":3,"modRevision":7}`
	good := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/v1/services/web/instances/a", 200, inst},
		{"GET", "/v1/services/web/instances?status=passing", 200, "[" + inst + "]"},
		{"GET", "/v1/services", 200, `[{"name":"web","instances":1,"passing":1,"warning":0,"critical":0,"tags":[],"protected":false,"modRevision":7}]`},
	}
	for _, g := range good {
		req, res := mk(g.method, g.path, g.status, "application/json")
		if err := c.Check(req, nil, res, []byte(g.body), true); err != nil {
			t.Errorf("a valid exchange was refused: %v", err)
		}
	}
	problem := func(status int, typ string) string {
		return fmt.Sprintf(`{"type":"urn:steward:problem:%s","title":"x","status":%d,"instance":"/v1/services/web/instances/a","requestId":"r1"}`, typ, status)
	}
	bad := []struct {
		name, method, path string
		status             int
		ctype, body        string
		hdr                []string
	}{
		{"unknown field in an instance", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"weight":1`, `"weight":1,"extra":1`, 1), nil},
		{"status outside the enum", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"passing"`, `"healthy"`, 1), nil},
		{"weight out of range", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"weight":1`, `"weight":1001`, 1), nil},
		{"tags null", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"tags":[]`, `"tags":null`, 1), nil},
		{"a ttl check with an interval", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"weight":1`, `"weight":1,"check":{"ttl":"10s","interval":"5s"}`, 1), nil},
		{"an http check without its interval", "GET", "/v1/services/web/instances/a", 200, "application/json", strings.Replace(inst, `"weight":1`, `"weight":1,"check":{"http":"http://a/","timeout":"1s"}`, 1), nil},
		{"missing X-Steward-Revision", "GET", "/v1/services/web/instances/a", 200, "application/json", inst, []string{"X-Steward-Revision", ""}},
		{"list without X-Steward-Index", "GET", "/v1/services/web/instances", 200, "application/json", "[" + inst + "]", []string{"X-Steward-Index", ""}},
		{"lease without instances", "GET", "/v1/registry/leases/4", 200, "application/json", `{"id":4,"ttl":"10s","expiresAt":"2026-01-02T03:04:05Z","instances":null}`, nil},
		{"undocumented status", "GET", "/v1/services/web/instances/a", 418, "application/problem+json", problem(418, "invalid"), nil},
		{"problem of the wrong kind", "GET", "/v1/services/web/instances/a", 404, "application/problem+json", problem(404, "invalid"), nil},
		{"error that is not problem+json", "GET", "/v1/services/web/instances/a", 404, "application/json", `{"error":"nope"}`, nil},
		{"problem with an unknown member", "GET", "/v1/services/web/instances/a", 404, "application/problem+json", strings.Replace(problem(404, "not-found"), `"requestId"`, `"hint":1,"requestId"`, 1), nil},
		{"405 answered 200", "PATCH", "/v1/services/web/instances/a", 200, "application/json", inst, nil},
		{"invalid service name answered 200", "GET", "/v1/services/Web/instances/a", 200, "application/json", inst, nil},
		{"instance id .. answered 200", "GET", "/v1/services/web/instances/..", 200, "application/json", inst, nil},
		{"invalid status filter answered 200", "GET", "/v1/services/web/instances?status=up", 200, "application/json", "[]", nil},
	}
	for _, b := range bad {
		req, res := mk(b.method, b.path, b.status, b.ctype, b.hdr...)
		if err := c.Check(req, nil, res, []byte(b.body), true); err == nil {
			t.Errorf("%s: the validator accepted it", b.name)
		}
	}
	// Registrations the document refuses, answered 200.
	for _, body := range []string{
		`{"address":"10.0.0.1"}`,
		`{"address":"10.0.0.1","port":80,"Weight":2}`,
		`{"address":"10.0.0.1","port":70000}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","http":"http://a/"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"soon"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"http":"ftp://a/"}}`,
		`{"address":"10.0.0.1","port":80,"tags":["a\u0001"]}`,
	} {
		req, res := mk("PUT", "/v1/services/web/instances/a", 200, "application/json")
		req.Header.Set("Content-Type", "application/json")
		if err := c.Check(req, []byte(body), res, []byte(inst), true); err == nil {
			t.Errorf("registration %s answered 200 was accepted", body)
		}
	}
	// Watch events that break InstanceSet or the stream's rules.
	for _, events := range []string{
		"id: 3\nevent: instances\ndata: {\"service\":\"web\",\"revision\":3,\"protected\":false,\"instances\":null}\n\n",
		"id: 4\nevent: instances\ndata: {\"service\":\"web\",\"revision\":3,\"protected\":false,\"instances\":[]}\n\n",
		"id: 3\nevent: instances\ndata: {\"service\":\"api\",\"revision\":3,\"protected\":false,\"instances\":[]}\n\n",
		"id: 3\nevent: instances\ndata: {\"service\":\"web\",\"revision\":3,\"protected\":false,\"instances\":[]}\n\nid: 3\nevent: instances\ndata: {\"service\":\"web\",\"revision\":3,\"protected\":false,\"instances\":[]}\n\n",
		"id: 3\nevent: instances\ndata: {\"service\":\"web\",\"revision\":3,\"protected\":false,\"instances\":[" + strings.Replace(inst, `"passing"`, `"critical"`, 1) + "]}\n\n",
		"event: put\ndata: {}\n\n",
		"event: shutdown\ndata: null\n\n",
		"retry: 10\n\n",
	} {
		req, _ := http.NewRequest("GET", "http://"+host+"/v1/services/web/watch?status=passing", nil)
		if _, err := io.ReadAll(c.StreamFor(req, io.NopCloser(strings.NewReader(events)))); err == nil {
			t.Errorf("watch stream %q was accepted", events)
		}
	}
	c.Failures(host)
}

// TestOpenAPIContract exercises every operation of the document, and the
// statuses a test can provoke, on a replica run as the service runs; every
// exchange is validated by httpClient's transport, watch events included.
func TestOpenAPIContract(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	hosts := []string{strings.TrimPrefix(n.url, "http://")}
	inst := func(svc, id string) string { return n.url + "/v1/services/" + svc + "/instances/" + id }
	lease := func(id int64) string { return fmt.Sprintf("%s/v1/registry/leases/%d", n.url, id) }
	num := func(t testing.TB, r resp, field string) int64 {
		var m map[string]any
		r.decode(t, &m)
		f, _ := m[field].(float64)
		return int64(f)
	}

	t.Run("ops", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/status"} {
			expect(t, call(t, "GET", n.url+p, ""), 200)
		}
		doc, err := os.ReadFile("api/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		if r := expect(t, call(t, "GET", n.url+"/openapi.json", ""), 200); !bytes.Equal(r.raw, doc) {
			t.Fatal("GET /openapi.json is not api/openapi.json")
		}
		if r := expect(t, call(t, "GET", n.url+"/healthz", "", "X-Request-Id", "my-id-1"), 200); r.header.Get("X-Request-Id") != "my-id-1" {
			t.Fatalf("X-Request-Id not echoed: %v", r.header)
		}
		expect(t, call(t, "GET", n.url+"/nope", ""), 404)
		expect(t, call(t, "POST", n.url+"/v1/services", "{}"), 405)
		expect(t, call(t, "PATCH", inst("web", "a"), "{}"), 405)
	})

	// A check target on loopback (the replica runs with AllowLocal), for
	// an http and a tcp check.
	target := newTarget(t).srv

	t.Run("register", func(t *testing.T) {
		full := fmt.Sprintf(`{"address":"10.0.3.7","port":8080,"tags":["http","blue"],"metadata":{"commit":"4f2a","note":""},
			"zone":"eu-1a","version":"1.4.2","weight":10,"check":{"http":%q,"interval":"1s","timeout":"500ms","deregisterAfter":"1h"}}`, target.URL+"/healthz")
		got := expect(t, call(t, "PUT", inst("web", "web-1"), full), 200).instance(t)
		if got.Status != catalog.Critical || got.Output != catalog.AwaitingFirstCheck || got.Weight != 10 || got.Check == nil || got.Check.Interval.Std() != time.Second {
			t.Fatalf("registered %+v", got)
		}
		webtest.WaitFor(t, 20*time.Second, "web-1's first probe", func() bool { return statusOf(t, n.url, "web", "web-1") == catalog.Passing })
		expect(t, call(t, "PUT", inst("web", "web-2"), fmt.Sprintf(`{"address":"web-2.internal.example","port":9090,"zone":"eu-1b","check":{"tcp":%q,"interval":"1s"}}`, target.Listener.Addr())), 200)
		webtest.WaitFor(t, 20*time.Second, "web-2's first probe", func() bool { return statusOf(t, n.url, "web", "web-2") == catalog.Passing })
		r := expect(t, call(t, "PUT", inst("web", "web-3"), `{"address":"10.0.3.9","port":80,"tags":["blue"],"check":{"ttl":"1h","deregisterAfter":"1m"}}`), 200)
		if got := r.instance(t); got.Status != catalog.Passing || got.Weight != 1 || len(got.Tags) != 1 || got.Metadata == nil {
			t.Fatalf("registered %s", r.raw)
		}
		expect(t, call(t, "PUT", inst("web", "web-4"), `{"address":"fd00::4","port":443}`), 200)
		// Re-registering with the same check keeps the status it earned.
		if got := expect(t, call(t, "PUT", inst("web", "web-1"), full), 200).instance(t); got.Status != catalog.Passing {
			t.Fatalf("re-registered with the same check: %+v", got)
		}

		expect(t, call(t, "GET", inst("web", "web-1"), ""), 200)
		expect(t, call(t, "GET", inst("web", "web-1")+"?consistency=serializable", ""), 200)
		expect(t, call(t, "GET", inst("web", "nope"), ""), 404)
		expect(t, call(t, "GET", inst("web", "web-1")+"?consistency=eventual", ""), 400)
		expect(t, call(t, "GET", inst("Web", "web-1"), ""), 400)

		before := call(t, "GET", n.url+"/v1/services/web/instances", "")
		for _, b := range []struct{ name, id, body string }{
			{"unknown field", "bad", `{"address":"10.0.0.1","port":80,"colour":"red"}`},
			{"port as a string", "bad", `{"address":"10.0.0.1","port":"80"}`},
			{"malformed JSON", "bad", `{"address":"10.0.0.1",`},
			{"no body", "bad", ``},
			{"null", "bad", `null`},
			{"two documents", "bad", `{"address":"10.0.0.1","port":80} {}`},
			{"no port", "bad", `{"address":"10.0.0.1"}`},
			{"port 0", "bad", `{"address":"10.0.0.1","port":0}`},
			{"port 65536", "bad", `{"address":"10.0.0.1","port":65536}`},
			{"weight 0", "bad", `{"address":"10.0.0.1","port":80,"weight":0}`},
			{"weight 1001", "bad", `{"address":"10.0.0.1","port":80,"weight":1001}`},
			{"weight -1", "bad", `{"address":"10.0.0.1","port":80,"weight":-1}`},
			{"bad address", "bad", `{"address":"not an address","port":80}`},
			{"empty tag", "bad", `{"address":"10.0.0.1","port":80,"tags":[""]}`},
			{"65 tags", "bad", `{"address":"10.0.0.1","port":80,"tags":["` + strings.Repeat(`t","`, 64) + `t"]}`},
			{"bad duration", "bad", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10 seconds"}}`},
			{"ttl under 1s", "bad", `{"address":"10.0.0.1","port":80,"check":{"ttl":"500ms"}}`},
			{"two kinds of check", "bad", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","tcp":"10.0.0.1:80"}}`},
			{"no kind of check", "bad", `{"address":"10.0.0.1","port":80,"check":{"interval":"10s"}}`},
			{"ttl with an interval", "bad", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","interval":"10s"}}`},
			{"credentials in the check URL", "bad", `{"address":"10.0.0.1","port":80,"check":{"http":"http://u:p@10.0.0.1/"}}`},
			{"timeout over the interval", "bad", `{"address":"10.0.0.1","port":80,"check":{"tcp":"10.0.0.1:80","interval":"1s","timeout":"2s"}}`},
			{"bad service name", "", `{"address":"10.0.0.1","port":80}`},
			{"instance id ..", "..", `{"address":"10.0.0.1","port":80}`},
			{"instance id with *", "a*b", `{"address":"10.0.0.1","port":80}`},
		} {
			u := inst("web", b.id)
			if b.id == "" {
				u = inst("Web", "bad")
			}
			if r := call(t, "PUT", u, b.body); r.status != 400 {
				t.Errorf("%s: PUT %s = %d, want 400: %s", b.name, u, r.status, r.raw)
			}
		}
		expect(t, call(t, "PUT", inst("web", "bad")+"?lease=0", `{"address":"10.0.0.1","port":80}`), 400)
		expect(t, call(t, "PUT", inst("web", "bad")+"?lease=424242", `{"address":"10.0.0.1","port":80}`), 404)
		expect(t, call(t, "PUT", inst("web", "bad"), `{"address":"10.0.0.1","port":80}`, "Content-Type", "text/plain"), 415)
		expect(t, call(t, "PUT", inst("web", "bad"), `{"address":"10.0.0.1","port":80,"zone":"`+strings.Repeat("z", 70<<10)+`"}`), 413)
		after := call(t, "GET", n.url+"/v1/services/web/instances", "")
		if !bytes.Equal(before.raw, after.raw) || before.header.Get(registry.IndexHeader) != after.header.Get(registry.IndexHeader) {
			t.Fatalf("bad registrations changed the service:\n%s\n%s", before.raw, after.raw)
		}
	})

	t.Run("heartbeat", func(t *testing.T) {
		hb := inst("web", "web-3") + "/heartbeat"
		expect(t, call(t, "PUT", hb, ""), 200)
		if got := expect(t, call(t, "PUT", hb, `{"status":"warning","output":"queue depth 9000"}`), 200).instance(t); got.Status != catalog.Warning || got.Output != "queue depth 9000" {
			t.Fatalf("heartbeat warning: %+v", got)
		}
		if got := expect(t, call(t, "PUT", hb, `{}`), 200).instance(t); got.Status != catalog.Passing || got.Output != "" {
			t.Fatalf("heartbeat {}: %+v", got)
		}
		expect(t, call(t, "PUT", inst("web", "nope")+"/heartbeat", ""), 404)
		expect(t, call(t, "PUT", inst("web", "web-4")+"/heartbeat", ""), 409) // no ttl check
		expect(t, call(t, "PUT", hb, `{"status":"down"}`), 400)
		expect(t, call(t, "PUT", hb, `{"status":"passing","extra":1}`), 400)
		expect(t, call(t, "PUT", hb, `{"output":"`+strings.Repeat("o", 4097)+`"}`), 400)
		expect(t, call(t, "PUT", hb, `{"output":"`+strings.Repeat("o", 70<<10)+`"}`), 413)
		expect(t, call(t, "PUT", hb, `{}`, "Content-Type", "text/plain"), 415)
		expect(t, call(t, "PUT", inst("web", "a%20b")+"/heartbeat", ""), 400)
		expect(t, call(t, "DELETE", inst("web", "."), ""), 400)
	})

	t.Run("lists", func(t *testing.T) {
		r := expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200)
		var all []catalog.Instance
		r.decode(t, &all)
		if ids(all) != "web-1,web-2,web-3,web-4" {
			t.Fatalf("instances = %s", ids(all))
		}
		idx, _ := strconv.ParseInt(r.header.Get(registry.IndexHeader), 10, 64)
		for _, f := range []struct{ query, want string }{
			{"?status=passing&tag=blue", "web-1,web-3"},
			{"?zone=eu-1b", "web-2"},
			{"?tag=blue&zone=eu-1a&consistency=serializable", "web-1"},
			{"?status=critical", ""},
		} {
			if got := ids(instances(t, n.url, "web", f.query)); got != f.want {
				t.Errorf("instances%s = %q, want %q", f.query, got, f.want)
			}
		}
		if got := instances(t, n.url, "none", ""); len(got) != 0 {
			t.Fatalf("instances of an unknown service = %v", got)
		}
		expect(t, call(t, "GET", n.url+"/v1/services/web/instances?status=up", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services/web/instances?index=-1", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services/web/instances?index=1&wait=forever", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services/web/instances?index=1&wait=6m", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services/web_/instances", ""), 400)

		// A blocking query that times out answers the list as it is; one
		// that a change wakes answers the new list with a higher index.
		r = expect(t, call(t, "GET", fmt.Sprintf("%s/v1/services/web/instances?index=%d&wait=100ms", n.url, idx), ""), 200)
		if got := r.header.Get(registry.IndexHeader); got != strconv.FormatInt(idx, 10) {
			t.Fatalf("timed-out blocking query: index %s, want %d", got, idx)
		}
		woken := make(chan resp, 1)
		go func() {
			woken <- rawCall("GET", fmt.Sprintf("%s/v1/services/web/instances?index=%d&wait=20s", n.url, idx))
		}()
		time.Sleep(100 * time.Millisecond)
		expect(t, call(t, "PUT", inst("web", "web-5"), `{"address":"10.0.3.11","port":80}`), 200)
		select {
		case r := <-woken:
			var got []catalog.Instance
			r.decode(t, &got)
			if next, _ := strconv.ParseInt(r.header.Get(registry.IndexHeader), 10, 64); r.status != 200 || next <= idx || len(got) != 5 {
				t.Fatalf("woken blocking query = %d, index %d (was %d): %s", r.status, next, idx, r.raw)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a registration did not wake the blocking query")
		}

		r = expect(t, call(t, "GET", n.url+"/v1/services", ""), 200)
		var svcs []catalog.Service
		r.decode(t, &svcs)
		var names []string
		for _, s := range svcs {
			names = append(names, s.Name)
			if s.Name == "web" && (s.Instances != 5 || !slices.Equal(s.Tags, []string{"blue", "http"})) {
				t.Errorf("web = %+v", s)
			}
		}
		if !slices.Contains(names, registry.SelfService) || !slices.Contains(names, "web") || !slices.IsSorted(names) {
			t.Fatalf("services = %v", names)
		}
		sidx := r.header.Get(registry.IndexHeader)
		expect(t, call(t, "GET", n.url+"/v1/services?index="+sidx+"&wait=50ms&consistency=serializable", ""), 200)
		expect(t, call(t, "GET", n.url+"/v1/services?index=x", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services?consistency=strong", ""), 400)
	})

	t.Run("watch", func(t *testing.T) {
		w := n.url + "/v1/services/watched/watch"
		all := stream(t, w)
		waitSet(t, all, func(s registry.InstanceSet) bool { return len(s.Instances) == 0 })
		expect(t, call(t, "PUT", inst("watched", "a"), `{"address":"10.0.4.1","port":80,"tags":["blue"]}`), 200)
		waitSet(t, all, func(s registry.InstanceSet) bool { return ids(s.Instances) == "a" })
		blue := stream(t, w+"?status=passing&tag=blue")
		waitSet(t, blue, func(s registry.InstanceSet) bool { return ids(s.Instances) == "a" })
		expect(t, call(t, "PUT", inst("watched", "b"), `{"address":"10.0.4.2","port":80,"zone":"z"}`), 200)
		_, seenAB := waitSet(t, all, func(s registry.InstanceSet) bool { return ids(s.Instances) == "a,b" })
		// b is not blue: the filtered set did not change, so nothing is sent.
		noEvent(t, blue, 300*time.Millisecond)

		// Resuming where the client was: nothing until the next change.
		resumed := stream(t, w, "Last-Event-ID", seenAB)
		noEvent(t, resumed, 300*time.Millisecond)
		expect(t, call(t, "DELETE", inst("watched", "a"), ""), 200)
		expect(t, call(t, "DELETE", inst("watched", "b"), ""), 200)
		waitSet(t, resumed, func(s registry.InstanceSet) bool { return len(s.Instances) == 0 })
		// Resuming after every instance left gets the empty set at once.
		rev, _ := strconv.ParseInt(seenAB, 10, 64)
		for _, s := range []<-chan sseEvent{
			stream(t, w, "Last-Event-ID", seenAB),
			stream(t, fmt.Sprintf("%s?fromRevision=%d", w, rev+1)),
		} {
			if set, _ := nextSet(t, s, 10*time.Second); len(set.Instances) != 0 {
				t.Fatalf("resumed after the last instance left: %+v", set)
			}
		}

		expect(t, call(t, "GET", w+"?fromRevision=0", ""), 400)
		expect(t, call(t, "GET", w, "", "Last-Event-ID", "x"), 400)
		expect(t, call(t, "GET", w+"?status=up", ""), 400)
		expect(t, call(t, "GET", n.url+"/v1/services/Watched/watch", ""), 400)
	})

	t.Run("guard", func(t *testing.T) {
		// Three instances whose TTLs run out together: more than half of
		// the service failing at once engages the guard.
		events := stream(t, n.url+"/v1/services/guarded/watch")
		for _, id := range []string{"g1", "g2", "g3"} {
			expect(t, call(t, "PUT", inst("guarded", id), `{"address":"10.0.5.1","port":80,"check":{"ttl":"1s"}}`), 200)
		}
		waitSet(t, events, func(s registry.InstanceSet) bool { return s.Protected })
		r := expect(t, call(t, "GET", inst("guarded", "g1"), ""), 200)
		if got := r.instance(t); got.Status != catalog.Passing || got.Held == nil || got.Held.Status != catalog.Critical {
			t.Fatalf("guarded instance = %s", r.raw)
		}
		var svcs []catalog.Service
		expect(t, call(t, "GET", n.url+"/v1/services", ""), 200).decode(t, &svcs)
		if i := slices.IndexFunc(svcs, func(s catalog.Service) bool { return s.Name == "guarded" }); i < 0 || !svcs[i].Protected || svcs[i].Passing != 3 {
			t.Fatalf("services = %+v", svcs)
		}
		expect(t, call(t, "DELETE", n.url+"/v1/services/guarded/protection", ""), 204)
		waitSet(t, events, func(s registry.InstanceSet) bool {
			return !s.Protected && len(s.Instances) == 3 && s.Instances[0].Status == catalog.Critical
		})
		expect(t, call(t, "DELETE", n.url+"/v1/services/guarded/protection", ""), 204) // not protected: nothing to do
		expect(t, call(t, "DELETE", n.url+"/v1/services/nothing/protection", ""), 404)
		expect(t, call(t, "DELETE", n.url+"/v1/services/-bad!/protection", ""), 400)
	})

	t.Run("leases", func(t *testing.T) {
		r := expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"30s"}`), 201)
		id := num(t, r, "id")
		expect(t, call(t, "GET", lease(id), ""), 200)
		expect(t, call(t, "POST", lease(id)+"/keepalive", ""), 200)
		expect(t, call(t, "PUT", inst("leased", "l1")+fmt.Sprintf("?lease=%d", id), `{"address":"10.0.6.1","port":80}`), 200)
		if got := expect(t, call(t, "GET", inst("leased", "l1"), ""), 200).instance(t); got.Lease != id {
			t.Fatalf("leased instance = %+v", got)
		}
		var l catalog.Lease
		expect(t, call(t, "DELETE", lease(id), ""), 200).decode(t, &l)
		if !slices.Equal(l.Instances, []string{"leased/l1"}) {
			t.Fatalf("revoked lease = %+v", l)
		}
		expect(t, call(t, "GET", inst("leased", "l1"), ""), 404)
		expect(t, call(t, "GET", lease(id), ""), 404)
		expect(t, call(t, "POST", lease(id)+"/keepalive", ""), 404)
		expect(t, call(t, "DELETE", lease(id), ""), 404)
		for _, p := range []string{"/v1/registry/leases/0", "/v1/registry/leases/abc", "/v1/registry/leases/-3"} {
			expect(t, call(t, "GET", n.url+p, ""), 400)
		}
		expect(t, call(t, "POST", n.url+"/v1/registry/leases/x/keepalive", ""), 400)
		expect(t, call(t, "DELETE", n.url+"/v1/registry/leases/x", ""), 400)
		for _, body := range []string{`{"ttl":"500ms"}`, `{"ttl":"2h"}`, `{"ttl":10}`, `{}`, `{"ttl":"10s","id":1}`} {
			expect(t, call(t, "POST", n.url+"/v1/registry/leases", body), 400)
		}
		expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"10s"}`, "Content-Type", "text/plain"), 415)
		expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"`+strings.Repeat("1", 5000)+`s"}`), 413)
	})

	t.Run("idempotency", func(t *testing.T) {
		// A key first used for one kind of request and reused for another
		// is 409, not the first request's answer misread.
		expect(t, call(t, "DELETE", n.url+"/v1/services/web/protection", "", "Idempotency-Key", "k-clear"), 204)
		expect(t, call(t, "PUT", inst("web", "web-9"), `{"address":"10.0.3.99","port":80}`, "Idempotency-Key", "k-clear"), 409)
		expect(t, call(t, "PUT", inst("web", "web-3")+"/heartbeat", "", "Idempotency-Key", "k-clear"), 409)
		expect(t, call(t, "DELETE", inst("web", "web-4"), "", "Idempotency-Key", "k-clear"), 409)
		expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"10s"}`, "Idempotency-Key", "k-clear"), 409)
		r := expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"10s"}`, "Idempotency-Key", "k-grant"), 201)
		again := expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"10s"}`, "Idempotency-Key", "k-grant"), 201)
		if num(t, r, "id") != num(t, again, "id") {
			t.Fatalf("a retried grant granted another lease: %s, then %s", r.raw, again.raw)
		}
		expect(t, call(t, "POST", lease(num(t, r, "id"))+"/keepalive", "", "Idempotency-Key", "k-clear"), 409)
		expect(t, call(t, "DELETE", lease(num(t, r, "id")), "", "Idempotency-Key", "k-clear"), 409)
		expect(t, call(t, "DELETE", inst("web", "web-4"), "", "Idempotency-Key", "k-del"), 200)
		expect(t, call(t, "DELETE", inst("web", "web-4"), "", "Idempotency-Key", "k-del"), 200)
		expect(t, call(t, "DELETE", inst("web", "web-4"), ""), 404)
	})

	t.Run("unavailable", func(t *testing.T) {
		// A replica whose log is closed answers 503 everywhere but
		// /healthz, /metrics and /openapi.json.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep, err := registry.Open(ctx, testSettings("registry-closed", nil), qlogtest.StartServer(t).Connect(t), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Log.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(rep.Handler)
		defer srv.Close()
		hosts = append(hosts, strings.TrimPrefix(srv.URL, "http://"))
		expect(t, call(t, "GET", srv.URL+"/readyz", ""), 200)
		if err := rep.Close(); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/healthz", "/metrics", "/openapi.json"} {
			expect(t, call(t, "GET", srv.URL+p, ""), 200)
		}
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/readyz", ""},
			{"GET", "/v1/services", ""},
			{"GET", "/v1/services/web/instances", ""},
			{"PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`},
			{"GET", "/v1/services/web/instances/a", ""},
			{"DELETE", "/v1/services/web/instances/a", ""},
			{"PUT", "/v1/services/web/instances/a/heartbeat", ""},
			{"GET", "/v1/services/web/watch", ""},
			{"DELETE", "/v1/services/web/protection", ""},
			{"POST", "/v1/registry/leases", `{"ttl":"10s"}`},
			{"GET", "/v1/registry/leases/1", ""},
			{"POST", "/v1/registry/leases/1/keepalive", ""},
			{"DELETE", "/v1/registry/leases/1", ""},
		} {
			expect(t, call(t, r.method, srv.URL+r.path, r.body), 503)
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		// A watch open when the server shuts down ends with a shutdown
		// event.
		events := stream(t, n.url+"/v1/services/web/watch")
		nextSet(t, events, 10*time.Second)
		n.stop()
		for ev := range events {
			if ev.typ == "shutdown" {
				return
			}
		}
		t.Fatal("the stream ended without a shutdown event")
	})

	cov := contract.Coverage(hosts...)
	for _, op := range cov.UnexercisedOps {
		t.Errorf("documented operation %s was never exercised", op)
	}
	for _, r := range cov.Unexercised {
		t.Logf("documented but not exercised: %s", r)
	}
	fmt.Fprintf(os.Stderr, "openapi: %d requests and responses validated against api/openapi.json, %d watch events; %d of %d documented responses exercised\n",
		cov.Validated, cov.Events, cov.Responses-len(cov.Unexercised), cov.Responses)
}

// rawCall is call for a goroutine other than the test's: it reports
// failures in the answer (status 0 and the error as the body) rather than
// failing the test.
func rawCall(method, url string) resp {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return resp{raw: []byte(err.Error())}
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return resp{raw: []byte(err.Error())}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, raw: b}
}
