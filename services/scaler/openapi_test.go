package scaler_test

// api/openapi.json is checked against the service as implemented: every
// exchange of the end-to-end tests goes through apiClient (or, in the
// fuzz targets, fuzzClient), which validates it with platform's
// openapitest; the chi route list is pinned in testdata/routes.golden
// (go test -update rewrites it) and must equal the document's
// operations.

import (
	"flag"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/services/scaler"
)

var update = flag.Bool("update", false, "rewrite testdata/routes.golden from the router")

// TestServedDocument: GET /openapi.json serves api/openapi.json as it
// is, and the operational routes answer as documented.
func TestServedDocument(t *testing.T) {
	n := startNode(t, startPlane(t), "scaler-0", nodeOptions{})
	want, err := os.ReadFile("api/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := expect(t, call(t, "GET", n.url+"/openapi.json", ""), 200); r.raw != string(want) {
		t.Fatal("GET /openapi.json is not api/openapi.json")
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/status"} {
		expect(t, call(t, "GET", n.url+path, ""), 200)
	}
}

func TestRoutesGolden(t *testing.T) {
	contractDoc.RoutesGolden(t, scaler.NewServer(nil, nil, nil, nil, nil), "testdata/routes.golden", *update, nil)
}

// goodScaler is a Scaler as GET answers it.
const goodScaler = `{"name":"web","spec":{"service":"web","minReplicas":1,"maxReplicas":10,
	"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],"tolerance":0.1,"syncPeriod":"15s",
	"behavior":{"scaleUp":{"stabilizationWindow":"0s","selectPolicy":"Max","policies":[{"type":"Pods","value":4,"period":"15s"}]},
	"scaleDown":{"stabilizationWindow":"5m0s","selectPolicy":"Max","policies":[{"type":"Percent","value":100,"period":"15s"}]}},
	"driver":{"type":"webhook","url":"http://127.0.0.1:9/scale","readCurrent":true},
	"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"},"minReadySeconds":0,"progressDeadline":"10m0s"}},
	"generation":1,"createRevision":3,"modRevision":3,
	"status":{"currentReplicas":2,"desiredReplicas":2,"observedGeneration":1,"conditions":[],
	"lastDecision":{"revision":5,"generation":1,"leader":"scaler-0","token":4,"observed":{"gateway_rps":20},
	"at":"2030-01-01T00:00:00Z","currentReplicas":2,"readyReplicas":2,"desiredReplicas":2,"reason":"no metric proposes a change"}}}`

// TestContractRejects shows the validator is not vacuous: the document
// refuses what the service must never answer.
func TestContractRejects(t *testing.T) {
	c := contractDoc
	mk := func(method, url string, status int, ctype string) (*http.Request, *http.Response) {
		req, _ := http.NewRequest(method, "http://example.test"+url, nil)
		h := http.Header{}
		h.Set("Content-Type", ctype)
		h.Set("X-Steward-Revision", "7")
		h.Set("X-Request-Id", "r1")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", `"3"`)
		return req, &http.Response{StatusCode: status, Header: h}
	}
	req, res := mk("GET", "/v1/scalers/web", 200, "application/json")
	if err := c.Check(req, nil, res, []byte(goodScaler), true); err != nil {
		t.Fatalf("a valid exchange was refused: %v", err)
	}
	for name, body := range map[string]string{
		"unknown field":                strings.Replace(goodScaler, `"generation":1,`, `"generation":1,"x":1,`, 1),
		"secret shown":                 strings.Replace(goodScaler, `"readCurrent":true`, `"readCurrent":true,"secret":"s3cret"`, 1),
		"defaults not filled":          strings.Replace(goodScaler, `"tolerance":0.1,`, ``, 1),
		"strategy defaults not filled": strings.Replace(goodScaler, `"minReadySeconds":0,`, ``, 1),
		"bad maxSurge":                 strings.Replace(goodScaler, `"maxSurge":"25%"`, `"maxSurge":"25"`, 1),
		"selectPolicy not set":         strings.Replace(goodScaler, `"selectPolicy":"Max",`, ``, 1),
		"bad target type":              strings.Replace(goodScaler, `"averageValue"`, `"average"`, 1),
		"duration as a number":         strings.Replace(goodScaler, `"syncPeriod":"15s"`, `"syncPeriod":15`, 1),
		"decision without token":       strings.Replace(goodScaler, `"token":4,`, ``, 1),
		"generation 0":                 strings.Replace(goodScaler, `"generation":1,"createRevision"`, `"generation":0,"createRevision"`, 1),
		"name with a slash":            strings.Replace(goodScaler, `"name":"web"`, `"name":"a/b"`, 1),
	} {
		req, res := mk("GET", "/v1/scalers/web", 200, "application/json")
		if err := c.Check(req, nil, res, []byte(body), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A 400 for a spec names its fields; other extension members are not
	// allowed, and the type must match the status.
	problem := `{"type":"urn:steward:problem:invalid","title":"Bad Request","status":400,"instance":"/v1/scalers/web","requestId":"r1",
		"errors":[{"field":"maxReplicas","message":"must be positive"}]}`
	req, res = mk("PUT", "/v1/scalers/web", 400, "application/problem+json")
	if err := c.Check(req, []byte(`{}`), res, []byte(problem), true); err != nil {
		t.Fatalf("a valid 400 was refused: %v", err)
	}
	for name, body := range map[string]string{
		"errors without message": strings.Replace(problem, `,"message":"must be positive"`, ``, 1),
		"unknown extension":      strings.Replace(problem, `"requestId":"r1"`, `"requestId":"r1","leader":"x"`, 1),
		"type of another status": strings.Replace(problem, `problem:invalid`, `problem:conflict`, 1),
	} {
		req, res := mk("PUT", "/v1/scalers/web", 400, "application/problem+json")
		if err := c.Check(req, []byte(`{}`), res, []byte(body), true); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	req, res = mk("GET", "/v1/scalers/web", 418, "application/problem+json")
	if err := c.Check(req, nil, res, []byte(`{"type":"urn:steward:problem:invalid","title":"x","status":418,"instance":"/","requestId":"r1"}`), true); err == nil {
		t.Error("an undocumented status was accepted")
	}
	// Requests the document calls invalid must not be answered 2xx.
	for _, tt := range []struct{ method, url, body string }{
		{"PUT", "/v1/scalers/web", `{"service":"web","maxReplicas":0,"metrics":[],"driver":{"type":"webhook"}}`},
		{"PUT", "/v1/scalers/web", `{"service":"Web","maxReplicas":3,"metrics":[{"name":"m","target":{"type":"value","value":1}}],"driver":{"type":"process","command":["x"]}}`},
		{"POST", "/v1/metrics", `{"samples":[]}`},
		{"POST", "/v1/scalers/web/simulate", `{"series":{"replicas":-1,"points":[]}}`},
		{"GET", "/v1/scalers?limit=0", ``},
	} {
		req, res := mk(tt.method, tt.url, 200, "application/json")
		if err := c.Check(req, []byte(tt.body), res, []byte(goodScaler), true); err == nil {
			t.Errorf("%s %s %s answered 200: accepted", tt.method, tt.url, tt.body)
		}
	}
	c.Failures("example.test")
}

// loadContract loads api/openapi.json with the watch's events: current
// and put carry a Scaler, absent and deleted a NameOnly, decision a
// Decision, actuation an ActuationEvent, rollout a RolloutEvent, error a
// WatchErrorData, shutdown {}; an id is a revision.
func loadContract() (*openapitest.Contract, error) {
	c, err := openapitest.Load("api/openapi.json")
	if err != nil {
		return nil, err
	}
	c.Event = c.EventSchemas(map[string]string{"current": "Scaler", "put": "Scaler", "absent": "NameOnly", "deleted": "NameOnly", "rollout": "RolloutEvent",
		"decision": "Decision", "actuation": "ActuationEvent", "error": "WatchErrorData"})
	return c, nil
}
