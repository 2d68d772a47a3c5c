package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// The fuzz targets send what they generate to a real replica (registry.Serve
// on an embedded NATS) and hold every answer to what any answer must keep:
// a 2xx, or a 4xx problem+json; never a 5xx. Each also decodes the input
// as the handler does (web.Unmarshal, then the catalog's validation) and
// requires the replica to agree: accepted exactly when that accepts.

// fuzzClient validates every answer against the OpenAPI document like
// httpClient, but does not insist that a request the document calls
// invalid gets a 4xx: encoding/json matches field names case-insensitively
// and takes null for an absent field, so the service accepts some bodies
// the document's stricter schemas do not describe. TestMain sets its
// transport.
var fuzzClient = &http.Client{Timeout: time.Minute}

// fuzzExchange sends one request and checks the invariants every answer
// must keep. It returns the status and the body.
func fuzzExchange(t *testing.T, c *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err) // includes OpenAPI mismatches
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 400 && res.StatusCode < 500:
		if ct := res.Header.Get("Content-Type"); ct != web.ProblemContentType {
			t.Fatalf("%s %s = %d with Content-Type %q: %s", req.Method, req.URL, res.StatusCode, ct, body)
		}
		var p struct{ Status int }
		if err := json.Unmarshal(body, &p); err != nil || p.Status != res.StatusCode {
			t.Fatalf("%s %s = %d with problem %s", req.Method, req.URL, res.StatusCode, body)
		}
	default:
		t.Fatalf("%s %s = %d: %s", req.Method, req.URL, res.StatusCode, body)
	}
	return res.StatusCode, body
}

// agree fails t unless the replica's answer agrees with the decoder's
// verdict werr on body: over limit bytes, 413; refused, a 4xx; accepted,
// status ok.
func agree(t *testing.T, body []byte, limit int, werr error, status, ok int, raw []byte) {
	t.Helper()
	switch {
	case len(body) > limit:
		if status != 413 {
			t.Fatalf("a body of %d bytes = %d, want 413", len(body), status)
		}
	case werr != nil:
		if status/100 != 4 {
			t.Fatalf("refused by the decoder (%v) but answered %d: %s", werr, status, raw)
		}
	case status != ok:
		t.Fatalf("accepted by the decoder but answered %d, want %d: %s", status, ok, raw)
	}
}

func jsonRequest(t *testing.T, method, url string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// Body limits of the handlers (handlers.go).
const (
	registrationLimit = 64 << 10
	grantLimit        = 4 << 10
)

// normalizeRegistration decodes and validates a registration body as
// PUT /v1/services/{service}/instances/{id} does.
func normalizeRegistration(body []byte, allowLocal bool) (catalog.Registration, error) {
	var reg catalog.Registration
	if err := web.Unmarshal(body, &reg); err != nil {
		return reg, err
	}
	return reg, reg.Normalize(allowLocal)
}

// FuzzRegister sends arbitrary registration bodies to a replica that
// refuses local addresses. Whatever the handler's decoding and Normalize
// accept is registered (200) as normalized and round-trips: its JSON
// decodes and normalizes again to the same JSON. Whatever they refuse is a
// 4xx and registers nothing.
func FuzzRegister(f *testing.F) {
	for _, s := range []string{
		`{"address":"10.0.0.1","port":80}`,
		`{"address":"web-1.example.com","port":8080,"tags":["http","blue"],"metadata":{"commit":"4f2a","":"x"},"zone":"eu-1a","version":"1.4.2","weight":10}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","deregisterAfter":"1m"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"http":"https://10.0.0.1:8443/healthz?x=1","interval":"5s","timeout":"2s"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"tcp":"[fd00::1]:5432","interval":"1m30s"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"http":"http://10.0.0.1/","interval":"3s"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"+1.5s"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","http":"http://a/"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"0s","tcp":"a:1"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","interval":"1s"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"http":"http://u:p@a/"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"http":"http://169.254.169.254/latest/meta-data"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"tcp":"localhost:22"}}`,
		`{"address":"10.0.0.1","port":80,"check":{"tcp":"a:+80"}}`,
		`{"address":"10.0.0.1","port":80,"check":null}`,
		`{"address":"127.0.0.1","port":80}`, `{"address":"::ffff:127.0.0.1","port":80}`, `{"address":"metadata.google.internal.","port":80}`,
		`{"address":"fd00:ec2::254","port":80}`, `{"address":"0.0.0.0","port":80}`, `{"address":"a..b","port":80}`,
		`{"address":"10.0.0.1","port":0}`, `{"address":"10.0.0.1","port":65536}`, `{"address":"10.0.0.1","port":80.5}`,
		`{"address":"10.0.0.1","port":1e400}`, `{"address":"10.0.0.1","port":"80"}`,
		`{"address":"10.0.0.1","port":80,"weight":0}`, `{"address":"10.0.0.1","port":80,"weight":1001}`,
		`{"ADDRESS":"10.0.0.1","Port":80}`, `{"address":"10.0.0.1","port":80,"tags":null,"metadata":null}`,
		`{"address":"10.0.0.1","port":80,"tags":[""]}`, `{"address":"10.0.0.1","port":80,"tags":["a\u0000"]}`,
		`{"address":"10.0.0.1","port":80,"metadata":{"k":"\u0000\u2028"}}`, "{\"address\":\"10.0.0.1\",\"port\":80,\"zone\":\"\xff\"}",
		`{"address":"10.0.0.1","port":80,"extra":1}`, `{"address":"10.0.0.1","port":80} {}`, `{"address":"10.0.0.1",`,
		`null`, ``, `[]`, `"x"`, `{}`,
		`{"address":"10.0.0.1","port":80,"tags":["` + strings.Repeat(`t","`, 64) + `t"]}`,
		`{"address":"10.0.0.1","port":80,"metadata":{"v":"` + strings.Repeat("\\u0000", 512) + `"}}`,
	} {
		f.Add([]byte(s))
	}
	s := testSettings("registry-0", nil)
	s.AllowLocal = false // exercise the refusal of local addresses
	n := startNode(f, qlogtest.StartServer(f).Connect(f), s)
	var seq atomic.Int64
	f.Fuzz(func(t *testing.T, body []byte) {
		// A fresh id each time, so that a refusal can be seen to have
		// registered nothing.
		u := fmt.Sprintf("%s/v1/services/fuzz/instances/f-%d", n.url, seq.Add(1))
		want, werr := normalizeRegistration(body, false)
		status, raw := fuzzExchange(t, fuzzClient, jsonRequest(t, "PUT", u, body))
		agree(t, body, registrationLimit, werr, status, 200, raw)
		if status != 200 {
			if got, _ := fuzzExchange(t, fuzzClient, jsonRequest(t, "GET", u+"?consistency=serializable", nil)); got != 404 {
				t.Fatalf("refused with %d, yet the instance exists (GET = %d)", status, got)
			}
			return
		}
		var inst catalog.Instance
		if err := json.Unmarshal(raw, &inst); err != nil {
			t.Fatal(err)
		}
		// Deregister at once: fuzzed checks should not be probed.
		fuzzExchange(t, fuzzClient, jsonRequest(t, "DELETE", u, nil))
		got := catalog.Registration{Address: inst.Address, Port: inst.Port, Tags: inst.Tags, Metadata: inst.Metadata,
			Zone: inst.Zone, Version: inst.Version, Weight: &inst.Weight, Check: inst.Check}
		if g, w := mustJSON(t, got), mustJSON(t, want); !bytes.Equal(g, w) {
			t.Fatalf("registered %s, want %s", g, w)
		}
		// What was accepted round-trips: it is what goes into the log.
		first := mustJSON(t, want)
		again, err := normalizeRegistration(first, false)
		if err != nil {
			t.Fatalf("normalized registration %s does not normalize again: %v", first, err)
		}
		if second := mustJSON(t, again); !bytes.Equal(first, second) {
			t.Fatalf("normalizing twice: %s, then %s", first, second)
		}
	})
}

// FuzzHeartbeat sends arbitrary heartbeat bodies. What the handler's
// decoding and ValidateReport accept is applied (200, the instance says
// what the body said, an empty body meaning passing); what they refuse is
// a 4xx that leaves the instance as it was.
func FuzzHeartbeat(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `{"status":"passing"}`, `{"status":"warning","output":"queue depth 9000"}`, `{"status":"critical","output":""}`,
		`{"status":""}`, `{"output":"x"}`, `{"status":"PASSING"}`, `{"STATUS":"warning"}`, `{"status":null}`, `{"status":1}`,
		`{"status":"passing","extra":1}`, `{"output":"\u0000\ud800"}`, "{\"output\":\"\xff\"}", `null`, ` `, `[]`, `{"status":"passing"}x`,
		`{"output":"` + strings.Repeat("o", catalog.MaxOutputBytes) + `"}`, `{"output":"` + strings.Repeat("o", catalog.MaxOutputBytes+1) + `"}`,
	} {
		f.Add([]byte(s))
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), testSettings("registry-0", nil))
	u := n.url + "/v1/services/fuzz/instances/hb"
	expect(f, call(f, "PUT", u, `{"address":"10.0.0.1","port":80,"check":{"ttl":"24h"}}`), 200)
	current := func(t *testing.T) catalog.Instance {
		status, raw := fuzzExchange(t, fuzzClient, jsonRequest(t, "GET", u, nil))
		var inst catalog.Instance
		if err := json.Unmarshal(raw, &inst); status != 200 || err != nil {
			t.Fatalf("GET %s = %d: %s", u, status, raw)
		}
		return inst
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want := catalog.Report{Status: catalog.Passing}
		var werr error
		if len(body) > 0 {
			werr = web.Unmarshal(body, &want)
		}
		if werr == nil {
			werr = catalog.ValidateReport(&want)
		}
		before := current(t)
		status, raw := fuzzExchange(t, fuzzClient, jsonRequest(t, "PUT", u+"/heartbeat", body))
		agree(t, body, registrationLimit, werr, status, 200, raw)
		if status != 200 {
			if after := current(t); after.ModRevision != before.ModRevision {
				t.Fatalf("refused with %d, yet the instance changed at revision %d", status, after.ModRevision)
			}
			return
		}
		var inst catalog.Instance
		if err := json.Unmarshal(raw, &inst); err != nil {
			t.Fatal(err)
		}
		if inst.Status != want.Status || inst.Output != want.Output || inst.Held != nil {
			t.Fatalf("heartbeat %q left the instance %s with %q (held %v), want %s with %q", body, inst.Status, inst.Output, inst.Held, want.Status, want.Output)
		}
	})
}

// FuzzGrantLease sends arbitrary lease grant bodies: a TTL the handler's
// decoding and ValidateLeaseTTL accept is granted (201) as asked, anything
// else is a 4xx.
func FuzzGrantLease(f *testing.F) {
	for _, s := range []string{
		`{"ttl":"10s"}`, `{"ttl":"1s"}`, `{"ttl":"1h"}`, `{"ttl":"3599.999999999s"}`, `{"ttl":"+1m"}`, `{"ttl":"1h0m0.000000001s"}`,
		`{"ttl":"999ms"}`, `{"ttl":"-10s"}`, `{"ttl":"0"}`, `{"ttl":""}`, `{"ttl":null}`, `{"ttl":10}`, `{"TTL":"10s"}`,
		`{"ttl":"10s","id":1}`, `{"ttl":"9223372036854775807ns"}`, `{"ttl":"9223372036854775808ns"}`, `{"ttl":"1e3s"}`,
		`{}`, `null`, ``, `{"ttl":"10s"} {}`, `{"ttl":"` + strings.Repeat("1", 5000) + `s"}`,
	} {
		f.Add([]byte(s))
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), testSettings("registry-0", nil))
	f.Fuzz(func(t *testing.T, body []byte) {
		var want struct {
			TTL catalog.Duration `json:"ttl"`
		}
		werr := web.Unmarshal(body, &want)
		if werr == nil {
			werr = catalog.ValidateLeaseTTL(want.TTL)
		}
		status, raw := fuzzExchange(t, fuzzClient, jsonRequest(t, "POST", n.url+"/v1/registry/leases", body))
		agree(t, body, grantLimit, werr, status, 201, raw)
		if status != 201 {
			return
		}
		var l catalog.Lease
		if err := json.Unmarshal(raw, &l); err != nil {
			t.Fatal(err)
		}
		if l.TTL != want.TTL || !l.ExpiresAt.After(time.Now().Add(-time.Minute)) {
			t.Fatalf("granted %+v for %s", l, want.TTL.Std())
		}
		fuzzExchange(t, fuzzClient, jsonRequest(t, "DELETE", fmt.Sprintf("%s/v1/registry/leases/%d", n.url, l.ID), nil))
	})
}

// FuzzNames checks service names and instance IDs: ValidateService and
// ValidateID never panic, refuse with fault.Invalid, accept exactly what
// the document's patterns (and a byte-by-byte reading of the rule) accept,
// and accept only names that need no escaping in a URL path. A replica
// answers a name in a path with 400 when it is invalid and 200 or 404
// when it is valid.
func FuzzNames(f *testing.F) {
	for _, s := range [][2]string{
		{"web", "web-1"}, {"steward-registry", "registry-0"}, {"a", "a"}, {"0-", "A.b_c:d-e"}, {strings.Repeat("a", 63), strings.Repeat("i", 128)},
		{strings.Repeat("a", 64), strings.Repeat("i", 129)}, {"", ""}, {"Web", "."}, {"we b", ".."}, {"web_", "..."}, {"wéb", "a/b"},
		{"-", "a%2Fb"}, {"web\n", "a\x00"}, {"web/", "?"}, {"%41", "id#1"}, {"web.", "ü"},
	} {
		f.Add(s[0], s[1])
	}
	servicePattern := regexp.MustCompile(contract.Doc.Components.Schemas["ServiceName"].Value.Pattern)
	var idPatterns []*regexp.Regexp
	for _, sub := range contract.Doc.Components.Schemas["InstanceID"].Value.AllOf {
		idPatterns = append(idPatterns, regexp.MustCompile(sub.Value.Pattern))
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), testSettings("registry-0", nil))
	f.Fuzz(func(t *testing.T, service, id string) {
		svcErr, idErr := catalog.ValidateService(service), catalog.ValidateID(id)
		for _, err := range []error{svcErr, idErr} {
			if err != nil && fault.KindOf(err) != fault.Invalid {
				t.Fatalf("refused as %v, want %v: %v", fault.KindOf(err), fault.Invalid, err)
			}
		}
		if ok := svcErr == nil; ok != isServiceName(service) || ok != servicePattern.MatchString(service) {
			t.Fatalf("ValidateService(%q) = %v; the rule says %v, the document's pattern %v", service, svcErr, isServiceName(service), servicePattern.MatchString(service))
		}
		docID := true
		for _, p := range idPatterns {
			docID = docID && p.MatchString(id)
		}
		if ok := idErr == nil; ok != isInstanceID(id) || ok != docID {
			t.Fatalf("ValidateID(%q) = %v; the rule says %v, the document's patterns %v", id, idErr, isInstanceID(id), docID)
		}
		if svcErr == nil && url.PathEscape(service) != service || idErr == nil && url.PathEscape(id) != id {
			t.Fatalf("%q/%q is accepted but needs escaping in a URL path", service, id)
		}
		if service == "" || id == "" {
			return // no path to send: an empty segment routes elsewhere
		}
		u := n.url + "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id) + "?consistency=serializable"
		req, err := http.NewRequest("GET", u, nil)
		if err != nil {
			t.Skipf("not a URL net/http sends: %v", err)
		}
		status, raw := fuzzExchange(t, httpClient, req)
		if valid := svcErr == nil && idErr == nil; valid && status != 200 && status != 404 || !valid && status != 400 {
			t.Fatalf("GET %s = %d (service valid: %v, id valid: %v): %s", u, status, svcErr == nil, idErr == nil, raw)
		}
	})
}

// isServiceName is the rule for service names read byte by byte: 1 to 63
// of a-z, 0-9 and '-'.
func isServiceName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isInstanceID is the rule for instance IDs read byte by byte: 1 to 128
// of A-Z, a-z, 0-9, '.', '_', ':' and '-', other than "." and "..".
func isInstanceID(s string) bool {
	if len(s) < 1 || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._:-", c) >= 0) {
			return false
		}
	}
	return true
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
