package scaler_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// fuzzExchange sends one request and checks what every answer must keep:
// 2xx, or a 4xx problem+json, never a 5xx; and always the revision
// header. It returns the status and the body.
func fuzzExchange(t *testing.T, req *http.Request) (int, []byte) {
	t.Helper()
	res, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err) // includes OpenAPI mismatches
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.Header.Get("X-Steward-Revision") == "" {
		t.Fatalf("%s %s = %d without X-Steward-Revision", req.Method, req.URL, res.StatusCode)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 400 && res.StatusCode < 500:
		var p struct{ Status int }
		if res.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != res.StatusCode {
			t.Fatalf("%d without a problem: %s", res.StatusCode, body)
		}
	default:
		t.Fatalf("%s %s = %d: %s", req.Method, req.URL, res.StatusCode, body)
	}
	return res.StatusCode, body
}

// fuzzSend makes and sends a request with fuzzExchange.
func fuzzSend(t *testing.T, method, target string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	return fuzzExchange(t, req)
}

// scalerVersions is what only writes change in the scaler list: each
// scaler's name, generation and revisions (a decision changes only the
// status).
func scalerVersions(t *testing.T, base string) string {
	t.Helper()
	status, body := fuzzSend(t, "GET", base+"/v1/scalers", nil)
	if status != 200 {
		t.Fatalf("list = %d: %s", status, body)
	}
	var list struct{ Items []ledger.Scaler }
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	for _, s := range list.Items {
		fmt.Fprintf(&b, "%s@%d/%d/%d ", s.Name, s.Generation, s.CreateRevision, s.ModRevision)
	}
	return b.String()
}

// startFuzzNode starts a replica that leads nothing: it is cut off from
// the election service, so that no control loop acts on the fuzzer's
// drivers. (If it won before the cut, its term lapses within the lease
// TTL; only a scaler's status can change meanwhile.)
func startFuzzNode(f *testing.F) *node {
	n := startNode(f, startPlane(f), "scaler-0", nodeOptions{})
	n.cut.Store(true)
	return n
}

// validSpecSeeds are specs PUT accepts.
var validSpecSeeds = []string{
	specWith(nil),
	specWith(func(s map[string]any) {
		s["minReplicas"], s["tolerance"], s["syncPeriod"] = 0, 0.05, "30s"
		metric0(s)["activation"] = 5
		s["behavior"] = map[string]any{
			"scaleUp":   map[string]any{"stabilizationWindow": "0s", "selectPolicy": "Min", "tolerance": 0, "policies": []any{map[string]any{"type": "Percent", "value": 50, "period": "1m"}}},
			"scaleDown": map[string]any{"stabilizationWindow": "10m", "selectPolicy": "Disabled"},
		}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "process", "command": []any{"./web", "-port", "0"}, "env": map[string]any{"A": "b"}, "gracePeriod": "2s"}
		metric0(s)["target"] = map[string]any{"type": "utilization", "value": 70}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "kubernetes", "name": "web", "kind": "StatefulSet", "namespace": "prod"}
		s["metrics"] = []any{map[string]any{"name": "queue_depth", "target": map[string]any{"type": "value", "value": 100}}, metric0(inputSpec())}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "webhook", "url": "https://example.com/scale", "secretEnv": "SCALE_SECRET", "maxAttempts": 3, "backoff": "1s", "timeout": "500ms", "readCurrent": true}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "webhook", "url": "https://example.com/scale", "secretEnv": "S", "version": "v2", "template": map[string]any{"z": 1.50, "a": []any{"x"}}}
		s["strategy"] = map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxSurge": 2, "maxUnavailable": "0%"}, "minReadySeconds": 3, "progressDeadline": "2m"}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "kubernetes", "name": "web", "image": "registry.example.com/web:1.2", "container": "web", "version": "1.2"}
		s["strategy"] = map[string]any{}
	}),
}

// invalidSpecSeeds are bodies PUT refuses.
var invalidSpecSeeds = []string{
	``, `null`, `[]`, `{}`, `{"service":"web"`, specWith(nil) + `x`,
	specWith(func(s map[string]any) { s["minReplicas"], s["maxReplicas"] = 5, 3 }),
	specWith(func(s map[string]any) { s["maxReplicas"] = 2147483648 }),
	specWith(func(s map[string]any) { s["tolerance"] = -1 }),
	specWith(func(s map[string]any) { s["syncPeriod"] = "0s" }),
	specWith(func(s map[string]any) { s["syncPeriod"] = "1e3s" }),
	specWith(func(s map[string]any) { at(metric0(s), "target")["type"] = "Value" }),
	specWith(func(s map[string]any) { s["driver"] = map[string]any{"type": "webhook", "url": "example.com"} }),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "process", "command": []any{""}, "url": "http://x"}
	}),
	specWith(func(s map[string]any) { s["SERVICE"] = "web2" }),
	specWith(func(s map[string]any) { at(metric0(s), "target")["value"] = 1e-320 }),
	`{"service":"web","maxReplicas":1e400,"metrics":null,"driver":null}`,
	`{"service":"\u0000","maxReplicas":-0,"metrics":[{}],"driver":{"type":"\ud800"}}`,
	specWith(func(s map[string]any) {
		s["strategy"] = map[string]any{"rollingUpdate": map[string]any{"maxSurge": 0, "maxUnavailable": 0}}
	}),
	specWith(func(s map[string]any) {
		s["strategy"] = map[string]any{"rollingUpdate": map[string]any{"maxSurge": "1.5%"}}
	}),
	specWith(func(s map[string]any) {
		s["strategy"] = map[string]any{"type": "Canary", "canary": map[string]any{"steps": []any{map[string]any{"setWeight": 10}, map[string]any{"pause": "2m"}}}}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "process", "command": []any{"x"}, "version": "a\nb"}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "webhook", "url": "http://x", "secret": "s", "template": []any{1}}
	}),
	specWith(func(s map[string]any) {
		s["driver"] = map[string]any{"type": "process", "command": []any{"x"}, "image": "web:1"}
	}),
}

// FuzzPutScaler PUTs arbitrary bodies under arbitrary names. A refused
// one (4xx) creates and changes nothing; an accepted one is a scaler that
// GETs back as PUT answered it, with every default filled and no secret,
// and is deleted again so that every input starts from the same list.
func FuzzPutScaler(f *testing.F) {
	for _, s := range validSpecSeeds {
		f.Add("web", []byte(s))
		f.Add("a..b", []byte(s))
	}
	for _, s := range invalidSpecSeeds {
		f.Add("web", []byte(s))
	}
	for _, name := range []string{"", ".", "..", "a/b", "a b", "ü", "%2e%2e", strings.Repeat("a", 129)} {
		f.Add(name, []byte(validSpecSeeds[0]))
	}
	n := startFuzzNode(f)
	f.Fuzz(func(t *testing.T, name string, body []byte) {
		target := n.url + "/v1/scalers/" + url.PathEscape(name)
		before := scalerVersions(t, n.url)
		status, raw := fuzzSend(t, "PUT", target, body)
		if status >= 400 {
			if after := scalerVersions(t, n.url); after != before {
				t.Fatalf("PUT refused with %d changed the scalers: %q → %q: %s", status, before, after, raw)
			}
			return
		}
		if status != 201 && status != 200 {
			t.Fatalf("PUT = %d: %s", status, raw)
		}
		var put ledger.Scaler
		if err := json.Unmarshal(raw, &put); err != nil {
			t.Fatal(err)
		}
		sp := put.Spec
		switch {
		case put.Name != name || put.Generation < 1:
			t.Fatalf("PUT %q answered %s", name, raw)
		case sp.MinReplicas == nil || sp.Tolerance == nil || sp.SyncPeriod <= 0 || sp.Behavior == nil ||
			sp.Behavior.ScaleUp == nil || sp.Behavior.ScaleDown == nil:
			t.Fatalf("defaults not filled: %s", raw)
		case sp.Driver.Secret != "":
			t.Fatalf("the secret is shown: %s", raw)
		case sp.Strategy == nil || sp.Strategy.Type != "RollingUpdate" || sp.Strategy.MinReadySeconds == nil || sp.Strategy.ProgressDeadline == nil ||
			sp.Strategy.RollingUpdate == nil || sp.Strategy.RollingUpdate.MaxSurge == nil || sp.Strategy.RollingUpdate.MaxUnavailable == nil:
			t.Fatalf("strategy defaults not filled (or a strategy other than RollingUpdate accepted): %s", raw)
		}
		for _, r := range []*hpa.Rules{sp.Behavior.ScaleUp, sp.Behavior.ScaleDown} {
			if r.StabilizationWindow == nil || r.SelectPolicy == "" || len(r.Policies) == 0 {
				t.Fatalf("behavior defaults not filled: %s", raw)
			}
		}
		status, got := fuzzSend(t, "GET", target, nil)
		if status != 200 {
			t.Fatalf("GET after PUT = %d: %s", status, got)
		}
		var sc ledger.Scaler
		if err := json.Unmarshal(got, &sc); err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(sc.Spec)
		b, _ := json.Marshal(put.Spec)
		if !bytes.Equal(a, b) || sc.Generation != put.Generation || sc.ModRevision != put.ModRevision {
			t.Fatalf("GET = %s, want what PUT answered: %s", got, raw)
		}
		if status, raw := fuzzSend(t, "DELETE", target, nil); status != 200 {
			t.Fatalf("DELETE = %d: %s", status, raw)
		}
	})
}

// FuzzPushMetrics POSTs arbitrary bodies to /v1/metrics. A refused push
// changes nothing; an accepted one accepted every sample it holds.
func FuzzPushMetrics(f *testing.F) {
	for _, s := range []string{
		`{"samples":[{"service":"web","name":"gateway_rps","value":45}]}`,
		`{"samples":[{"service":"web","instance":"web-1","name":"cpu_seconds","value":0.5,"request":1,"timestamp":"2020-01-01T00:00:00Z"}]}`,
		`{"samples":[{"service":"web","name":"m","value":-1e308},{"service":"a-b","instance":"","name":"a:b_c","value":0}]}`,
		samplesJSON(3),
		`{"samples":[]}`, `{}`, `null`, ``, `[]`, `{"samples":{}}`,
		`{"samples":[{"service":"web","name":"m","value":NaN}]}`,
		`{"samples":[{"service":"web","name":"m","value":1e400}]}`,
		`{"samples":[{"service":"Web","name":"m","value":1}]}`,
		`{"samples":[{"service":"web","name":"1m","value":1}]}`,
		`{"samples":[{"service":"web","name":"m","value":1,"request":-1}]}`,
		`{"samples":[{"service":"web","name":"m","value":1,"timestamp":"2999-01-01T00:00:00Z"}]}`,
		`{"samples":[{"service":"web","instance":"\u0000","name":"m","value":1}]}`,
		"{\"samples\":[{\"service\":\"web\",\"instance\":\"\xff\",\"name\":\"m\",\"value\":1}]}",
		`{"samples":[{"service":"web","name":"m","value":1,"x":1}]}`,
		`{"SAMPLES":[{"SERVICE":"web","NAME":"m","VALUE":1}]}`,
	} {
		f.Add([]byte(s))
	}
	n := startFuzzNode(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := scalerVersions(t, n.url)
		status, raw := fuzzSend(t, "POST", n.url+"/v1/metrics", body)
		if status >= 400 {
			if after := scalerVersions(t, n.url); after != before {
				t.Fatalf("push refused with %d changed the scalers: %q → %q", status, before, after)
			}
			return
		}
		if status != http.StatusAccepted {
			t.Fatalf("push = %d: %s", status, raw)
		}
		var p metrics.Push
		if err := web.Unmarshal(body, &p); err != nil {
			t.Fatalf("accepted a push the decoder refuses (%v): %q", err, body)
		}
		if err := p.Validate(time.Now().Add(time.Minute)); err != nil {
			t.Fatalf("accepted an invalid push (%v): %q", err, body)
		}
		var got struct{ Accepted int }
		if err := json.Unmarshal(raw, &got); err != nil || got.Accepted != len(p.Samples) {
			t.Fatalf("answer %s for %d samples", raw, len(p.Samples))
		}
	})
}

// simulationCost is, for a simulate body that decodes, an upper bound of
// the replica-steps a simulation of it could run (the scaler's own spec
// has maxReplicas 10 and syncs hourly).
func simulationCost(body []byte) (int64, bool) {
	var q struct {
		Spec   *ledger.Spec
		Series *hpa.Series
	}
	if web.Unmarshal(body, &q) != nil || q.Series == nil || len(q.Series.Points) == 0 {
		return 0, false
	}
	maxR, sync := int64(10), time.Hour
	if q.Spec != nil {
		maxR, sync = int64(q.Spec.MaxReplicas), q.Spec.SyncPeriod.Std()
		if sync == 0 {
			sync = hpa.DefaultSyncPeriod
		}
	}
	if sync <= 0 {
		return 0, false
	}
	pts := q.Series.Points
	first, last := slices.MinFunc(pts, func(a, b hpa.Point) int { return a.At.Compare(b.At) }).At,
		slices.MaxFunc(pts, func(a, b hpa.Point) int { return a.At.Compare(b.At) }).At
	steps := int64(min(last.Sub(first)/sync+1, hpa.MaxSimulationSteps))
	return max(maxR, int64(q.Series.Replicas)) * steps, true
}

// FuzzSimulate POSTs arbitrary simulation requests for an existing
// scaler that has recorded no metrics. Simulating writes nothing; an
// answered simulation is one decision per sync period, summed up right.
func FuzzSimulate(f *testing.F) {
	step := `"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"rps":20}},{"at":"2030-01-01T00:01:00Z","metrics":{"rps":120}}]`
	for _, s := range []string{
		`{}`, `{"spec":null,"series":null}`,
		`{"series":{"replicas":2,` + step + `}}`,
		`{"spec":` + specWith(nil) + `,"series":{"replicas":2,"readyAfter":"30s",` + step + `}}`,
		`{"spec":` + validSpecSeeds[1] + `,"series":{"replicas":0,` + step + `}}`,
		`{"spec":` + validSpecSeeds[2] + `,"series":{"replicas":1,"requests":{"rps":0.5},` + step + `}}`,
		`{"spec":` + validSpecSeeds[3] + `,"series":{"replicas":3,"points":[{"at":"2030-01-01T00:00:00Z"}]}}`,
		`{"spec":` + specWith(nil) + `}`,
		`{"spec":` + invalidSpecSeeds[6] + `,"series":{"replicas":2,` + step + `}}`,
		`{"series":{"replicas":2,"points":[]}}`, `{"series":{"replicas":-1,` + step + `}}`,
		`{"series":{"replicas":2,"points":[{"at":"2030-01-02T00:00:00Z"},{"at":"2030-01-01T00:00:00Z"}]}}`,
		`{"series":{"replicas":2,"readyAfter":"-1s",` + step + `}}`,
		`{"series":{"replicas":2,"points":[{"at":"0001-01-01T00:00:00Z"},{"at":"9999-12-31T23:59:59Z"}]}}`,
		`{"spec":` + specWith(func(s map[string]any) { s["syncPeriod"] = "1ns" }) + `,"series":{"replicas":1,` + step + `}}`,
		`{"series":{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"gateway_rps":1e308}}]}}`,
		`{"series":{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z","metrics":null}],"x":1}}`,
		``, `null`, `[]`, `{"spec":{}}`,
	} {
		f.Add([]byte(s))
	}
	n := startFuzzNode(f)
	if r := call(f, "PUT", n.url+"/v1/scalers/fuzz", specWith(func(s map[string]any) { s["syncPeriod"] = "1h" })); r.status != 201 {
		f.Fatalf("PUT = %d: %s", r.status, r.raw)
	}
	target := n.url + "/v1/scalers/fuzz/simulate"
	f.Fuzz(func(t *testing.T, body []byte) {
		// hpa.Simulate holds an instance per replica and visits
		// them all at every step: a request for billions of replicas,
		// which the service takes, exhausts memory. Such inputs are left
		// out here so that the fuzzer looks for other failures.
		if cost, ok := simulationCost(body); ok && cost > 1_000_000 {
			t.Skipf("a simulation of up to %d replica-steps", cost)
		}
		before := scalerVersions(t, n.url)
		status, raw := fuzzSend(t, "POST", target, body)
		if after := scalerVersions(t, n.url); after != before {
			t.Fatalf("simulate (%d) changed the scalers: %q → %q", status, before, after)
		}
		if status >= 400 {
			return
		}
		if status != 200 {
			t.Fatalf("simulate = %d: %s", status, raw)
		}
		var sim simulation
		if err := json.Unmarshal(raw, &sim); err != nil {
			t.Fatal(err)
		}
		s, ds := sim.Summary, sim.Decisions
		if len(ds) == 0 || s.Decisions != len(ds) || s.FinalReplicas != ds[len(ds)-1].DesiredReplicas ||
			s.MinReplicas > s.MaxReplicas || len(sim.Series.Points) == 0 {
			t.Fatalf("simulation %s", raw)
		}
		changes := 0
		for i, d := range ds {
			if d.Scale() {
				changes++
			}
			if i > 0 && (d.At.Before(ds[i-1].At) || d.CurrentReplicas != ds[i-1].DesiredReplicas) {
				t.Fatalf("decision %d does not follow decision %d: %s", i, i-1, raw)
			}
		}
		if changes != s.Changes {
			t.Fatalf("summary counts %d changes, the decisions %d", s.Changes, changes)
		}
	})
}
