package registry_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/catalog"
)

func TestRegisterListDeregister(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	for _, reg := range []struct{ id, body string }{
		{"b", `{"address":"10.0.0.2","port":8080,"tags":["v1","blue"],"zone":"eu-1","weight":5}`},
		{"a", `{"address":"10.0.0.1","port":8080,"tags":["v1"],"zone":"eu-2","metadata":{"metricsPath":"/metrics"}}`},
		{"c", `{"address":"web-3.internal.example","port":8080,"tags":["v2"],"zone":"eu-1","version":"2.0.1"}`},
	} {
		inst := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+reg.id, reg.body), 200).instance(t)
		if inst.Status != catalog.Passing || inst.ID != reg.id || inst.Weight == 0 {
			t.Fatalf("register %s = %+v", reg.id, inst)
		}
	}
	for _, tt := range []struct{ query, want string }{
		{"", "a,b,c"},
		{"?tag=v1", "a,b"},
		{"?zone=eu-1", "b,c"},
		{"?zone=eu-1&tag=v1", "b"},
		{"?status=passing", "a,b,c"},
		{"?status=critical", ""},
	} {
		if got := ids(instances(t, n.url, "web", tt.query)); got != tt.want {
			t.Errorf("GET instances%s = %q, want %q", tt.query, got, tt.want)
		}
	}
	// Re-registering updates in place.
	again := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.9","port":9090}`), 200).instance(t)
	if again.Address != "10.0.0.9" || again.Port != 9090 || len(again.Tags) != 0 {
		t.Fatalf("re-register = %+v", again)
	}
	// One instance reports warning and one critical: the summary counts
	// each status apart.
	for id, status := range map[string]catalog.Status{"d": catalog.Warning, "e": catalog.Critical} {
		expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+id, `{"address":"10.0.0.4","port":8080,"check":{"ttl":"1m"}}`), 200)
		if got := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+id+"/heartbeat", `{"status":"`+string(status)+`"}`), 200).instance(t); got.Status != status {
			t.Fatalf("heartbeat %s %s = %+v", id, status, got)
		}
	}
	var services []catalog.Service
	expect(t, call(t, "GET", n.url+"/v1/services", ""), 200).decode(t, &services)
	var web *catalog.Service
	for i := range services {
		if services[i].Name == "web" {
			web = &services[i]
		}
	}
	if web == nil || web.Instances != 5 || web.Passing != 3 || web.Warning != 1 || web.Critical != 1 || strings.Join(web.Tags, ",") != "blue,v1,v2" {
		t.Fatalf("GET /v1/services web = %+v, want 5 instances: 3 passing, 1 warning, 1 critical", web)
	}
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/instances/b", ""), 200)
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/instances/b", ""), 404)
	expect(t, call(t, "GET", n.url+"/v1/services/web/instances/b", ""), 404)
	if got := ids(instances(t, n.url, "web", "")); got != "a,c,d,e" {
		t.Fatalf("after deregistering b: %q", got)
	}
}

// TestSelfRegistration: the registry is discoverable like anything else.
func TestSelfRegistration(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-7", nil))
	webtest.WaitFor(t, 10*time.Second, "steward-registry registered", func() bool {
		list := instances(t, n.url, registry.SelfService, "?status=passing")
		return len(list) == 1 && list[0].ID == "registry-7" && fmt.Sprintf("http://%s:%d", list[0].Address, list[0].Port) == n.url
	})
}

// TestHeartbeatExpiry: a missed TTL turns the instance critical within
// TTL + 1 s, and deregisterAfter removes it.
func TestHeartbeatExpiry(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	const ttl = time.Second
	expect(t, call(t, "PUT", n.url+"/v1/services/api/instances/x", `{"address":"10.0.0.1","port":80,"check":{"ttl":"1s","deregisterAfter":"2s"}}`), 200)
	// Heartbeats keep it passing past several TTLs.
	var last time.Time
	for range 8 {
		time.Sleep(ttl / 4)
		expect(t, call(t, "PUT", n.url+"/v1/services/api/instances/x/heartbeat", ""), 200)
		last = time.Now()
		if s := statusOf(t, n.url, "api", "x"); s != catalog.Passing {
			t.Fatalf("status while heartbeating = %q", s)
		}
	}
	webtest.WaitFor(t, 10*time.Second, "critical", func() bool { return statusOf(t, n.url, "api", "x") == catalog.Critical })
	if late := time.Since(last) - ttl; late > time.Second {
		t.Fatalf("critical %s after the TTL ran out, want within 1s", late)
	}
	inst := expect(t, call(t, "GET", n.url+"/v1/services/api/instances/x", ""), 200).instance(t)
	if !strings.Contains(inst.Output, "TTL 1s expired") {
		t.Fatalf("output = %q", inst.Output)
	}
	// A heartbeat brings it back; a heartbeat may also report a status.
	expect(t, call(t, "PUT", n.url+"/v1/services/api/instances/x/heartbeat", `{"status":"warning","output":"queue deep"}`), 200)
	if inst := expect(t, call(t, "GET", n.url+"/v1/services/api/instances/x", ""), 200).instance(t); inst.Status != catalog.Warning || inst.Output != "queue deep" {
		t.Fatalf("after a warning heartbeat: %s %q", inst.Status, inst.Output)
	}
	webtest.WaitFor(t, 10*time.Second, "deregistered after 2s critical", func() bool { return statusOf(t, n.url, "api", "x") == "" })
	expect(t, call(t, "PUT", n.url+"/v1/services/api/instances/x/heartbeat", ""), 404)
}

// target is a real HTTP server whose health the test flips, recording
// which replica probed it.
type target struct {
	srv      *httptest.Server
	healthy  atomic.Bool
	mu       sync.Mutex
	checkers map[string]int
}

func newTarget(t *testing.T) *target {
	tg := &target{checkers: map[string]int{}}
	tg.healthy.Store(true)
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tg.mu.Lock()
		tg.checkers[r.Header.Get("X-Steward-Checker")]++
		tg.mu.Unlock()
		if !tg.healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// probedBy returns who probed since the last call.
func (tg *target) probedBy() map[string]int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	out := tg.checkers
	tg.checkers = map[string]int{}
	return out
}

func TestActiveChecks(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	tg := newTarget(t)
	host, port, _ := net.SplitHostPort(tg.srv.Listener.Addr().String())
	body := fmt.Sprintf(`{"address":%q,"port":%s,"check":{"http":"%s/health","interval":"1s","timeout":"500ms"}}`, host, port, tg.srv.URL)
	if inst := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/h", body), 200).instance(t); inst.Status != catalog.Critical || inst.Output != catalog.AwaitingFirstCheck {
		t.Fatalf("before the first probe: %s %q, want critical awaiting the first check", inst.Status, inst.Output)
	}

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tcpAddr := tcp.Addr().String()
	expect(t, call(t, "PUT", n.url+"/v1/services/db/instances/t", fmt.Sprintf(`{"address":"127.0.0.1","port":5432,"check":{"tcp":%q,"interval":"1s","timeout":"500ms"}}`, tcpAddr)), 200)

	webtest.WaitFor(t, 10*time.Second, "http check passing", func() bool { return statusOf(t, n.url, "web", "h") == catalog.Passing })
	webtest.WaitFor(t, 10*time.Second, "tcp check passing", func() bool { return statusOf(t, n.url, "db", "t") == catalog.Passing })

	tg.healthy.Store(false)
	webtest.WaitFor(t, 10*time.Second, "http check critical", func() bool { return statusOf(t, n.url, "web", "h") == catalog.Critical })
	inst := expect(t, call(t, "GET", n.url+"/v1/services/web/instances/h", ""), 200).instance(t)
	if !strings.Contains(inst.Output, "503") {
		t.Fatalf("output = %q, want the 503", inst.Output)
	}
	tg.healthy.Store(true)
	webtest.WaitFor(t, 10*time.Second, "http check passing again", func() bool { return statusOf(t, n.url, "web", "h") == catalog.Passing })

	tcp.Close()
	webtest.WaitFor(t, 10*time.Second, "tcp check critical", func() bool { return statusOf(t, n.url, "db", "t") == catalog.Critical })
	again, err := net.Listen("tcp", tcpAddr)
	if err != nil {
		t.Skipf("could not listen on %s again: %v", tcpAddr, err)
	}
	defer again.Close()
	go func() {
		for {
			c, err := again.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	webtest.WaitFor(t, 10*time.Second, "tcp check passing again", func() bool { return statusOf(t, n.url, "db", "t") == catalog.Passing })
}

// TestChecksOnlyWriteChanges: steady probes write nothing to the log.
func TestChecksOnlyWriteChanges(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	tg := newTarget(t)
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/h", fmt.Sprintf(`{"address":"127.0.0.1","port":1,"check":{"http":%q,"interval":"1s","timeout":"500ms"}}`, tg.srv.URL)), 200)
	webtest.WaitFor(t, 10*time.Second, "passing", func() bool { return statusOf(t, n.url, "web", "h") == catalog.Passing })
	idx := expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200).header.Get(registry.IndexHeader)
	tg.probedBy()
	time.Sleep(3500 * time.Millisecond)
	probes := 0
	for _, c := range tg.probedBy() {
		probes += c
	}
	if probes < 2 {
		t.Fatalf("%d probes in 3.5s at a 1s interval", probes)
	}
	if now := expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200).header.Get(registry.IndexHeader); now != idx {
		t.Fatalf("index moved from %s to %s with the status unchanged over %d probes", idx, now, probes)
	}
}

// TestCheckHandover: three replicas split the checks, each run by exactly
// one; when a replica dies without a goodbye, its checks move to the
// others.
func TestCheckHandover(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"registry-0", "registry-1", "registry-2"}
	var nodes []*node
	conns := map[string]*nats.Conn{}
	for _, id := range voters {
		conns[id] = srv.Connect(t)
		nodes = append(nodes, startNode(t, conns[id], testSettings(id, voters)))
	}
	const checks = 12
	var targets []*target
	for i := range checks {
		tg := newTarget(t)
		targets = append(targets, tg)
		expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/i%d", nodes[i%3].url, i),
			fmt.Sprintf(`{"address":"127.0.0.1","port":1,"check":{"http":%q,"interval":"1s","timeout":"500ms"}}`, tg.srv.URL)), 200)
	}
	webtest.WaitFor(t, 15*time.Second, "all passing", func() bool {
		return len(instances(t, nodes[0].url, "web", "?status=passing")) == checks
	})
	// Let presence settle, then watch who probes what.
	time.Sleep(time.Second)
	for _, tg := range targets {
		tg.probedBy()
	}
	time.Sleep(3 * time.Second)
	owner := map[int]string{}
	perReplica := map[string]int{}
	for i, tg := range targets {
		by := tg.probedBy()
		if len(by) != 1 {
			t.Fatalf("check %d probed by %v, want exactly one replica", i, by)
		}
		for id := range by {
			owner[i] = id
			perReplica[id]++
		}
	}
	t.Logf("checks per replica: %v", perReplica)

	// Kill the replica with the most checks: its connection goes first,
	// so it cannot say goodbye and the others must notice its silence.
	victim := ""
	for id, c := range perReplica {
		if victim == "" || c > perReplica[victim] {
			victim = id
		}
	}
	var survivor *node
	stopped := time.Now()
	for i, n := range nodes {
		if n.id == victim {
			conns[victim].Close()
			n.stop()
		} else {
			survivor = nodes[i]
		}
	}
	moved := map[int]bool{}
	// Silence is noticed after three presence intervals (600ms here),
	// then the next reconcile (500ms) starts the probes at once.
	webtest.WaitFor(t, 5*time.Second, "the dead replica's checks probed elsewhere", func() bool {
		for i, tg := range targets {
			if owner[i] != victim {
				continue
			}
			tg.mu.Lock()
			for id, c := range tg.checkers {
				if id != victim && c > 0 {
					moved[i] = true
				}
			}
			tg.mu.Unlock()
		}
		return len(moved) == perReplica[victim]
	})
	t.Logf("%d checks moved %s after their replica died", len(moved), time.Since(stopped).Round(time.Millisecond))
	// And the new owners act on what they see.
	for i, tg := range targets {
		if owner[i] == victim {
			tg.healthy.Store(false)
		}
	}
	webtest.WaitFor(t, 10*time.Second, "moved checks turn critical", func() bool {
		return len(instances(t, survivor.url, "web", "?status=critical")) == perReplica[victim]
	})
}

func TestBlockingQuery(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`), 200)
	r := expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200)
	idx := r.header.Get(registry.IndexHeader)
	if r := expect(t, call(t, "GET", n.url+"/v1/services/web/instances?index="+idx+"&wait=100ms", ""), 200); r.header.Get(registry.IndexHeader) != idx {
		t.Fatalf("timed-out blocking query index = %s, want %s", r.header.Get(registry.IndexHeader), idx)
	}
	got := make(chan resp, 1)
	go func() { got <- call(t, "GET", n.url+"/v1/services/web/instances?index="+idx+"&wait=30s", "") }()
	// Another service changing must not wake it.
	expect(t, call(t, "PUT", n.url+"/v1/services/other/instances/z", `{"address":"10.0.0.1","port":80}`), 200)
	select {
	case r := <-got:
		t.Fatalf("blocking query returned on another service's change: %s", r.raw)
	case <-time.After(300 * time.Millisecond):
	}
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/b", `{"address":"10.0.0.2","port":80}`), 200)
	select {
	case r := <-got:
		var list []catalog.Instance
		expect(t, r, 200).decode(t, &list)
		if ids(list) != "a,b" || r.header.Get(registry.IndexHeader) == idx {
			t.Fatalf("woken blocking query = %s index %s", ids(list), r.header.Get(registry.IndexHeader))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query not woken 10s after the service changed")
	}
	// A service that lost its last instance after the client's index
	// answers at once, empty, rather than waiting past the removal.
	idx = expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200).header.Get(registry.IndexHeader)
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/instances/a", ""), 200)
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/instances/b", ""), 200)
	start := time.Now()
	r = expect(t, call(t, "GET", n.url+"/v1/services/web/instances?index="+idx+"&wait=20s", ""), 200)
	if string(r.raw) != "[]\n" || time.Since(start) > 10*time.Second {
		t.Fatalf("blocking query on a service emptied after its index = %q after %s", r.raw, time.Since(start))
	}
	// The same for the service list.
	var services []catalog.Service
	r = expect(t, call(t, "GET", n.url+"/v1/services", ""), 200)
	r.decode(t, &services)
	listIdx := r.header.Get(registry.IndexHeader)
	expect(t, call(t, "DELETE", n.url+"/v1/services/other/instances/z", ""), 200)
	start = time.Now()
	expect(t, call(t, "GET", n.url+"/v1/services?index="+listIdx+"&wait=20s", ""), 200).decode(t, &services)
	if len(services) != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("service list after removing a service = %+v after %s", services, time.Since(start))
	}
}

// TestWatchResume: the stream sends the whole set on every change; a
// client that resumes gets what changed while it was away and nothing if
// nothing did.
func TestWatchResume(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`), 200)
	events := stream(t, n.url+"/v1/services/web/watch")
	set, _ := nextSet(t, events, 5*time.Second)
	if ids(set.Instances) != "a" {
		t.Fatalf("first event = %s, want a", ids(set.Instances))
	}
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/b", `{"address":"10.0.0.2","port":80,"tags":["canary"]}`), 200)
	set, lastID := nextSet(t, events, 5*time.Second)
	if ids(set.Instances) != "a,b" || lastID != fmt.Sprint(set.Revision) {
		t.Fatalf("after b: %s id %s revision %d", ids(set.Instances), lastID, set.Revision)
	}
	// Away: c registers, a deregisters.
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/c", `{"address":"10.0.0.3","port":80}`), 200)
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/instances/a", ""), 200)
	resumed := stream(t, n.url+"/v1/services/web/watch", "Last-Event-ID", lastID)
	set, id := nextSet(t, resumed, 5*time.Second)
	if ids(set.Instances) != "b,c" {
		t.Fatalf("resumed set = %s, want b,c", ids(set.Instances))
	}
	// Up to date: nothing until the next change.
	current := stream(t, n.url+"/v1/services/web/watch?tag=canary", "Last-Event-ID", id)
	select {
	case ev := <-current:
		t.Fatalf("an up-to-date client got %s %s", ev.typ, ev.data)
	case <-time.After(300 * time.Millisecond):
	}
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/d", `{"address":"10.0.0.4","port":80,"tags":["canary"]}`), 200)
	if set, _ := nextSet(t, current, 5*time.Second); ids(set.Instances) != "b,d" {
		t.Fatalf("filtered set = %s, want b,d", ids(set.Instances))
	}
}

// TestGuard: three of four instances missing their TTL together keep
// their status and the service is protected; one failing alone is not.
func TestGuard(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	for _, id := range []string{"a", "b", "c", "d"} {
		expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+id, `{"address":"10.0.0.1","port":80,"check":{"ttl":"1s"}}`), 200)
	}
	events := stream(t, n.url+"/v1/services/web/watch")
	nextSet(t, events, 5*time.Second)
	// d heartbeats; a, b, c fall silent at once.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/d/heartbeat", ""), 200)
		time.Sleep(200 * time.Millisecond)
	}
	var services []catalog.Service
	expect(t, call(t, "GET", n.url+"/v1/services", ""), 200).decode(t, &services)
	for _, s := range services {
		if s.Name == "web" && (!s.Protected || s.Passing != 4) {
			t.Fatalf("web = %+v, want protected with all four passing", s)
		}
	}
	for _, inst := range instances(t, n.url, "web", "") {
		if inst.ID != "d" && (inst.Held == nil || inst.Held.Status != catalog.Critical) {
			t.Fatalf("%s held = %+v, want the critical result held", inst.ID, inst.Held)
		}
	}
	// The stream says so too.
	for {
		set, _ := nextSet(t, events, 5*time.Second)
		if set.Protected {
			break
		}
	}
	// An operator clears it: the held results apply.
	expect(t, call(t, "DELETE", n.url+"/v1/services/web/protection", ""), 204)
	if got := ids(instances(t, n.url, "web", "?status=critical")); got != "a,b,c" {
		t.Fatalf("critical after clearing = %q, want a,b,c", got)
	}
	// One instance failing in a healthy service is not protected.
	for _, id := range []string{"a", "b", "c"} {
		expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+id+"/heartbeat", ""), 200)
	}
	deadline = time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, id := range []string{"b", "c", "d"} {
			expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/"+id+"/heartbeat", ""), 200)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := ids(instances(t, n.url, "web", "?status=critical")); got != "a" {
		t.Fatalf("critical = %q, want a alone", got)
	}
}

func TestLeaseBoundRegistration(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	var l catalog.Lease
	// Keepalives every 400 ms hold a 2 s lease with room for a loaded
	// machine; five of them outlive the TTL.
	expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"2s"}`), 201).decode(t, &l)
	expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/a?lease=%d", n.url, l.ID), `{"address":"10.0.0.1","port":80}`), 200)
	expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/b?lease=%d", n.url, l.ID), `{"address":"10.0.0.2","port":80}`), 200)
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/c?lease=999999", `{"address":"10.0.0.3","port":80}`), 404)
	var got catalog.Lease
	expect(t, call(t, "GET", fmt.Sprintf("%s/v1/registry/leases/%d", n.url, l.ID), ""), 200).decode(t, &got)
	if strings.Join(got.Instances, ",") != "web/a,web/b" {
		t.Fatalf("lease instances = %v", got.Instances)
	}
	for range 6 {
		time.Sleep(400 * time.Millisecond)
		expect(t, call(t, "POST", fmt.Sprintf("%s/v1/registry/leases/%d/keepalive", n.url, l.ID), ""), 200)
	}
	if got := ids(instances(t, n.url, "web", "")); got != "a,b" {
		t.Fatalf("instances while the lease is kept alive = %q", got)
	}
	// The process "dies": no more keepalives.
	webtest.WaitFor(t, 10*time.Second, "lease-bound instances gone", func() bool { return len(instances(t, n.url, "web", "")) == 0 })
	expect(t, call(t, "GET", fmt.Sprintf("%s/v1/registry/leases/%d", n.url, l.ID), ""), 404)
}

// TestBadInput: every malformed request is a 4xx problem and stores
// nothing.
func TestBadInput(t *testing.T) {
	s := testSettings("registry-0", nil)
	s.AllowLocal = false
	n := startNode(t, qlogtest.StartServer(t).Connect(t), s)
	good := `{"address":"10.0.0.1","port":80}`
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"service uppercase", "PUT", "/v1/services/Web/instances/a", good, 400},
		{"service too long", "PUT", "/v1/services/" + strings.Repeat("a", 64) + "/instances/a", good, 400},
		{"service underscore", "PUT", "/v1/services/my_svc/instances/a", good, 400},
		{"id too long", "PUT", "/v1/services/web/instances/" + strings.Repeat("i", 129), good, 400},
		{"id with space", "PUT", "/v1/services/web/instances/a%20b", good, 400},
		{"loopback address", "PUT", "/v1/services/web/instances/a", `{"address":"127.0.0.1","port":80}`, 400},
		{"ipv6 loopback", "PUT", "/v1/services/web/instances/a", `{"address":"::1","port":80}`, 400},
		{"metadata address", "PUT", "/v1/services/web/instances/a", `{"address":"169.254.169.254","port":80}`, 400},
		{"metadata name", "PUT", "/v1/services/web/instances/a", `{"address":"metadata.google.internal","port":80}`, 400},
		{"localhost", "PUT", "/v1/services/web/instances/a", `{"address":"localhost","port":80}`, 400},
		{"unspecified", "PUT", "/v1/services/web/instances/a", `{"address":"0.0.0.0","port":80}`, 400},
		{"not a host", "PUT", "/v1/services/web/instances/a", `{"address":"bad host!","port":80}`, 400},
		{"no address", "PUT", "/v1/services/web/instances/a", `{"port":80}`, 400},
		{"port 0", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":0}`, 400},
		{"port too big", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":70000}`, 400},
		{"weight zero", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"weight":0}`, 400},
		{"weight too big", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"weight":1001}`, 400},
		{"weight negative", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"weight":-1}`, 400},
		{"weight string", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"weight":"5"}`, 400},
		{"ttl without unit", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10"}}`, 400},
		{"ttl negative", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"-1s"}}`, 400},
		{"ttl number", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":10}}`, 400},
		{"ttl too short", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10ms"}}`, 400},
		{"two checks", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","tcp":"10.0.0.1:80"}}`, 400},
		{"empty check", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{}}`, 400},
		{"timeout over interval", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"tcp":"10.0.0.1:80","interval":"1s","timeout":"2s"}}`, 400},
		{"http check to loopback", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"http":"http://127.0.0.1:8082/v1/services"}}`, 400},
		{"http check to metadata", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"http":"http://169.254.169.254/latest/meta-data/"}}`, 400},
		{"check url scheme", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"http":"file:///etc/passwd"}}`, 400},
		{"check url credentials", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"http":"http://u:p@10.0.0.1/"}}`, 400},
		{"tcp check no port", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"tcp":"10.0.0.1"}}`, 400},
		{"deregisterAfter garbage", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"10s","deregisterAfter":"soon"}}`, 400},
		{"unknown field", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"colour":"red"}`, 400},
		{"malformed json", "PUT", "/v1/services/web/instances/a", `{"address":`, 400},
		{"null body", "PUT", "/v1/services/web/instances/a", `null`, 400},
		{"trailing data", "PUT", "/v1/services/web/instances/a", good + `{}`, 400},
		{"too many tags", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"tags":[` + strings.TrimSuffix(strings.Repeat(`"t",`, 65), ",") + `]}`, 400},
		{"empty tag", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"tags":[""]}`, 400},
		{"huge body", "PUT", "/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"metadata":{"k":"` + strings.Repeat("x", 70<<10) + `"}}`, 413},
		{"bad lease", "PUT", "/v1/services/web/instances/a?lease=abc", good, 400},
		{"heartbeat bad status", "PUT", "/v1/services/web/instances/a/heartbeat", `{"status":"fine"}`, 400},
		{"heartbeat unknown field", "PUT", "/v1/services/web/instances/a/heartbeat", `{"state":"passing"}`, 400},
		{"list bad status", "GET", "/v1/services/web/instances?status=up", "", 400},
		{"list bad index", "GET", "/v1/services/web/instances?index=-1", "", 400},
		{"list bad wait", "GET", "/v1/services/web/instances?index=1&wait=forever", "", 400},
		{"watch bad resume", "GET", "/v1/services/web/watch?fromRevision=x", "", 400},
		{"lease ttl too long", "POST", "/v1/registry/leases", `{"ttl":"2h"}`, 400},
		{"lease ttl missing", "POST", "/v1/registry/leases", `{}`, 400},
		{"lease id", "POST", "/v1/registry/leases/x/keepalive", "", 400},
		{"unknown lease", "POST", "/v1/registry/leases/12345/keepalive", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := call(t, tt.method, n.url+tt.path, tt.body)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d, want %d: %s", tt.method, tt.path, r.status, tt.status, r.raw)
			}
		})
	}
	var services []catalog.Service
	expect(t, call(t, "GET", n.url+"/v1/services", ""), 200).decode(t, &services)
	for _, s := range services {
		if s.Name != registry.SelfService {
			t.Fatalf("bad input stored something: %+v", services)
		}
	}
}

// TestRestartKeepsCatalog: a replica that restarts finds every instance
// and its TTL deadline where it left them.
func TestRestartKeepsCatalog(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	n := startNode(t, nc, testSettings("registry-0", nil))
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80,"check":{"ttl":"2s"}}`), 200)
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/b", `{"address":"10.0.0.2","port":80}`), 200)
	n.stop()
	n = startNode(t, nc, testSettings("registry-0", nil))
	if got := ids(instances(t, n.url, "web", "")); got != "a,b" {
		t.Fatalf("after restart: %q", got)
	}
	webtest.WaitFor(t, 10*time.Second, "a's TTL expiring after the restart", func() bool { return statusOf(t, n.url, "web", "a") == catalog.Critical })
	if s := statusOf(t, n.url, "web", "b"); s != catalog.Passing {
		t.Fatalf("b = %q, want passing (no check)", s)
	}
}

// TestGuardActiveChecks: the checker's probes of four targets that all go
// down are spread over the interval, yet judged together: the ones
// applied first are undone and all four keep passing, held.
func TestGuardActiveChecks(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	var targets []*target
	for i := range 4 {
		tg := newTarget(t)
		targets = append(targets, tg)
		expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/i%d", n.url, i),
			fmt.Sprintf(`{"address":"127.0.0.1","port":1,"check":{"http":%q,"interval":"1s","timeout":"500ms"}}`, tg.srv.URL)), 200)
	}
	webtest.WaitFor(t, 10*time.Second, "all passing", func() bool { return len(instances(t, n.url, "web", "?status=passing")) == 4 })
	for _, tg := range targets {
		tg.healthy.Store(false)
	}
	webtest.WaitFor(t, 10*time.Second, "all four held", func() bool {
		held := 0
		for _, inst := range instances(t, n.url, "web", "") {
			if inst.Held != nil && inst.Status == catalog.Passing {
				held++
			}
		}
		return held == 4
	})
	// Two come back: two of four is within the share, so the guard lifts
	// and the two still down turn critical.
	targets[0].healthy.Store(true)
	targets[1].healthy.Store(true)
	webtest.WaitFor(t, 10*time.Second, "the guard lifting", func() bool {
		return ids(instances(t, n.url, "web", "?status=critical")) == "i2,i3"
	})
	var services []catalog.Service
	expect(t, call(t, "GET", n.url+"/v1/services", ""), 200).decode(t, &services)
	for _, s := range services {
		if s.Name == "web" && s.Protected {
			t.Fatalf("web still protected: %+v", s)
		}
	}
}

// TestWatchesPerClient: a client holds at most WatchesPerClient watches
// and blocking queries on a replica; past that, each is 429 problem+json
// with Retry-After, as the document says (the contract checks it).
func TestWatchesPerClient(t *testing.T) {
	s := testSettings("registry-0", nil)
	s.WatchesPerClient = 2
	n := startNode(t, qlogtest.StartServer(t).Connect(t), s)
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/web-1", `{"address":"10.0.0.1","port":80}`), 200)
	w := n.url + "/v1/services/web/watch"
	for range 2 {
		nextSet(t, stream(t, w), 10*time.Second)
	}
	for _, u := range []string{w, n.url + "/v1/services?index=1000000&wait=10s", n.url + "/v1/services/web/instances?index=1000000&wait=10s"} {
		r := expect(t, call(t, "GET", u, ""), 429)
		if r.header.Get("Retry-After") != "1" || !strings.Contains(string(r.raw), `"limit":2`) {
			t.Fatalf("GET %s = %v %s, want Retry-After: 1 and the limit", u, r.header, r.raw)
		}
	}
	// What is not held is not limited.
	expect(t, call(t, "GET", n.url+"/v1/services/web/instances", ""), 200)
}
