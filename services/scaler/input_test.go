package scaler_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// problemBody is a problem+json answer as the tests read it.
type problemBody struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Field  string `json:"field"`
	Offset *int64 `json:"offset"`
	Limit  *int64 `json:"limit"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// expectProblem checks that r is a problem+json answer with status and
// returns the problem.
func expectProblem(t testing.TB, r resp, status int) problemBody {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, want application/problem+json: %s", ct, r.raw)
	}
	p := decode[problemBody](t, r)
	if p.Status != status || !strings.HasPrefix(p.Type, "urn:steward:problem:") {
		t.Fatalf("problem = %s, want status %d and a urn:steward:problem type", r.raw, status)
	}
	return p
}

// scalerState is what a refused request must leave as it was: the list
// of scalers and the revision it reflects.
type scalerState struct{ revision, list string }

func readScalerState(t testing.TB, url string) scalerState {
	t.Helper()
	r := expect(t, call(t, "GET", url+"/v1/scalers", ""), 200)
	return scalerState{r.header.Get("X-Steward-Revision"), r.raw}
}

// inputSpec is a valid spec as a JSON tree, for cases to break.
func inputSpec() map[string]any {
	return map[string]any{
		"service":     "web",
		"maxReplicas": 10,
		"metrics":     []any{map[string]any{"name": "rps", "target": map[string]any{"type": "averageValue", "value": 10}}},
		"driver":      map[string]any{"type": "webhook", "url": "http://127.0.0.1:9/scale", "secret": "s3cret"},
	}
}

// specWith is inputSpec changed by edit, as JSON.
func specWith(edit func(s map[string]any)) string {
	s := inputSpec()
	if edit != nil {
		edit(s)
	}
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// at returns the object at a path of keys and indexes in a JSON tree,
// creating objects on the way.
func at(v any, path ...any) map[string]any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m := v.(map[string]any)
			if m[k] == nil {
				m[k] = map[string]any{}
			}
			v = m[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v.(map[string]any)
}

func metric0(s map[string]any) map[string]any  { return at(s, "metrics", 0) }
func driverOf(s map[string]any) map[string]any { return at(s, "driver") }

// samplesJSON is a push of n samples of service web.
func samplesJSON(n int) string {
	var b strings.Builder
	b.WriteString(`{"samples":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"service":"web","instance":"web-%d","name":"queue_depth","value":%d}`, i, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// canary is a valid sample put first in refused batches: a batch is
// refused whole, so it must never reach the replicas' store.
const canary = `{"service":"canary","name":"canary_total","value":1}`

// TestBadInputChangesNothing sends bad input of every kind to every
// operation: each is a 4xx problem+json, and the scalers and the
// revision stay as they were.
func TestBadInputChangesNothing(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	// One scaler, for the operations that need one; it syncs once an
	// hour, and once its first decision is in, the replica is cut off
	// from the election service, so that no new term decides again and
	// nothing moves the log but these requests.
	base := fmt.Sprintf(`{"service":"base","maxReplicas":10,"syncPeriod":"1h",
		"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
		"driver":{"type":"webhook","url":%q,"secret":"s3cret","readCurrent":true}}`, rc.srv.URL)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/base", base), 201)
	webtest.WaitFor(t, 15*time.Second, "the first decision", func() bool { return getScaler(t, n.url, "base").Status.ObservedGeneration == 1 })
	n.cut.Store(true)
	before := readScalerState(t, n.url)

	huge := func(size int) string { return `{"service":"` + strings.Repeat("a", size) + `"}` }
	long := strings.Repeat("a", ledger.MaxNameBytes+1)
	type tc struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		detail                   string   // in the detail, if set
		field                    string   // the end of the problem's field, if set
		errors                   []string // the problem's errors[].field, if set
	}
	put := func(name, body string, status int, detail string) tc {
		return tc{name: "put/" + name, method: "PUT", path: "/v1/scalers/x", body: body, status: status, detail: detail}
	}
	invalid := func(name string, edit func(s map[string]any), fields ...string) tc {
		return tc{name: "spec/" + name, method: "PUT", path: "/v1/scalers/x", body: specWith(edit), status: 400, detail: "invalid spec: ", errors: fields}
	}
	pushed := func(name, body string, status int, detail string) tc {
		return tc{name: "push/" + name, method: "POST", path: "/v1/metrics", body: body, status: status, detail: detail}
	}
	sample := func(fields string) string {
		return `{"samples":[` + canary + `,{"service":"web","name":"queue_depth","value":1,` + fields + `}]}`
	}
	simulate := func(name, body string, status int, detail string) tc {
		return tc{name: "simulate/" + name, method: "POST", path: "/v1/scalers/base/simulate", body: body, status: status, detail: detail}
	}
	series := func(s string) string { return `{"series":` + s + `}` }
	pts := `"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"gateway_rps":10}}]`
	manyPoints := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"series":{"replicas":1,"points":[`)
		t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"at":%q}`, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano))
		}
		b.WriteString(`]}}`)
		return b.String()
	}
	cases := []tc{
		// PUT: what the body is made of.
		put("truncated JSON", `{"service":"web"`, 400, "unexpected end"),
		put("syntax error", `{"service" "web"}`, 400, "malformed JSON at byte"),
		put("trailing data", specWith(nil)+`{}`, 400, "after the first document"),
		put("empty body", ``, 400, "empty"),
		put("null", `null`, 400, "null"),
		{name: "put/array", method: "PUT", path: "/v1/scalers/x", body: `[]`, status: 400, field: "(document)"},
		put("unknown field", specWith(func(s map[string]any) { s["replicas"] = 3 }), 400, `unknown field "replicas"`),
		put("unknown driver field", specWith(func(s map[string]any) { driverOf(s)["headers"] = map[string]any{} }), 400, `unknown field "headers"`),
		{name: "put/maxReplicas a string", method: "PUT", path: "/v1/scalers/x", body: specWith(func(s map[string]any) { s["maxReplicas"] = "10" }), status: 400, field: "maxReplicas"},
		{name: "put/maxReplicas a fraction", method: "PUT", path: "/v1/scalers/x", body: specWith(func(s map[string]any) { s["maxReplicas"] = 2.5 }), status: 400, field: "maxReplicas"},
		{name: "put/maxAttempts a string", method: "PUT", path: "/v1/scalers/x", body: specWith(func(s map[string]any) { driverOf(s)["maxAttempts"] = "3" }), status: 400, field: "driver.maxAttempts"},
		{name: "put/metrics an object", method: "PUT", path: "/v1/scalers/x", body: specWith(func(s map[string]any) { s["metrics"] = map[string]any{} }), status: 400, field: "metrics"},
		put("duration not a duration", specWith(func(s map[string]any) { s["syncPeriod"] = "soon" }), 400, `duration "soon"`),
		put("duration a number", specWith(func(s map[string]any) { s["syncPeriod"] = 15 }), 400, "duration string"),
		put("policy period in days", specWith(func(s map[string]any) {
			at(s, "behavior", "scaleUp")["policies"] = []any{map[string]any{"type": "Pods", "value": 1, "period": "1d"}}
		}), 400, `duration "1d"`),
		{name: "put/not JSON", method: "PUT", path: "/v1/scalers/x", body: specWith(nil), hdr: []string{"Content-Type", "text/plain"}, status: 415},
		{name: "put/over 256 KiB", method: "PUT", path: "/v1/scalers/x", body: huge(256 << 10), status: 413},
		// PUT: names.
		{name: "name/..", method: "PUT", path: "/v1/scalers/..", body: specWith(nil), status: 400, detail: "scaler name"},
		{name: "name/.", method: "PUT", path: "/v1/scalers/.", body: specWith(nil), status: 400, detail: "scaler name"},
		{name: "name/too long", method: "PUT", path: "/v1/scalers/" + long, body: specWith(nil), status: 400, detail: "scaler name"},
		{name: "name/space", method: "PUT", path: "/v1/scalers/a%20b", body: specWith(nil), status: 400, detail: "only letters"},
		{name: "name/at sign", method: "PUT", path: "/v1/scalers/a@b", body: specWith(nil), status: 400, detail: "only letters"},
		{name: "name/non-ASCII", method: "PUT", path: "/v1/scalers/%C3%BC", body: specWith(nil), status: 400, detail: "only letters"},
		{name: "name/encoded slash", method: "PUT", path: "/v1/scalers/a%2Fb", body: specWith(nil), status: 400, detail: "only letters"},
		// PUT: invalid specs, each naming its fields.
		invalid("maxReplicas below minReplicas", func(s map[string]any) { s["minReplicas"], s["maxReplicas"] = 5, 3 }, "maxReplicas"),
		invalid("maxReplicas zero", func(s map[string]any) { s["maxReplicas"] = 0 }, "maxReplicas"),
		invalid("maxReplicas over int32", func(s map[string]any) { s["maxReplicas"] = int64(1) << 31 }, "maxReplicas"),
		invalid("negative minReplicas", func(s map[string]any) { s["minReplicas"] = -1 }, "minReplicas"),
		invalid("unknown target type", func(s map[string]any) { at(metric0(s), "target")["type"] = "average" }, "metrics[0].target.type"),
		invalid("zero target", func(s map[string]any) { at(metric0(s), "target")["value"] = 0 }, "metrics[0].target.value"),
		invalid("negative activation", func(s map[string]any) { metric0(s)["activation"] = -1 }, "metrics[0].activation"),
		invalid("metric without a name", func(s map[string]any) { metric0(s)["name"] = "" }, "metrics[0].name"),
		invalid("metric twice", func(s map[string]any) { s["metrics"] = append(s["metrics"].([]any), metric0(inputSpec())) }, "metrics[1].name"),
		invalid("empty metrics", func(s map[string]any) { s["metrics"] = []any{} }, "metrics"),
		invalid("no metrics", func(s map[string]any) { delete(s, "metrics") }, "metrics"),
		invalid("zero without activation", func(s map[string]any) { s["minReplicas"] = 0 }, "metrics[0].activation"),
		invalid("zero on utilization", func(s map[string]any) {
			s["minReplicas"] = 0
			metric0(s)["activation"] = 1
			at(metric0(s), "target")["type"] = "utilization"
		}, "metrics[0].target.type"),
		invalid("negative tolerance", func(s map[string]any) { s["tolerance"] = -0.1 }, "tolerance"),
		invalid("negative scale-up tolerance", func(s map[string]any) { at(s, "behavior", "scaleUp")["tolerance"] = -1 }, "behavior.scaleUp.tolerance"),
		invalid("negative sync period", func(s map[string]any) { s["syncPeriod"] = "-1s" }, "syncPeriod"),
		invalid("window over an hour", func(s map[string]any) { at(s, "behavior", "scaleDown")["stabilizationWindow"] = "1h0m1s" }, "behavior.scaleDown.stabilizationWindow"),
		invalid("negative window", func(s map[string]any) { at(s, "behavior", "scaleUp")["stabilizationWindow"] = "-1s" }, "behavior.scaleUp.stabilizationWindow"),
		invalid("unknown selectPolicy", func(s map[string]any) { at(s, "behavior", "scaleDown")["selectPolicy"] = "Sometimes" }, "behavior.scaleDown.selectPolicy"),
		invalid("empty policies", func(s map[string]any) { at(s, "behavior", "scaleUp")["policies"] = []any{} }, "behavior.scaleUp.policies"),
		invalid("bad policy", func(s map[string]any) {
			at(s, "behavior", "scaleDown")["policies"] = []any{map[string]any{"type": "Instances", "value": 0, "period": "31m"}}
		}, "behavior.scaleDown.policies[0].type", "behavior.scaleDown.policies[0].value", "behavior.scaleDown.policies[0].period"),
		invalid("service upper case", func(s map[string]any) { s["service"] = "Web" }, "service"),
		invalid("no service", func(s map[string]any) { delete(s, "service") }, "service"),
		invalid("driver without type", func(s map[string]any) { s["driver"] = map[string]any{} }, "driver.type"),
		invalid("no driver", func(s map[string]any) { delete(s, "driver") }, "driver.type"),
		invalid("unknown driver type", func(s map[string]any) { driverOf(s)["type"] = "ssh" }, "driver.type"),
		invalid("webhook without url", func(s map[string]any) { delete(driverOf(s), "url") }, "driver.url"),
		invalid("webhook ftp url", func(s map[string]any) { driverOf(s)["url"] = "ftp://example.com/scale" }, "driver.url"),
		invalid("webhook without secret", func(s map[string]any) { delete(driverOf(s), "secret") }, "driver.secret"),
		invalid("webhook secret twice", func(s map[string]any) { driverOf(s)["secretEnv"] = "SCALE_SECRET" }, "driver.secret"),
		invalid("webhook negative backoff", func(s map[string]any) { driverOf(s)["backoff"] = "-1s" }, "driver.backoff"),
		invalid("process field on a webhook", func(s map[string]any) { driverOf(s)["command"] = []any{"true"} }, "driver.command"),
		invalid("process without command", func(s map[string]any) { s["driver"] = map[string]any{"type": "process"} }, "driver.command"),
		invalid("process env name with =", func(s map[string]any) {
			s["driver"] = map[string]any{"type": "process", "command": []any{"true"}, "env": map[string]any{"A=B": "c"}}
		}, "driver.env"),
		invalid("kubernetes without name", func(s map[string]any) { s["driver"] = map[string]any{"type": "kubernetes"} }, "driver.name"),
		invalid("kubernetes kind Pod", func(s map[string]any) {
			s["driver"] = map[string]any{"type": "kubernetes", "name": "web", "kind": "Pod"}
		}, "driver.kind"),
		invalid("everything at once", func(s map[string]any) {
			s["service"], s["maxReplicas"], s["metrics"], s["tolerance"] = "", 0, []any{}, -1
			s["driver"] = map[string]any{"type": "webhook"}
		}, "service", "maxReplicas", "tolerance", "metrics", "driver.url", "driver.secret"),
		// POST /v1/metrics.
		pushed("no samples", `{"samples":[]}`, 400, "at least one sample"),
		pushed("samples omitted", `{}`, 400, "at least one sample"),
		pushed("samples null", `{"samples":null}`, 400, "at least one sample"),
		pushed("over 10000 samples", samplesJSON(10_001), 400, "10001 samples, want at most 10000"),
		pushed("NaN", `{"samples":[`+canary+`,{"service":"web","name":"m","value":NaN}]}`, 400, "malformed JSON"),
		pushed("Infinity", `{"samples":[`+canary+`,{"service":"web","name":"m","value":Infinity}]}`, 400, "malformed JSON"),
		pushed("NaN as a string", sample(`"request":"NaN"`), 400, "samples.request"),
		pushed("out of float64's range", sample(`"request":1e400`), 400, "samples.request"),
		pushed("negative request", sample(`"request":-1`), 400, "samples[1].request"),
		pushed("service upper case", `{"samples":[`+canary+`,{"service":"Web","name":"m","value":1}]}`, 400, "samples[1].service"),
		pushed("service empty", `{"samples":[`+canary+`,{"name":"m","value":1}]}`, 400, "samples[1].service"),
		pushed("service underscore", `{"samples":[`+canary+`,{"service":"web_1","name":"m","value":1}]}`, 400, "samples[1].service"),
		pushed("service 64 bytes", `{"samples":[`+canary+`,{"service":"`+strings.Repeat("w", 64)+`","name":"m","value":1}]}`, 400, "samples[1].service"),
		pushed("service 1000 bytes", `{"samples":[`+canary+`,{"service":"`+strings.Repeat("w", 1000)+`","name":"m","value":1}]}`, 400, "samples[1].service: 1000 bytes"),
		pushed("name empty", `{"samples":[`+canary+`,{"service":"web","value":1}]}`, 400, "samples[1].name"),
		pushed("name with a dash", `{"samples":[`+canary+`,{"service":"web","name":"queue-depth","value":1}]}`, 400, "samples[1].name"),
		pushed("name with a digit first", `{"samples":[`+canary+`,{"service":"web","name":"1m","value":1}]}`, 400, "samples[1].name"),
		pushed("name over 200 bytes", `{"samples":[`+canary+`,{"service":"web","name":"`+strings.Repeat("m", 201)+`","value":1}]}`, 400, "samples[1].name"),
		pushed("instance with a control character", sample(`"instance":"web\u0007"`), 400, "samples[1].instance"),
		pushed("instance over 256 bytes", sample(`"instance":"`+strings.Repeat("i", 257)+`"`), 400, "samples[1].instance"),
		pushed("timestamp an hour ahead", sample(`"timestamp":"`+time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"`), 400, "samples[1].timestamp"),
		pushed("timestamp not a time", sample(`"timestamp":"yesterday"`), 400, ""),
		pushed("value a string", sample(`"value":"1"`), 400, ""),
		pushed("unknown field", sample(`"unit":"ms"`), 400, `unknown field "unit"`),
		{name: "push/not JSON", method: "POST", path: "/v1/metrics", body: `{"samples":[` + canary + `]}`, hdr: []string{"Content-Type", "text/csv"}, status: 415},
		{name: "push/over 4 MiB", method: "POST", path: "/v1/metrics", body: `{"samples":[` + canary + `],"x":"` + strings.Repeat("x", 4<<20) + `"}`, status: 413},
		// POST simulate.
		simulate("nothing recorded yet", `{}`, 400, "recorded no metrics yet"),
		simulate("no points", series(`{"replicas":1,"points":[]}`), 400, "points: must list at least one point"),
		simulate("points omitted", series(`{"replicas":1}`), 400, "points"),
		simulate("points out of order", series(`{"replicas":1,"points":[{"at":"2030-01-01T00:01:00Z"},{"at":"2030-01-01T00:00:00Z"}]}`), 400, "points[1].at"),
		simulate("negative replicas", series(`{"replicas":-1,`+pts+`}`), 400, "series.replicas"),
		simulate("replicas over int32", series(`{"replicas":2147483648,`+pts+`}`), 400, "series.replicas"),
		simulate("replicas above maxReplicas", series(`{"replicas":11,`+pts+`}`), 400, "maxReplicas (10)"),
		simulate("negative readyAfter", series(`{"replicas":1,"readyAfter":"-1s",`+pts+`}`), 400, "readyAfter"),
		simulate("readyAfter not a duration", series(`{"replicas":1,"readyAfter":"later",`+pts+`}`), 400, `duration "later"`),
		simulate("at not a time", series(`{"replicas":1,"points":[{"at":"noon"}]}`), 400, ""),
		simulate("metric value a string", series(`{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"rps":"high"}}]}`), 400, ""),
		simulate("unknown series field", series(`{"replicas":1,"step":"1s",`+pts+`}`), 400, `unknown field "step"`),
		simulate("over 100000 points", manyPoints(100_001), 400, "at most 100000"),
		simulate("over 100000 steps", `{"spec":`+specWith(func(s map[string]any) { s["syncPeriod"] = "1s" })+`,`+
			`"series":{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z"},{"at":"2030-01-03T00:00:00Z"}]}}`, 400, "172801 sync periods"),
		simulate("utilization without a request", `{"spec":`+specWith(func(s map[string]any) { at(metric0(s), "target")["type"] = "utilization" })+`,`+
			`"series":{"replicas":1,"points":[{"at":"2030-01-01T00:00:00Z","metrics":{"rps":50}}]}}`, 400, "requests.rps"),
		{name: "simulate/invalid spec", method: "POST", path: "/v1/scalers/base/simulate", status: 400, detail: "invalid spec: ",
			body: `{"spec":` + specWith(func(s map[string]any) { s["maxReplicas"] = 0 }) + `}`, errors: []string{"maxReplicas"}},
		simulate("unknown spec field", `{"spec":`+specWith(func(s map[string]any) { s["step"] = "1s" })+`}`, 400, `unknown field "step"`),
		simulate("unknown field", `{"spec":null,"load":[]}`, 400, `unknown field "load"`),
		{name: "simulate/not JSON", method: "POST", path: "/v1/scalers/base/simulate", body: `{}`, hdr: []string{"Content-Type", "application/xml"}, status: 415},
		{name: "simulate/over 16 MiB", method: "POST", path: "/v1/scalers/base/simulate", body: `{"x":"` + strings.Repeat("x", 16<<20) + `"}`, status: 413},
		{name: "simulate/no scaler", method: "POST", path: "/v1/scalers/nope/simulate", body: `{}`, status: 404},
		{name: "simulate/no scaler to read a series of", method: "POST", path: "/v1/scalers/nope/simulate", body: `{"spec":` + specWith(nil) + `}`, status: 404},
		{name: "simulate/bad name", method: "POST", path: "/v1/scalers/a@b/simulate", body: `{}`, status: 400},
		// Reads and routes.
		{name: "list/limit 0", method: "GET", path: "/v1/scalers?limit=0", status: 400, detail: "limit"},
		{name: "list/limit not a number", method: "GET", path: "/v1/scalers?limit=ten", status: 400, detail: "limit"},
		{name: "list/consistency", method: "GET", path: "/v1/scalers?consistency=eventual", status: 400},
		{name: "get/consistency", method: "GET", path: "/v1/scalers/base?consistency=eventual", status: 400},
		{name: "get/bad name", method: "GET", path: "/v1/scalers/a@b", status: 400},
		{name: "get/no scaler", method: "GET", path: "/v1/scalers/nope", status: 404},
		{name: "decisions/limit -1", method: "GET", path: "/v1/scalers/base/decisions?limit=-1", status: 400, detail: "limit"},
		{name: "decisions/no scaler", method: "GET", path: "/v1/scalers/nope/decisions", status: 404},
		{name: "delete/bad name", method: "DELETE", path: "/v1/scalers/a@b", status: 400},
		{name: "route/POST a scaler", method: "POST", path: "/v1/scalers/base", body: specWith(nil), status: 405},
		{name: "route/PATCH a scaler", method: "PATCH", path: "/v1/scalers/base", body: `{}`, status: 405},
		{name: "route/PUT the list", method: "PUT", path: "/v1/scalers", body: specWith(nil), status: 405},
		{name: "route/unknown path", method: "GET", path: "/v1/scaler", status: 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := call(t, c.method, n.url+c.path, c.body, c.hdr...)
			pb := expectProblem(t, r, c.status)
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", r.header.Get("X-Content-Type-Options"))
			}
			if !strings.Contains(pb.Detail, c.detail) {
				t.Errorf("detail = %q, want it to say %q", pb.Detail, c.detail)
			}
			if c.field != "" && pb.Field != c.field {
				t.Errorf("field = %q, want %q", pb.Field, c.field)
			}
			if strings.HasPrefix(pb.Detail, "malformed JSON at byte") && pb.Offset == nil {
				t.Errorf("a syntax error without its offset: %s", r.raw)
			}
			var fields []string
			for _, e := range pb.Errors {
				fields = append(fields, e.Field)
				if e.Message == "" {
					t.Errorf("errors: %s has no message", e.Field)
				}
			}
			for _, f := range c.errors {
				if !slices.Contains(fields, f) {
					t.Errorf("errors name %q, want %q among them: %s", fields, f, r.raw)
				}
			}
			if c.errors == nil && len(fields) > 0 {
				t.Errorf("errors = %q on a problem that is not about the spec's fields", fields)
			}
			switch c.status {
			case 413:
				if pb.Limit == nil || *pb.Limit <= 0 {
					t.Errorf("413 without its limit: %s", r.raw)
				}
			}
			if after := readScalerState(t, n.url); after != before {
				t.Fatalf("%s %s changed the scalers:\nbefore: revision %s %s\nafter:  revision %s %s",
					c.method, c.path, before.revision, before.list, after.revision, after.list)
			}
		})
	}

	// A refused batch is refused whole: its valid first sample (canary)
	// never reached the replicas. Samples of one connection arrive in
	// order, so once a later push is in, an earlier one would be too.
	expect(t, call(t, "POST", n.url+"/v1/metrics", `{"samples":[{"service":"canary","name":"marker_total","value":1}]}`), http.StatusAccepted)
	observe := func(name string) bool {
		_, ok := n.rep.Metrics.Observe(time.Now(), "canary", hpa.Metric{Name: name, Target: hpa.Target{Type: hpa.Value, Value: 1}}, nil)
		return ok
	}
	webtest.WaitFor(t, 5*time.Second, "the marker sample", func() bool { return observe("marker_total") })
	if observe("canary_total") {
		t.Error("a sample of a refused batch reached the store")
	}

	// Deleting a scaler that is not there is a logged no-op: the
	// revision moves by one, the scalers do not.
	pb := expectProblem(t, call(t, "DELETE", n.url+"/v1/scalers/nope", ""), 404)
	if !strings.Contains(pb.Detail, "no scaler nope") {
		t.Errorf("detail = %q", pb.Detail)
	}
	after := readScalerState(t, n.url)
	var r0, r1 int64
	fmt.Sscan(before.revision, &r0)
	fmt.Sscan(after.revision, &r1)
	if after.list != before.list || r1 != r0+1 {
		t.Fatalf("DELETE of no scaler: revision %d → %d, list %s → %s; want one no-op", r0, r1, before.list, after.list)
	}
}

// TestPushBoundary: 10,000 samples, the most one push takes, are
// accepted.
func TestPushBoundary(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	r := decode[struct{ Accepted int }](t, expect(t, call(t, "POST", n.url+"/v1/metrics", samplesJSON(10_000)), http.StatusAccepted))
	if r.Accepted != 10_000 {
		t.Fatalf("accepted = %d, want 10000", r.Accepted)
	}
}

// TestIdempotencyKeyReuse: a key first used for a PUT, sent again with a
// DELETE, is refused (409) and deletes nothing; sent again with the PUT,
// it answers the first PUT's result without a second write.
func TestIdempotencyKeyReuse(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	body := specWith(nil)
	first := expect(t, call(t, "PUT", n.url+"/v1/scalers/idem", body, "Idempotency-Key", "k1"), http.StatusCreated)
	created := decode[ledger.Scaler](t, first)
	pb := expectProblem(t, call(t, "DELETE", n.url+"/v1/scalers/idem", "", "Idempotency-Key", "k1"), http.StatusConflict)
	if !strings.Contains(pb.Detail, "k1") {
		t.Errorf("detail = %q, want it to name the key", pb.Detail)
	}
	again := expect(t, call(t, "PUT", n.url+"/v1/scalers/idem", body, "Idempotency-Key", "k1"), http.StatusCreated)
	if again.raw != first.raw || again.header.Get("X-Steward-Revision") != first.header.Get("X-Steward-Revision") {
		t.Fatalf("retried PUT = %s at revision %s, want the first answer %s at %s",
			again.raw, again.header.Get("X-Steward-Revision"), first.raw, first.header.Get("X-Steward-Revision"))
	}
	if sc := getScaler(t, n.url, "idem"); sc.Generation != 1 || sc.ModRevision != created.ModRevision {
		t.Fatalf("after the retries: generation %d, modRevision %d; want 1 and %d", sc.Generation, sc.ModRevision, created.ModRevision)
	}
	// A new key updates (200, the next generation); a key first used for
	// a DELETE, sent again with a PUT, is refused and creates nothing.
	updated := decode[ledger.Scaler](t, expect(t, call(t, "PUT", n.url+"/v1/scalers/idem", specWith(func(s map[string]any) { s["maxReplicas"] = 20 }),
		"Idempotency-Key", "k2"), http.StatusOK))
	if updated.Generation != 2 || updated.Spec.MaxReplicas != 20 || updated.CreateRevision != created.CreateRevision {
		t.Fatalf("update = %+v, want generation 2 with maxReplicas 20, created at %d", updated, created.CreateRevision)
	}
	expect(t, call(t, "DELETE", n.url+"/v1/scalers/idem", "", "Idempotency-Key", "k3"), http.StatusOK)
	expectProblem(t, call(t, "PUT", n.url+"/v1/scalers/idem", body, "Idempotency-Key", "k3"), http.StatusConflict)
	expectProblem(t, call(t, "GET", n.url+"/v1/scalers/idem", ""), http.StatusNotFound)
}

// simulation is POST simulate's answer.
type simulation struct {
	Decisions []hpa.Decision `json:"decisions"`
	Summary   struct {
		Decisions, Changes, MinReplicas, MaxReplicas, FinalReplicas int
	} `json:"summary"`
	Series hpa.Series `json:"series"`
}

// TestSimulateStep replays a step load through a spec given whole, for a
// scaler that does not exist: HPA's formula, ceil(ready × usage/target),
// with its default scale-up policies (4 pods or 100 % per 15 s, the
// larger).
func TestSimulateStep(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	spec := specWith(func(s map[string]any) { s["maxReplicas"] = 20 })
	// 2 replicas at 10 rps each (on target), then 120 rps from 15 s on.
	body := `{"spec":` + spec + `,"series":{"replicas":2,"points":[
		{"at":"2030-01-01T00:00:00Z","metrics":{"rps":20}},
		{"at":"2030-01-01T00:00:15Z","metrics":{"rps":120}},
		{"at":"2030-01-01T00:00:45Z","metrics":{"rps":120}}]}}`
	sim := decode[simulation](t, expect(t, call(t, "POST", n.url+"/v1/scalers/trial/simulate", body), 200))
	var got []int
	for _, d := range sim.Decisions {
		got = append(got, d.DesiredReplicas)
	}
	// 0 s: 20 rps over 2 is the target: stays at 2.
	// 15 s: 60 each, ratio 6: ceil(2 × 6) = 12, capped at 2 + 4 = 6 by
	//       the Pods policy (100 % would allow only 4).
	// 30 s: 20 each over 6, ratio 2: ceil(6 × 2) = 12; the 15 s period
	//       no longer holds the scale at 15 s, so 6 + 100 % = 12 allows it.
	// 45 s: 10 each over 12, ratio 1: within tolerance, stays at 12.
	if want := []int{2, 6, 12, 12}; !slices.Equal(got, want) {
		t.Fatalf("desired replicas = %v, want %v", got, want)
	}
	up := sim.Decisions[1]
	if m := up.Metrics[0]; m.Usage != 60 || m.Ratio != 6 || m.Proposal != 12 {
		t.Errorf("15 s metric = %+v, want usage 60, ratio 6, proposal 12", m)
	}
	if up.Limit == nil || up.Limit.Reason != "ScaleUpLimit" || up.Limit.Policy != "behavior.scaleUp.policies[0]" || up.Limit.Limit != 6 {
		t.Errorf("15 s limit = %+v, want ScaleUpLimit by behavior.scaleUp.policies[0] at 6", up.Limit)
	}
	if sim.Decisions[2].Limit != nil {
		t.Errorf("30 s limit = %+v, want none", sim.Decisions[2].Limit)
	}
	s := sim.Summary
	if s.Decisions != 4 || s.Changes != 2 || s.MinReplicas != 2 || s.MaxReplicas != 12 || s.FinalReplicas != 12 {
		t.Errorf("summary = %+v, want 4 decisions, 2 changes, 2 to 12, ending at 12", s)
	}
	if sim.Series.Replicas != 2 || len(sim.Series.Points) != 3 {
		t.Errorf("series = %+v, want the one given", sim.Series)
	}
	// Nothing was created.
	expectProblem(t, call(t, "GET", n.url+"/v1/scalers/trial", ""), 404)
}

// TestSimulateRecorded replays the series a scaler's own decisions saw
// through its own spec.
func TestSimulateRecorded(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), http.StatusCreated)
	push(t, n.url, "web", 45)
	var recorded []ledger.Decision
	webtest.WaitFor(t, 15*time.Second, "3 decisions that observed the load", func() bool {
		recorded = decode[struct {
			Items []ledger.Decision `json:"items"`
		}](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/decisions?limit=1000", ""), 200)).Items
		recorded = slices.DeleteFunc(recorded, func(d ledger.Decision) bool { return len(d.Observed) == 0 })
		return len(recorded) >= 3
	})
	sim := decode[simulation](t, expect(t, call(t, "POST", n.url+"/v1/scalers/web/simulate", `{}`), 200))
	// Decisions made after the listing above may be in the series too.
	if len(sim.Series.Points) < len(recorded) {
		t.Fatalf("series has %d points, want at least the %d decisions that observed", len(sim.Series.Points), len(recorded))
	}
	oldest := recorded[len(recorded)-1]
	if sim.Series.Replicas != oldest.CurrentReplicas || !sim.Series.Points[0].At.Equal(oldest.At) {
		t.Errorf("series starts with %d replicas at %v, want the oldest decision's %d at %v",
			sim.Series.Replicas, sim.Series.Points[0].At, oldest.CurrentReplicas, oldest.At)
	}
	for i, pt := range sim.Series.Points {
		if pt.Metrics["gateway_rps"] != 45 {
			t.Fatalf("points[%d] = %+v, want gateway_rps 45", i, pt)
		}
	}
	if len(sim.Decisions) < 3 || sim.Summary.Decisions != len(sim.Decisions) {
		t.Fatalf("%d decisions (summary %d), want one per sync over at least 3 points", len(sim.Decisions), sim.Summary.Decisions)
	}
	// The replay decides what the loop decided from the same start: 45
	// rps at 10 per replica from 1 replica is 5.
	if d := sim.Decisions[0]; d.CurrentReplicas != oldest.CurrentReplicas || d.DesiredReplicas != oldest.DesiredReplicas {
		t.Errorf("first replayed decision %d → %d, the recorded one %d → %d",
			d.CurrentReplicas, d.DesiredReplicas, oldest.CurrentReplicas, oldest.DesiredReplicas)
	}
	if sim.Summary.FinalReplicas != 5 {
		t.Errorf("summary = %+v, want it to end at 5", sim.Summary)
	}
}
