package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
)

// instance is an upstream whose answers the test decides: it counts the
// requests it receives and remembers the POST bodies and the headers of
// the last request.
type instance struct {
	id    string
	srv   *httptest.Server
	hits  atomic.Int64
	mu    sync.Mutex
	posts []string
	last  http.Header
}

// startInstance starts an instance of service that answers with h (nil:
// 200 with its id) and registers it.
func startInstance(t *testing.T, p *plane, service, id string, reg api.Registration, h http.HandlerFunc) *instance {
	t.Helper()
	in := &instance{id: id}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		in.mu.Lock()
		in.last = r.Header.Clone()
		if r.Method == http.MethodPost {
			in.posts = append(in.posts, string(body))
		}
		in.mu.Unlock()
		w.Header().Set("X-Instance", id)
		if h != nil {
			h(w, r)
			return
		}
		fmt.Fprint(w, id)
	}))
	t.Cleanup(in.srv.Close)
	host, port, _ := net.SplitHostPort(in.srv.Listener.Addr().String())
	reg.Address = host
	reg.Port, _ = strconv.Atoi(port)
	if _, err := p.reg.Register(context.Background(), service, id, reg); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *instance) postBodies() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.posts...)
}

func (in *instance) lastHeader() http.Header {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.last
}

// answer is a handler that answers code.
func answer(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// gate holds requests until it is opened (or their context ends) and
// counts those it held.
type gate struct {
	arrived atomic.Int64
	open    chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) hold(r *http.Request) {
	g.arrived.Add(1)
	select {
	case <-g.open:
	case <-r.Context().Done():
	}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

// metric reads one series from the gateway's /metrics; 0 when absent.
func metric(t *testing.T, g *gw, series string) float64 {
	t.Helper()
	_, body, _ := get(t, g.url+"/metrics")
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// waitRoutes waits until the gateway has the named route documents in
// force, without sending a request through them.
func waitRoutes(t *testing.T, g *gw, names ...string) {
	t.Helper()
	webtest.WaitFor(t, 10*time.Second, fmt.Sprintf("routes %v in force", names), func() bool {
		_, body, _ := get(t, g.url+"/gateway/routes")
		var st struct {
			Routes []struct{ Name string } `json:"routes"`
		}
		if json.Unmarshal([]byte(body), &st) != nil {
			return false
		}
		have := map[string]bool{}
		for _, r := range st.Routes {
			have[r.Name] = true
		}
		for _, n := range names {
			if !have[n] {
				return false
			}
		}
		return true
	})
}

// problem is a problem+json answer.
type problem struct {
	Type   string `json:"type"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// fetch makes one request with a deadline, so that a gateway that hangs
// fails the test instead of stalling it, and decodes a problem answer.
func fetch(t *testing.T, req *http.Request) (*http.Response, string, *problem) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := httpClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.Header.Get("Content-Type") != "application/problem+json" {
		return res, string(b), nil
	}
	var p problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	return res, string(b), &p
}

// status makes one GET with a deadline and returns its status; it may
// run on any goroutine (a failure is reported, not fatal: 0).
func status(t *testing.T, url string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	res, err := httpClient.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func noEjections(s *gateway.Settings) { s.EjectAfter = 1_000_000 }

// TestRetryBudget: every instance answers 503 to 40 concurrent GETs; at
// most 20% of the active requests (8) are retried at once, the rest are
// refused by the budget and answered with the upstream's 503.
func TestRetryBudget(t *testing.T) {
	const n = 40
	p := startPlane(t)
	first, retries := newGate(), newGate()
	defer first.release()
	defer retries.release()
	var arrivals atomic.Int64
	busy := func(w http.ResponseWriter, r *http.Request) {
		// The first n arrivals are the first attempts: no retry can
		// start before one of them is answered.
		if arrivals.Add(1) <= n {
			first.hold(r)
		} else {
			retries.hold(r)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	var ins []*instance
	for i := range 3 {
		ins = append(ins, startInstance(t, p, "web", fmt.Sprintf("w%d", i), api.Registration{}, busy))
	}
	g := startGateway(t, p, noEjections)
	putRoute(t, p, "budget", `{"match":{"pathPrefix":"/b/"},"service":"web","retry":{"attempts":1}}`)
	waitRoutes(t, g, "budget")

	var done atomic.Int64
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done.Add(1)
			codes <- status(t, g.url+"/b/x")
		}()
	}
	webtest.WaitFor(t, 20*time.Second, "every first attempt at an instance", func() bool { return first.arrived.Load() == n })
	first.release()
	// Each request is now either answered (its retry refused) or has its
	// retry held at an instance.
	webtest.WaitFor(t, 20*time.Second, "every request answered or retrying", func() bool {
		return done.Load()+retries.arrived.Load() == n
	})
	held := retries.arrived.Load()
	if held < 3 || held > n/5 {
		t.Errorf("%d retries in flight for %d active requests, want 3 (the minimum) to %d (20%%)", held, n, n/5)
	}
	if got := metric(t, g, `steward_gateway_retries_total{service="web"}`); got != float64(held) {
		t.Errorf("steward_gateway_retries_total = %v, want %d", got, held)
	}
	if got := metric(t, g, `steward_gateway_circuit_open_total{limit="retry-budget",service="web"}`); got != float64(n-held) {
		t.Errorf("retries refused by the budget = %v, want %d", got, n-held)
	}
	retries.release()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("a request answered %d, want the upstreams' 503", c)
		}
	}
	var hits int64
	for _, in := range ins {
		hits += in.hits.Load()
	}
	if hits != n+held {
		t.Errorf("instances received %d requests, want %d first attempts and %d retries", hits, n, held)
	}
}

// TestPerTryTimeout: an instance that never answers costs a request its
// per-try timeout, then the request succeeds on another instance.
func TestPerTryTimeout(t *testing.T) {
	p := startPlane(t)
	stuck := newGate()
	defer stuck.release()
	slow := startInstance(t, p, "web", "slow", api.Registration{}, func(w http.ResponseWriter, r *http.Request) { stuck.hold(r) })
	startInstance(t, p, "web", "fast", api.Registration{}, nil)
	g := startGateway(t, p, noEjections)
	putRoute(t, p, "pt", `{"match":{"pathPrefix":"/pt/"},"service":"web","timeout":"5m","loadBalancer":{"policy":"round-robin"},"retry":{"attempts":1,"perTryTimeout":"1s"}}`)
	waitRoutes(t, g, "pt")
	for i := 0; i < 20 && slow.hits.Load() < 2; i++ {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/pt/x", nil)
		res, body, _ := fetch(t, req)
		if res.StatusCode != 200 || res.Header.Get("X-Instance") != "fast" {
			t.Fatalf("GET = %d from %q: %s; want 200 from fast", res.StatusCode, res.Header.Get("X-Instance"), body)
		}
	}
	if slow.hits.Load() == 0 {
		t.Fatal("no request went to the slow instance first: the test proved nothing")
	}
	if got := metric(t, g, `steward_gateway_retries_total{service="web"}`); got != float64(slow.hits.Load()) {
		t.Errorf("retries = %v, want one per try cut short (%d)", got, slow.hits.Load())
	}
}

// TestIdempotencyKey: a POST with an Idempotency-Key is retried on a 503
// (with its body); one without is not, and reaches one instance only.
func TestIdempotencyKey(t *testing.T) {
	p := startPlane(t)
	busy := startInstance(t, p, "web", "busy", api.Registration{}, answer(http.StatusServiceUnavailable))
	ok := startInstance(t, p, "web", "ok", api.Registration{}, nil)
	g := startGateway(t, p, noEjections)
	putRoute(t, p, "post", `{"match":{"pathPrefix":"/p/"},"service":"web","loadBalancer":{"policy":"round-robin"},"retry":{"attempts":2}}`)
	waitRoutes(t, g, "post")
	post := func(body, key string) int {
		req, _ := http.NewRequest(http.MethodPost, g.url+"/p/orders", strings.NewReader(body))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		res, _, _ := fetch(t, req)
		return res.StatusCode
	}

	for i := range 10 {
		if code := post(fmt.Sprintf("keyed-%d", i), fmt.Sprintf("key-%d", i)); code != 200 {
			t.Fatalf("POST with an Idempotency-Key = %d, want 200 (retried)", code)
		}
	}
	refused := 0
	for i := range 10 {
		switch code := post(fmt.Sprintf("plain-%d", i), ""); code {
		case 200:
		case 503:
			refused++
		default:
			t.Fatalf("POST without a key = %d", code)
		}
	}

	seen := map[string][]string{} // body → instances, in order
	for _, in := range []*instance{busy, ok} {
		for _, b := range in.postBodies() {
			seen[b] = append(seen[b], in.id)
		}
	}
	keyedRetries := 0
	for i := range 10 {
		keyed, plain := fmt.Sprintf("keyed-%d", i), fmt.Sprintf("plain-%d", i)
		switch got := strings.Join(seen[keyed], ","); got {
		case "ok":
		case "busy,ok":
			keyedRetries++
		default:
			t.Errorf("%s reached %q, want ok, or busy then ok (the same body)", keyed, got)
		}
		if len(seen[plain]) != 1 {
			t.Errorf("%s reached %v, want exactly one instance", plain, seen[plain])
		}
	}
	plainAtBusy := 0
	for _, b := range busy.postBodies() {
		if strings.HasPrefix(b, "plain-") {
			plainAtBusy++
		}
	}
	if keyedRetries == 0 || plainAtBusy == 0 {
		t.Fatalf("busy got %d keyed and %d plain POSTs: the test proved nothing", keyedRetries, plainAtBusy)
	}
	if refused != plainAtBusy {
		t.Errorf("%d POSTs without a key answered 503, want the %d that reached busy", refused, plainAtBusy)
	}
	if got := metric(t, g, `steward_gateway_retries_total{service="web"}`); got != float64(keyedRetries) {
		t.Errorf("retries = %v, want %d (keyed POSTs only)", got, keyedRetries)
	}
}

// TestCircuitBreakerMaxRequests: with MaxRequests requests in flight to a
// service, the next one is refused at once with 503 problem+json and
// never reaches an instance.
func TestCircuitBreakerMaxRequests(t *testing.T) {
	p := startPlane(t)
	stuck := newGate()
	defer stuck.release()
	slow := startInstance(t, p, "web", "slow", api.Registration{}, func(w http.ResponseWriter, r *http.Request) { stuck.hold(r) })
	g := startGateway(t, p, func(s *gateway.Settings) { s.MaxRequests = 2 })

	codes := make(chan int, 2)
	for range 2 {
		go func() { codes <- status(t, g.url+"/s/web/slow") }()
	}
	webtest.WaitFor(t, 10*time.Second, "two requests in flight", func() bool { return stuck.arrived.Load() == 2 })
	req, _ := http.NewRequest(http.MethodGet, g.url+"/s/web/x", nil)
	res, body, prob := fetch(t, req)
	if res.StatusCode != 503 || prob == nil || prob.Status != 503 || !strings.Contains(prob.Detail, "2 requests in flight") {
		t.Fatalf("a third request = %d %s, want 503 problem+json for 2 requests in flight", res.StatusCode, body)
	}
	if got := slow.hits.Load(); got != 2 {
		t.Fatalf("the instance received %d requests, want 2 (the refused one never sent)", got)
	}
	if got := metric(t, g, `steward_gateway_circuit_open_total{limit="requests",service="web"}`); got != 1 {
		t.Errorf("circuit_open_total{limit=requests} = %v, want 1", got)
	}
	stuck.release()
	for range 2 {
		if c := <-codes; c != 200 {
			t.Errorf("a held request = %d, want 200", c)
		}
	}
	if code, _, _ := get(t, g.url+"/s/web/x"); code != 200 {
		t.Fatalf("after the requests in flight ended = %d, want 200", code)
	}
}

// TestCircuitBreakerMaxPending: with MaxPending attempts waiting for
// response headers, the next request is refused with 503 problem+json;
// the refusal is the gateway's own limit, so it neither counts against
// an instance (outlier detection, in-flight) nor is retried.
func TestCircuitBreakerMaxPending(t *testing.T) {
	p := startPlane(t)
	stuck := newGate()
	defer stuck.release()
	var once atomic.Bool
	hold := func(w http.ResponseWriter, r *http.Request) {
		if once.CompareAndSwap(false, true) {
			stuck.hold(r)
		}
	}
	a := startInstance(t, p, "web", "a", api.Registration{}, hold)
	b := startInstance(t, p, "web", "b", api.Registration{}, hold)
	g := startGateway(t, p, func(s *gateway.Settings) { s.MaxPending = 1; s.EjectAfter = 3 })

	held := make(chan int, 1)
	go func() { held <- status(t, g.url+"/s/web/held") }()
	webtest.WaitFor(t, 10*time.Second, "one attempt waiting for headers", func() bool { return stuck.arrived.Load() == 1 })
	const refused = 10
	for range refused {
		req, _ := http.NewRequest(http.MethodGet, g.url+"/s/web/x", nil)
		res, body, prob := fetch(t, req)
		if res.StatusCode != 503 || prob == nil || !strings.Contains(prob.Detail, "too many requests are waiting") {
			t.Fatalf("a request over MaxPending = %d %s, want 503 problem+json", res.StatusCode, body)
		}
	}
	if got := a.hits.Load() + b.hits.Load(); got != 1 {
		t.Fatalf("instances received %d requests, want only the held one", got)
	}
	for series, want := range map[string]float64{
		`steward_gateway_circuit_open_total{limit="pending",service="web"}`: refused,
		`steward_gateway_retries_total{service="web"}`:                      0,
		`steward_gateway_upstream_in_flight{service="web"}`:                 1,
		`steward_gateway_upstream_ejected{service="web"}`:                   0,
	} {
		if got := metric(t, g, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	stuck.release()
	if c := <-held; c != 200 {
		t.Errorf("the held request = %d, want 200", c)
	}
	if got := spread(t, g.url+"/s/web/x", 20); got["a"] == 0 || got["b"] == 0 {
		t.Errorf("after the pending request ended, traffic = %v, want both instances", got)
	}
}

// TestZonePreference: the gateway's zone, or the request's
// X-Steward-Zone, keeps traffic in that zone while it has an instance,
// and falls back to the others when it has none.
func TestZonePreference(t *testing.T) {
	p := startPlane(t)
	startInstance(t, p, "web", "a1", api.Registration{Zone: new("zone-a")}, nil)
	startInstance(t, p, "web", "a2", api.Registration{Zone: new("zone-a")}, nil)
	b1 := startInstance(t, p, "web", "b1", api.Registration{Zone: new("zone-b")}, nil)
	g := startGateway(t, p, func(s *gateway.Settings) { s.Zone = "zone-a" })

	if got := spread(t, g.url+"/s/web/x", 60); got["b1"] != 0 || got["a1"]+got["a2"] != 60 {
		t.Errorf("from a gateway in zone-a = %v, want zone-a's instances only", got)
	}
	if got := spread(t, g.url+"/s/web/x", 30, "X-Steward-Zone", "zone-b"); got["b1"] != 30 {
		t.Errorf("X-Steward-Zone: zone-b = %v, want b1 only", got)
	}
	if h := b1.lastHeader(); h.Get("X-Steward-Zone") != "" {
		t.Errorf("the upstream saw X-Steward-Zone: %q, want it stripped", h.Get("X-Steward-Zone"))
	}
	if got := spread(t, g.url+"/s/web/x", 60, "X-Steward-Zone", "zone-c"); got["b1"] == 0 || got["a1"]+got["a2"] == 0 {
		t.Errorf("X-Steward-Zone: zone-c (no instance) = %v, want every zone used", got)
	}

	if err := p.reg.Deregister(context.Background(), "web", "b1"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "b1 gone from the pool", func() bool {
		return metric(t, g, `steward_gateway_upstream_instances{service="web"}`) == 2
	})
	before := b1.hits.Load()
	if got := spread(t, g.url+"/s/web/x", 30, "X-Steward-Zone", "zone-b"); got["a1"]+got["a2"] != 30 {
		t.Errorf("X-Steward-Zone: zone-b without an instance there = %v, want zone-a's", got)
	}
	if b1.hits.Load() != before {
		t.Error("a deregistered instance received requests")
	}
}

// TestOutlierMaxEjectedShare: three of four instances fail every
// request; outlier detection ejects two (half the pool) and no more, so
// the third failing one keeps its share of the traffic.
func TestOutlierMaxEjectedShare(t *testing.T) {
	p := startPlane(t)
	good := startInstance(t, p, "web", "good", api.Registration{}, nil)
	var bad []*instance
	for i := range 3 {
		bad = append(bad, startInstance(t, p, "web", fmt.Sprintf("bad%d", i), api.Registration{}, answer(http.StatusInternalServerError)))
	}
	g := startGateway(t, p, func(s *gateway.Settings) { s.EjectAfter = 2; s.BaseEjection = 10 * time.Minute })
	putRoute(t, p, "rr", `{"match":{"pathPrefix":"/o/"},"service":"web","loadBalancer":{"policy":"round-robin"}}`)
	waitRoutes(t, g, "rr")
	for range 40 {
		get(t, g.url+"/o/x")
	}
	if got := metric(t, g, `steward_gateway_upstream_ejected{service="web"}`); got != 2 {
		t.Fatalf("ejected = %v, want 2 (MaxEjectedShare 0.5 of 4)", got)
	}
	before := map[*instance]int64{}
	for _, in := range append(bad, good) {
		before[in] = in.hits.Load()
	}
	for range 20 {
		get(t, g.url+"/o/x")
	}
	serving := 0
	for _, in := range bad {
		if in.hits.Load() > before[in] {
			serving++
		}
	}
	if serving != 1 || good.hits.Load() == before[good] {
		t.Fatalf("over 20 requests %d failing instances served and good served %d, want good and one failing instance (not ejected)",
			serving, good.hits.Load()-before[good])
	}
}

// TestDeregisteredInstance: once the registry watch drops an instance,
// it gets no more traffic though it still answers.
func TestDeregisteredInstance(t *testing.T) {
	p := startPlane(t)
	startInstance(t, p, "web", "stays", api.Registration{}, nil)
	leaves := startInstance(t, p, "web", "leaves", api.Registration{}, nil)
	g := startGateway(t, p)
	webtest.WaitFor(t, 10*time.Second, "both instances used", func() bool { return len(spread(t, g.url+"/s/web/x", 10)) == 2 })

	if err := p.reg.Deregister(context.Background(), "web", "leaves"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "the instance gone from the pool", func() bool {
		return metric(t, g, `steward_gateway_upstream_instances{service="web"}`) == 1
	})
	before := leaves.hits.Load()
	if got := spread(t, g.url+"/s/web/x", 40); got["stays"] != 40 {
		t.Errorf("after the deregistration = %v, want every request at stays", got)
	}
	if leaves.hits.Load() != before {
		t.Errorf("the deregistered instance received %d requests", leaves.hits.Load()-before)
	}
}

// TestForwardedAndHopByHop: the upstream learns the client, host and
// scheme from X-Forwarded-* set by the gateway (the client's own are not
// trusted: the gateway is the front door), and no hop-by-hop header
// crosses the gateway in either direction.
func TestForwardedAndHopByHop(t *testing.T) {
	p := startPlane(t)
	up := startInstance(t, p, "web", "w", api.Registration{}, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Up-End-To-End", "kept")
		fmt.Fprint(w, "ok")
	})
	g := startGateway(t, p)
	webtest.WaitFor(t, 10*time.Second, "route", func() bool { c, _, _ := get(t, g.url+"/s/web/x"); return c == 200 })

	c, err := net.Dial("tcp", strings.TrimPrefix(g.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprint(c, "GET /s/web/headers HTTP/1.1\r\n"+
		"Host: front.example:8443\r\n"+
		"Connection: keep-alive, X-Custom-Hop\r\n"+
		"X-Custom-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Upgrade: h2c\r\n"+
		"X-Forwarded-For: 203.0.113.9\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"Forwarded: for=203.0.113.9\r\n"+
		"X-End-To-End: kept\r\n"+
		"\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET = %d", res.StatusCode)
	}

	h := up.lastHeader()
	for name, want := range map[string]string{
		"X-Forwarded-For":   "127.0.0.1",
		"X-Forwarded-Host":  "front.example:8443",
		"X-Forwarded-Proto": "http",
		"Forwarded":         "",
		"X-End-To-End":      "kept",
		"Via":               "1.1 gateway-test",
		"Connection":        "",
		"X-Custom-Hop":      "",
		"Keep-Alive":        "",
		"Proxy-Connection":  "",
		"Upgrade":           "",
	} {
		if got := strings.Join(h.Values(name), ", "); got != want {
			t.Errorf("upstream saw %s: %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"X-Up-Hop":        "",
		"Keep-Alive":      "",
		"X-Up-End-To-End": "kept",
		"X-Instance":      "w",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("client saw %s: %q, want %q", name, got, want)
		}
	}
	if got := res.Header.Get("Connection"); strings.Contains(strings.ToLower(got), "x-up-hop") {
		t.Errorf("client saw Connection: %q, the upstream's hop-by-hop list", got)
	}
}

// TestRouteTimeout: an upstream slower than the route's timeout is
// answered 504 problem+json.
func TestRouteTimeout(t *testing.T) {
	p := startPlane(t)
	stuck := newGate()
	defer stuck.release()
	startInstance(t, p, "web", "slow", api.Registration{}, func(w http.ResponseWriter, r *http.Request) { stuck.hold(r) })
	g := startGateway(t, p)
	putRoute(t, p, "t", `{"match":{"pathPrefix":"/t/"},"service":"web","timeout":"300ms","retry":{"attempts":2}}`)
	waitRoutes(t, g, "t")
	req, _ := http.NewRequest(http.MethodGet, g.url+"/t/x", nil)
	res, body, prob := fetch(t, req)
	if res.StatusCode != 504 || prob == nil || prob.Status != 504 || prob.Type != "urn:steward:problem:timeout" ||
		!strings.Contains(prob.Detail, "did not answer in time") {
		t.Fatalf("GET past the route's timeout = %d %s, want 504 problem+json", res.StatusCode, body)
	}
	if got := metric(t, g, `steward_gateway_requests_total{code="504",route="t",service="web"}`); got != 1 {
		t.Errorf("requests_total{code=504} = %v, want 1", got)
	}
}
