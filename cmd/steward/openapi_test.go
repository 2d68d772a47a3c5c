package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/stewardhq/steward/gateway/api"
	"github.com/stewardhq/steward/platform/web/openapitest"
)

// TestGatewayOpenAPI checks the whole API's document (gateway/api) against
// a real steward dev through its gateway: every exchange below is validated
// with kin-openapi (request, status, headers, body; a stream's events
// against its text/event-stream schema), as each service's contract tests
// validate its own document. The gateway must serve the document it embeds.
func TestGatewayOpenAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts steward dev")
	}
	c, err := openapitest.Load("../../gateway/api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	// A key spans segments, which path templating cannot match: the rest
	// of the path is the key, as the config service routes it.
	c.Route = c.RestOfPath("/v1/kv/{key}", "key")
	c.StreamEvents = func(req *http.Request) func(event, id, data string) error {
		return func(event, id, data string) error { return streamEvent(c, req, event, id, data) }
	}
	d := startDev(t)
	gw := d.gateway
	waitReady(t, gw+"/readyz")
	c.ExpectValidated(t, strings.TrimPrefix(gw, "http://"))
	hc := &http.Client{Transport: c.Transport(http.DefaultTransport, true), Timeout: 10 * time.Second}

	call := func(method, path, body string, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, gw+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != want {
			t.Fatalf("%s %s = %d, want %d: %s", method, path, res.StatusCode, want, b)
		}
		return b
	}

	// Until the services have registered, the gateway answers 503 in
	// their place (documented too): wait for each to pass through.
	for _, p := range []string{"/v1/kv", "/v1/services", "/v1/elections", "/v1/scalers"} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			res, err := hc.Get(gw + p)
			if err != nil {
				t.Fatalf("GET %s: %v", p, err)
			}
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
			if res.StatusCode != 503 || time.Now().After(deadline) {
				t.Fatalf("GET %s = %d, want 200 within 10s", p, res.StatusCode)
			}
		}
	}

	if b := call("GET", "/openapi.json", "", 200); !bytes.Equal(b, api.Document) {
		t.Fatal("GET /openapi.json is not the document the gateway embeds")
	}
	call("GET", "/healthz", "", 200)
	call("GET", "/readyz", "", 200)
	call("GET", "/metrics", "", 200)
	call("GET", "/nope", "", 404)
	call("POST", "/gateway/routes", "", 405)

	// A route document, valid per the Route schema, and one the gateway
	// refuses; /gateway/routes shows both.
	doc := `{"match":{"pathPrefix":"/api/"},"service":"web","stripPrefix":true,"timeout":"5s","retry":{"attempts":1},"loadBalancer":{"policy":"round-robin"},"rateLimit":{"rps":10,"burst":5,"key":"ip"},"split":[{"version":"v1","weight":1}]}`
	var v any
	_ = json.Unmarshal([]byte(doc), &v)
	if err := c.VisitSchema("Route", v); err != nil {
		t.Fatalf("a valid route document does not match Route: %v", err)
	}
	for _, bad := range []string{`{"match":{"pathPrefix":"/api/"},"service":"web","bogus":1}`, `{"match":{"pathPrefix":"api"},"service":"web"}`, `{"match":{"pathPrefix":"/"},"service":"Web"}`} {
		_ = json.Unmarshal([]byte(bad), &v)
		if c.VisitSchema("Route", v) == nil {
			t.Fatalf("an invalid route document matches Route: %s", bad)
		}
	}
	call("PUT", "/v1/kv/steward/gateway/routes/web", doc, 200)
	call("PUT", "/v1/kv/steward/gateway/routes/bad", `{"match":{"pathPrefix":"/b/"},"service":"Web"}`, 200)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st struct{ Routes, Rejected []map[string]any }
		_ = json.Unmarshal(call("GET", "/gateway/routes", "", 200), &st)
		if len(st.Routes) == 1 && len(st.Rejected) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/gateway/routes = %+v, want the route web in force and bad rejected", st)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The overview: each service's replica and stream as steward dev runs
	// them, and the balancer's pools the calls above filled.
	var cluster struct {
		Services []struct {
			Service, Error string
			Stream         *struct{ Name string }
			Replicas       []struct {
				ID    string
				Ready bool
				Error string
			}
		}
	}
	_ = json.Unmarshal(call("GET", "/gateway/cluster", "", 200), &cluster)
	if len(cluster.Services) != 4 {
		t.Fatalf("/gateway/cluster has %d services, want 4", len(cluster.Services))
	}
	for _, s := range cluster.Services {
		if s.Error != "" || s.Stream == nil || s.Stream.Name != "STEWARD_"+strings.ToUpper(s.Service) ||
			len(s.Replicas) != 1 || !s.Replicas[0].Ready || s.Replicas[0].Error != "" {
			t.Errorf("/gateway/cluster: %s = %+v, want one ready replica and its stream", s.Service, s)
		}
	}
	var upstreams struct{ Services []struct{ Service string } }
	_ = json.Unmarshal(call("GET", "/gateway/upstreams", "", 200), &upstreams)
	if len(upstreams.Services) == 0 || upstreams.Services[0].Service != "steward-config" {
		t.Errorf("/gateway/upstreams = %+v, want the pools of Steward's services, steward-config first", upstreams)
	}

	// Config: keys, lists, history, transactions, leases, a watch.
	call("PUT", "/v1/kv/app/x", `{"a":1}`, 200)
	call("GET", "/v1/kv/app/x", "", 200)
	call("GET", "/v1/kv?prefix=/app/", "", 200)
	call("GET", "/v1/history?key=/app/x", "", 200)
	call("POST", "/v1/txn", `{"compare":[{"key":"/app/x","target":"version","op":">","value":0}],"success":[{"get":{"key":"/app/x"}}]}`, 200)
	var lease struct{ ID int64 }
	_ = json.Unmarshal(call("POST", "/v1/leases", `{"ttl":"10s"}`, 201), &lease)
	call("GET", fmt.Sprintf("/v1/leases/%d", lease.ID), "", 200)
	call("POST", fmt.Sprintf("/v1/leases/%d/keepalive", lease.ID), "", 200)
	call("DELETE", fmt.Sprintf("/v1/leases/%d", lease.ID), "", 200)
	call("DELETE", "/v1/kv/app/x", "", 200)
	call("GET", "/v1/kv/app/x", "", 404)
	watch(t, hc, gw+"/v1/watch?prefix=/app/&fromRevision=1", 2)
	watchReq, _ := http.NewRequest("GET", gw+"/v1/watch?prefix=/app/", nil)
	if streamEvent(c, watchReq, "put", "3", `{"entry":{"key":"/app/x"}}`) == nil || streamEvent(c, watchReq, "elected", "", `{}`) == nil {
		t.Fatal("the event check accepts an event its schema does not")
	}

	// Registry.
	call("PUT", "/v1/services/web/instances/web-1", `{"address":"127.0.0.1","port":9000,"check":{"ttl":"30s"}}`, 200)
	call("PUT", "/v1/services/web/instances/web-1/heartbeat", `{}`, 200)
	call("GET", "/v1/services", "", 200)
	call("GET", "/v1/services/web/instances", "", 200)
	call("GET", "/v1/services/web/instances/web-1", "", 200)
	watch(t, hc, gw+"/v1/services/web/watch", 1)
	call("DELETE", "/v1/services/web/instances/web-1", "", 200)
	call("POST", "/v1/registry/leases", `{"ttl":"10s"}`, 201)

	// Election.
	var lead struct{ Token int64 }
	_ = json.Unmarshal(call("POST", "/v1/elections/e1/campaign", `{"candidate":"a","ttl":"10s"}`, 200), &lead)
	call("GET", "/v1/elections", "", 200)
	call("GET", "/v1/elections/e1", "", 200)
	watch(t, hc, gw+"/v1/elections/e1/watch", 1)
	call("POST", "/v1/elections/e1/resign", fmt.Sprintf(`{"candidate":"a","token":%d}`, lead.Token), 200)

	// Scaler and auth (off in steward dev).
	call("GET", "/v1/scalers", "", 200)
	call("GET", "/v1/scalers/nope", "", 404)
	watch(t, hc, gw+"/v1/scalers/nope/watch", 1)
	call("GET", "/v1/auth/whoami", "", 404)

	cov := c.Coverage()
	t.Logf("%d exchanges and %d stream events validated against gateway/api/openapi.json; %d of %d operations not exercised",
		cov.Validated, cov.Events, len(cov.UnexercisedOps), countOps(c.Doc))
}

// watch reads n events of the stream at url (each checked by the
// contract's transport) and closes it.
func watch(t *testing.T, hc *http.Client, url string, n int) {
	t.Helper()
	res, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET %s = %d", url, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	for seen := 0; seen < n && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "event: ") {
			seen++
		}
	}
	// The event ends at the blank line after its data.
	for sc.Scan() && sc.Text() != "" {
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// streamEvent checks one server-sent event of the stream req opened
// against the operation's text/event-stream schema: {event, id, data} with
// data decoded from JSON.
func streamEvent(c *openapitest.Contract, req *http.Request, event, id, data string) error {
	route, _, err := c.Route(req)
	if err != nil {
		return err
	}
	mt := route.Operation.Responses.Status(200).Value.Content.Get("text/event-stream")
	if mt == nil || mt.Schema == nil {
		return fmt.Errorf("openapi: %s has no text/event-stream schema", route.Path)
	}
	var d any
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		return fmt.Errorf("openapi: event %q data is not JSON: %v", event, err)
	}
	v := map[string]any{"event": event, "data": d}
	if id != "" {
		v["id"] = id
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("openapi: event %q of %s does not match its schema: %v\ndata: %s", event, route.Path, err, data)
	}
	return nil
}

func countOps(doc *openapi3.T) int {
	n := 0
	for _, item := range doc.Paths.Map() {
		n += len(item.Operations())
	}
	return n
}
