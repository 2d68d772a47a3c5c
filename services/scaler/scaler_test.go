package scaler_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// receiver is a webhook endpoint as a careful user writes one: it checks
// the signature, refuses a token older than the newest it acknowledged
// (409), and records every call.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	secret []byte

	mu       sync.Mutex
	calls    []webhookCall
	newest   int64
	replicas int
	fail     int // answer this status instead of 200 (0: succeed)
}

// webhookCall is one webhook request the receiver saw.
type webhookCall struct {
	Replicas int
	Token    int64
	Accepted bool
}

func startReceiver(t testing.TB) *receiver {
	rc := &receiver{t: t, secret: []byte("s3cret"), replicas: 1}
	rc.srv = httptest.NewServer(rc)
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]int{"replicas": rc.replicas})
		return
	}
	body, _ := io.ReadAll(r.Body)
	if driver.Verify(rc.secret, r.Header, body, time.Now(), time.Minute) != nil {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req driver.WebhookRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	c := webhookCall{Replicas: req.Replicas, Token: req.Token}
	switch {
	case rc.fail != 0:
		rc.calls = append(rc.calls, c)
		http.Error(w, "refused by the test", rc.fail)
		return
	case req.Token < rc.newest:
		rc.calls = append(rc.calls, c)
		http.Error(w, "fenced: a newer leader has acted", http.StatusConflict)
		return
	}
	c.Accepted = true
	rc.calls = append(rc.calls, c)
	rc.newest, rc.replicas = req.Token, req.Replicas
	_ = json.NewEncoder(w).Encode(map[string]int{"replicas": req.Replicas})
}

func (rc *receiver) snapshot() (replicas int, calls []webhookCall) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.replicas, slices.Clone(rc.calls)
}

func (rc *receiver) setFail(status int) {
	rc.mu.Lock()
	rc.fail = status
	rc.mu.Unlock()
}

// specFor is a scaler spec on gateway_rps (a service-wide signal, as the
// gateway sends it) with a webhook driver to rc: target 10 per replica,
// quick syncs, no scale-down window.
func specFor(rc *receiver, service string, extra string) string {
	return fmt.Sprintf(`{"service":%q,"minReplicas":1,"maxReplicas":10,
		"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
		"syncPeriod":"200ms",
		"behavior":{"scaleDown":{"stabilizationWindow":"0s"}},
		"driver":{"type":"webhook","url":%q,"secret":"s3cret","readCurrent":true,"backoff":"10ms","maxAttempts":2}%s}`,
		service, rc.srv.URL, extra)
}

// push sends one gateway_rps sample for service.
func push(t testing.TB, url, service string, rps float64) {
	t.Helper()
	body := fmt.Sprintf(`{"samples":[{"service":%q,"instance":"gateway-test","name":"gateway_rps","value":%g}]}`, service, rps)
	expect(t, call(t, "POST", url+"/v1/metrics", body), http.StatusAccepted)
}

func getScaler(t testing.TB, url, name string) ledger.Scaler {
	t.Helper()
	return decode[ledger.Scaler](t, expect(t, call(t, "GET", url+"/v1/scalers/"+name, ""), 200))
}

func TestScalesUpAndDown(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	created := decode[ledger.Scaler](t, expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), http.StatusCreated))
	if created.Generation != 1 || created.Spec.Tolerance == nil || *created.Spec.Tolerance != 0.1 || created.Spec.Driver.Secret != "" {
		t.Fatalf("created = %+v, want generation 1, defaults filled, no secret", created)
	}
	// 45 requests a second over one replica at 10 each: 5 replicas.
	push(t, n.url, "web", 45)
	webtest.WaitFor(t, 15*time.Second, "a scale to 5", func() bool { r, _ := rc.snapshot(); return r == 5 })
	webtest.WaitFor(t, 5*time.Second, "the status to show 5", func() bool { return getScaler(t, n.url, "web").Status.CurrentReplicas == 5 })
	sc := getScaler(t, n.url, "web")
	d := sc.Status.LastDecision
	if d == nil || d.Token < 1 || d.Leader != "scaler-0" {
		t.Fatalf("lastDecision = %+v, want one made by scaler-0 with its token", d)
	}
	if sc.Status.LastScaleTime == nil {
		t.Fatal("lastScaleTime not set after a scale")
	}
	// The decision that scaled is explained.
	ds := decode[struct {
		Items    []ledger.Decision `json:"items"`
		Complete bool              `json:"complete"`
	}](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/decisions?limit=1000", ""), 200))
	i := slices.IndexFunc(ds.Items, func(d ledger.Decision) bool { return d.DesiredReplicas == 5 && d.CurrentReplicas == 1 })
	if i < 0 {
		t.Fatalf("no decision 1 → 5 among %d", len(ds.Items))
	}
	up := ds.Items[i]
	if up.Actuation == nil || up.Actuation.Result == nil || up.Actuation.Result.Replicas != 5 || up.Observed["gateway_rps"] != 45 ||
		len(up.Metrics) != 1 || up.Metrics[0].Proposal != 5 || up.Metrics[0].Usage != 45 {
		t.Fatalf("decision 1 → 5 = %+v, want its metric (usage 45, proposal 5), observed 45 and the driver's answer", up)
	}
	// Load falls: back to 2 (15 rps over 5 replicas is 0.3 of target;
	// proposal ceil(5 × 0.3) = 2).
	push(t, n.url, "web", 15)
	webtest.WaitFor(t, 15*time.Second, "a scale down to 2", func() bool { r, _ := rc.snapshot(); return r == 2 })
	_, calls := rc.snapshot()
	for _, c := range calls {
		if !c.Accepted || c.Token != calls[0].Token {
			t.Fatalf("calls = %+v, want every call accepted under one token", calls)
		}
	}
	if got := []int{calls[0].Replicas, calls[len(calls)-1].Replicas}; len(calls) != 2 || got[0] != 5 || got[1] != 2 {
		t.Fatalf("driver calls = %+v, want exactly 5 then 2", calls)
	}
}

func TestDriverErrorInStatus(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	rc.setFail(http.StatusForbidden)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), http.StatusCreated)
	push(t, n.url, "web", 30)
	var sc ledger.Scaler
	webtest.WaitFor(t, 15*time.Second, "the driver error in the status", func() bool {
		sc = getScaler(t, n.url, "web")
		return sc.Status.DriverError != ""
	})
	if !strings.Contains(sc.Status.DriverError, "403") {
		t.Errorf("driverError = %q, want the receiver's 403", sc.Status.DriverError)
	}
	i := slices.IndexFunc(sc.Status.Conditions, func(c hpa.Condition) bool { return c.Type == "AbleToScale" })
	if i < 0 || sc.Status.Conditions[i].Status || sc.Status.Conditions[i].Reason != "FailedUpdateScale" {
		t.Fatalf("conditions = %+v, want AbleToScale false FailedUpdateScale", sc.Status.Conditions)
	}
	// The receiver recovers: the next sync scales, and the error clears.
	rc.setFail(0)
	webtest.WaitFor(t, 15*time.Second, "a scale to 3 after the receiver recovered", func() bool { r, _ := rc.snapshot(); return r == 3 })
	webtest.WaitFor(t, 5*time.Second, "the error to clear", func() bool { return getScaler(t, n.url, "web").Status.DriverError == "" })
}

// TestUnreadableCountInStatus: a driver that cannot read the replica
// count (the webhook's endpoint is gone) makes no decision, and the
// status says why with HPA's condition.
func TestUnreadableCountInStatus(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	rc.srv.Close()
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), http.StatusCreated)
	var sc ledger.Scaler
	webtest.WaitFor(t, 15*time.Second, "a decision that says why none was made", func() bool {
		sc = getScaler(t, n.url, "web")
		return sc.Status.LastDecision != nil
	})
	d := sc.Status.LastDecision
	i := slices.IndexFunc(sc.Status.Conditions, func(c hpa.Condition) bool { return c.Type == "AbleToScale" })
	if d.Error == "" || !strings.Contains(d.Error, "read the replica count") || i < 0 || sc.Status.Conditions[i].Status || sc.Status.Conditions[i].Reason != "FailedGetScale" {
		t.Fatalf("status = %+v, want the read failure in the decision and AbleToScale false FailedGetScale", sc.Status)
	}
}

// TestConditionalWrites: If-None-Match: * creates only; If-Match names
// the modRevision (the ETag GET and PUT answer) a put or delete expects,
// and a stale one is 412 with the current modRevision and changes
// nothing — read-modify-write without lost updates.
func TestConditionalWrites(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	n.cut.Store(true) // no leader: only these requests write
	rc := startReceiver(t)
	u := n.url + "/v1/scalers/web"
	created := expect(t, call(t, "PUT", u, specFor(rc, "web", ""), "If-None-Match", "*"), 201)
	etag := created.header.Get("ETag")
	if etag != fmt.Sprintf(`"%d"`, decode[ledger.Scaler](t, created).ModRevision) {
		t.Fatalf("ETag = %q, want the modRevision quoted", etag)
	}
	again := expect(t, call(t, "PUT", u, specFor(rc, "web", ""), "If-None-Match", "*"), 412)
	if again.body["modRevision"] == nil {
		t.Fatalf("412 without modRevision: %s", again.raw)
	}
	if got := call(t, "GET", u, "").header.Get("ETag"); got != etag {
		t.Fatalf("GET ETag = %q, want %q", got, etag)
	}
	updated := expect(t, call(t, "PUT", u, specFor(rc, "web", ""), "If-Match", etag), 200)
	if updated.header.Get("ETag") == etag {
		t.Fatal("an update kept the ETag")
	}
	// The spec and its versions, not the status: a control loop that won
	// the election before the cut may still record decisions meanwhile.
	specOf := func() string {
		sc := decode[ledger.Scaler](t, call(t, "GET", u, ""))
		sc.Status = ledger.Status{}
		b, _ := json.Marshal(sc)
		return string(b)
	}
	before := specOf()
	expect(t, call(t, "PUT", u, specFor(rc, "web", ""), "If-Match", etag), 412)                          // stale
	expect(t, call(t, "DELETE", u, "", "If-Match", etag), 412)                                           // stale
	expect(t, call(t, "PUT", n.url+"/v1/scalers/other", specFor(rc, "web", ""), "If-Match", `"1"`), 412) // absent
	expect(t, call(t, "PUT", u, specFor(rc, "web", ""), "If-Match", "soon"), 400)
	expect(t, call(t, "DELETE", u, "", "If-None-Match", "*"), 400)
	if after := specOf(); after != before {
		t.Fatalf("a refused write changed the scaler:\n%s\n%s", before, after)
	}
	expect(t, call(t, "DELETE", u, "", "If-Match", updated.header.Get("ETag")), 200)
	expect(t, call(t, "GET", u, ""), 404)
}

// TestBlockingGet: GET with ?index= waits until something about the
// scaler is applied after index (here, the leader's next decision) and
// answers at once when something already was; X-Steward-Revision is the
// next index.
func TestBlockingGet(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	u := n.url + "/v1/scalers/web"
	expect(t, call(t, "PUT", u, specFor(rc, "web", `,"syncPeriod":"1s"`)), 201)
	first := expect(t, call(t, "GET", u, ""), 200)
	idx := first.header.Get("X-Steward-Revision")
	start := time.Now()
	next := expect(t, call(t, "GET", u+"?index="+idx+"&wait=10s", ""), 200)
	got, _ := strconv.ParseInt(next.header.Get("X-Steward-Revision"), 10, 64)
	want, _ := strconv.ParseInt(idx, 10, 64)
	if got <= want {
		t.Fatalf("blocking GET answered at revision %d, want after %d", got, want)
	}
	if d := decode[ledger.Scaler](t, next).Status.LastDecision; d == nil || d.Revision <= want {
		t.Fatalf("blocking GET answered without a newer decision: %+v", d)
	}
	t.Logf("woken by the next decision after %s", time.Since(start).Round(time.Millisecond))
	// An index already passed answers at once, not after the wait.
	quick := time.Now()
	expect(t, call(t, "GET", u+"?index=1&wait=1m", ""), 200)
	if time.Since(quick) > 30*time.Second {
		t.Fatal("a blocking GET on a passed index waited")
	}
	expect(t, call(t, "GET", u+"?index=-1", ""), 400)
	expect(t, call(t, "GET", u+"?index=1&wait=forever", ""), 400)
}
