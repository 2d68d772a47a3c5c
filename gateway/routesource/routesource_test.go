package routesource_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/gateway/route"
	"github.com/stewardhq/steward/gateway/routesource"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/sdk/replicas"
	"github.com/stewardhq/steward/services/config"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// source's Run, its watch and the config replicas must stop with it.
func TestMain(m *testing.M) {
	code := m.Run()
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(qlogtest.IgnoreNATSLeaks()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var httpClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}

// configService is one config replica on a NATS server that outlives it,
// so that it can be stopped and started again on the same log.
type configService struct {
	url  string
	rep  *config.Replica
	srv  *httptest.Server
	once sync.Once
}

func startConfig(t *testing.T, nats *qlogtest.Server, s config.Settings) *configService {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := config.Open(ctx, s, nats.Connect(t), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c := &configService{rep: rep, srv: httptest.NewServer(rep.Handler)}
	c.url = c.srv.URL
	t.Cleanup(c.stop)
	return c
}

// stop closes the replica (its watches end) and the server.
func (c *configService) stop() {
	c.once.Do(func() {
		c.rep.Close()
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
}

func settings() config.Settings {
	s := config.Settings{RetainRevisions: 1000}
	s.ReplicaID, s.StreamReplicas, s.SnapshotEvery = "config-0", 1, 100_000
	return s
}

// do sends a request to the config service and returns the revision it
// answered at; anything but 200 fails the test.
func do(t *testing.T, method, url string, body any) int64 {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s = %d: %s", method, url, res.StatusCode, b)
	}
	rev, err := strconv.ParseInt(res.Header.Get("X-Steward-Revision"), 10, 64)
	if err != nil {
		t.Fatalf("%s %s: X-Steward-Revision: %v", method, url, err)
	}
	return rev
}

// put stores a route document (any JSON) and returns its revision.
func (c *configService) put(t *testing.T, name, doc string) int64 {
	t.Helper()
	return c.putKey(t, routesource.Prefix+name, json.RawMessage(doc))
}

func (c *configService) putKey(t *testing.T, key string, value any) int64 {
	t.Helper()
	return do(t, http.MethodPut, c.url+"/v1/kv"+key, value)
}

// del deletes a route document and returns the revision of the delete.
func (c *configService) del(t *testing.T, name string) int64 {
	t.Helper()
	return do(t, http.MethodDelete, c.url+"/v1/kv"+routesource.Prefix+name, nil)
}

// doc is a valid route document for /name/ to service.
func doc(name, service string) string {
	return fmt.Sprintf(`{"match":{"pathPrefix":"/%s/"},"service":%q}`, name, service)
}

// badDoc is well-formed JSON that is no valid route.
const badDoc = `{"match":{"pathPrefix":"/x/"},"service":"web","loadBalancer":{"policy":"random"}}`

// follower runs a Source against a config URL the test can take away
// and give back.
type follower struct {
	src    *routesource.Source
	base   atomic.Pointer[string] // nil: the config service is unreachable
	table  atomic.Pointer[route.Table]
	tables chan *route.Table // every table applied, while the test reads them
	hc     *http.Client
}

func follow(t *testing.T, base string) *follower {
	t.Helper()
	f := &follower{tables: make(chan *route.Table, 64), hc: &http.Client{Transport: &http.Transport{}}}
	f.setBase(base)
	f.src = &routesource.Source{
		Config: func() (*replicas.Set, error) {
			if b := f.base.Load(); b != nil {
				return replicas.New([]string{*b}), nil
			}
			return nil, errors.New("the config service is unreachable (test)")
		},
		Apply: func(tb *route.Table) {
			f.table.Store(tb)
			select {
			case f.tables <- tb:
			default:
			}
		},
		HTTP:   f.hc,
		Logger: slog.New(slog.DiscardHandler),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		f.hc.CloseIdleConnections()
	})
	return f
}

func (f *follower) setBase(url string) {
	if url == "" {
		f.base.Store(nil)
		return
	}
	f.base.Store(&url)
}

// wait polls the source's status until cond holds.
func (f *follower) wait(t *testing.T, what string, cond func(routesource.Status) bool) routesource.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := f.src.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(st)
			t.Fatalf("timed out waiting for %s; status %s", what, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// service returns the service of route name in status, or "".
func service(st routesource.Status, name string) string {
	for _, r := range st.Routes {
		if r.Name == name {
			return r.Service
		}
	}
	return ""
}

func rejection(st routesource.Status, name string) (routesource.Rejection, bool) {
	for _, r := range st.Rejected {
		if r.Name == name {
			return r, true
		}
	}
	return routesource.Rejection{}, false
}

// served returns the service the applied table sends path to, or "".
func (f *follower) served(path string) string {
	tb := f.table.Load()
	if tb == nil {
		return ""
	}
	if r := tb.Match(httptest.NewRequest(http.MethodGet, path, nil)); r != nil {
		return r.Service
	}
	return ""
}

// TestListPages: the first table holds every document, across the pages
// of the list (1000 a page), and nothing outside the prefix.
func TestListPages(t *testing.T) {
	nats := qlogtest.StartServer(t)
	c := startConfig(t, nats, settings())
	const n = 1100
	type putOp struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	for start := 0; start < n; start += 128 {
		var ops []map[string]putOp
		for i := start; i < min(start+128, n); i++ {
			name := fmt.Sprintf("r%04d", i)
			ops = append(ops, map[string]putOp{"put": {Key: routesource.Prefix + name, Value: json.RawMessage(doc(name, "svc"))}})
		}
		do(t, http.MethodPost, c.url+"/v1/txn", map[string]any{"success": ops})
	}
	badRev := c.put(t, "zz-bad", badDoc)
	c.putKey(t, "/steward/gateway/routes-old/r9999", json.RawMessage(doc("r9999", "old")))
	c.putKey(t, "/steward/gateway/r9998", json.RawMessage(doc("r9998", "old")))

	f := follow(t, c.url)
	var first *route.Table
	select {
	case first = <-f.tables:
	case <-time.After(15 * time.Second):
		t.Fatal("no table applied")
	}
	if got := len(first.Routes()); got != n {
		t.Fatalf("the first table has %d routes, want all %d documents", got, n)
	}
	st := f.src.Status()
	if len(st.Routes) != n || st.Revision != badRev+2 {
		t.Fatalf("Status = %d routes at revision %d, want %d at %d", len(st.Routes), st.Revision, n, badRev+2)
	}
	for i, r := range st.Routes {
		if want := fmt.Sprintf("r%04d", i); r.Name != want || r.Service != "svc" {
			t.Fatalf("Status.Routes[%d] = %s → %s, want %s → svc", i, r.Name, r.Service, want)
		}
	}
	for _, path := range []string{"/r0000/x", "/r0999/x", "/r1000/x", "/r1099/x"} {
		if got := f.served(path); got != "svc" {
			t.Errorf("table sends %s to %q, want svc", path, got)
		}
	}
	if got := f.served("/r9999/x") + f.served("/r9998/x"); got != "" {
		t.Errorf("a document outside %s was applied (%q)", routesource.Prefix, got)
	}
	rj, ok := rejection(st, "zz-bad")
	if len(st.Rejected) != 1 || !ok || rj.Revision != badRev || !strings.Contains(rj.Reason, `loadBalancer.policy "random"`) {
		t.Fatalf("Status.Rejected = %+v, want zz-bad at revision %d for its policy", st.Rejected, badRev)
	}
}

// TestHotChanges: puts, updates and deletes apply as they happen; a bad
// document keeps the route's previous version and is reported until it
// is fixed or deleted.
func TestHotChanges(t *testing.T) {
	nats := qlogtest.StartServer(t)
	c := startConfig(t, nats, settings())
	c.put(t, "a", doc("a", "alpha"))
	f := follow(t, c.url)
	f.wait(t, "route a", func(st routesource.Status) bool { return service(st, "a") == "alpha" })

	c.put(t, "b", doc("b", "beta"))
	f.wait(t, "route b added", func(st routesource.Status) bool { return service(st, "b") == "beta" })
	if got := f.served("/b/x"); got != "beta" {
		t.Fatalf("table sends /b/x to %q, want beta", got)
	}

	c.put(t, "a", doc("a", "alpha-2"))
	f.wait(t, "route a updated", func(st routesource.Status) bool { return service(st, "a") == "alpha-2" })
	if got := f.served("/a/x"); got != "alpha-2" {
		t.Fatalf("table sends /a/x to %q, want alpha-2", got)
	}

	// A bad version of a route in force: the previous version stays.
	badRev := c.put(t, "a", badDoc)
	st := f.wait(t, "route a's bad version rejected", func(st routesource.Status) bool { _, ok := rejection(st, "a"); return ok })
	if rj, _ := rejection(st, "a"); rj.Revision != badRev || !strings.Contains(rj.Reason, `loadBalancer.policy "random"`) {
		t.Fatalf("rejection of a = %+v, want revision %d and the policy as the reason", rj, badRev)
	}
	if service(st, "a") != "alpha-2" || f.served("/a/x") != "alpha-2" || f.served("/x/y") != "" {
		t.Fatalf("after a bad document route a serves %q (table %q, /x/ %q), want its previous version alpha-2",
			service(st, "a"), f.served("/a/x"), f.served("/x/y"))
	}

	// A bad new document: nothing installed.
	cRev := c.put(t, "c", `"not a route"`)
	st = f.wait(t, "document c rejected", func(st routesource.Status) bool { _, ok := rejection(st, "c"); return ok })
	if rj, _ := rejection(st, "c"); rj.Revision != cRev || !strings.Contains(rj.Reason, "cannot unmarshal string") {
		t.Fatalf("rejection of c = %+v, want revision %d and a decoding error", rj, cRev)
	}
	if service(st, "c") != "" {
		t.Fatalf("a rejected new document installed route c → %s", service(st, "c"))
	}

	// Fixing a document clears its rejection.
	c.put(t, "a", doc("a", "alpha-3"))
	st = f.wait(t, "route a fixed", func(st routesource.Status) bool { return service(st, "a") == "alpha-3" })
	if rj, ok := rejection(st, "a"); ok {
		t.Fatalf("route a fixed but still rejected: %+v", rj)
	}
	if _, ok := rejection(st, "c"); !ok {
		t.Fatal("fixing a cleared c's rejection")
	}

	c.del(t, "b")
	f.wait(t, "route b deleted", func(st routesource.Status) bool { return service(st, "b") == "" })
	if got := f.served("/b/x"); got != "" {
		t.Fatalf("table still sends /b/x to %q after the delete", got)
	}
	// Deleting a rejected document clears its rejection.
	last := c.del(t, "c")
	st = f.wait(t, "document c deleted", func(st routesource.Status) bool { return len(st.Rejected) == 0 })
	if len(st.Routes) != 1 || service(st, "a") != "alpha-3" || st.Revision != last {
		t.Fatalf("Status = %+v, want route a → alpha-3 alone at revision %d", st, last)
	}
}

// TestReconnectAfterRestart: the config service goes away and comes back
// (same log, new address); the routes stay in force meanwhile, and the
// changes made while the source was cut off, a delete among them, are
// applied once it reconnects.
func TestReconnectAfterRestart(t *testing.T) {
	nats := qlogtest.StartServer(t)
	c := startConfig(t, nats, settings())
	c.put(t, "a", doc("a", "alpha"))
	c.put(t, "b", doc("b", "beta"))
	f := follow(t, c.url)
	f.wait(t, "routes a and b", func(st routesource.Status) bool { return len(st.Routes) == 2 })

	f.setBase("")
	c.stop()
	c2 := startConfig(t, nats, settings())
	c2.del(t, "a")
	c2.put(t, "b", doc("b", "beta-2"))
	c2.put(t, "c", doc("c", "gamma"))
	if st := f.src.Status(); len(st.Routes) != 2 || f.served("/a/x") != "alpha" || f.served("/b/x") != "beta" {
		t.Fatalf("while the config service is away the source holds %+v, want a and b as they were", st)
	}

	f.setBase(c2.url)
	st := f.wait(t, "the changes made while cut off", func(st routesource.Status) bool {
		return service(st, "a") == "" && service(st, "b") == "beta-2" && service(st, "c") == "gamma"
	})
	if len(st.Routes) != 2 || f.served("/a/x") != "" || f.served("/c/x") != "gamma" {
		t.Fatalf("after reconnecting: %+v (table /a/ %q, /c/ %q), want b and c", st, f.served("/a/x"), f.served("/c/x"))
	}
	// And it follows the new replica live.
	c2.put(t, "d", doc("d", "delta"))
	f.wait(t, "route d", func(st routesource.Status) bool { return service(st, "d") == "delta" })
}

// TestRelistAfterCompaction: the config service comes back from a
// snapshot newer than the source's revision, so the watch cannot resume
// (410); the source lists again and converges: a route deleted meanwhile
// is gone, one whose new version is bad keeps its previous version and is
// reported, and new ones are in force.
func TestRelistAfterCompaction(t *testing.T) {
	nats := qlogtest.StartServer(t)
	c := startConfig(t, nats, settings())
	c.put(t, "a", doc("a", "alpha"))
	c.put(t, "b", doc("b", "beta"))
	f := follow(t, c.url)
	st := f.wait(t, "routes a and b", func(st routesource.Status) bool { return len(st.Routes) == 2 })
	seen := st.Revision

	// A write outside the prefix, then a snapshot after it: a replica
	// restored from it holds no revision the source has not seen but
	// the one it would resume from.
	c.putKey(t, "/elsewhere", "x")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	snap, err := c.rep.Log.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap <= seen {
		t.Fatalf("snapshot at revision %d, want after the source's %d", snap, seen)
	}
	f.setBase("")
	c.stop()
	c2 := startConfig(t, nats, settings())
	res, err := httpClient.Get(fmt.Sprintf("%s/v1/watch?prefix=%s&fromRevision=%d", c2.url, routesource.Prefix, seen+1))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusGone {
		t.Fatalf("watch from %d on the restored replica = %d, want 410: the test did not provoke compaction", seen+1, res.StatusCode)
	}

	c2.del(t, "a")
	badRev := c2.put(t, "b", badDoc)
	c2.put(t, "c", doc("c", "gamma"))
	f.setBase(c2.url)
	st = f.wait(t, "the relisted routes", func(st routesource.Status) bool {
		return service(st, "a") == "" && service(st, "c") == "gamma"
	})
	rj, ok := rejection(st, "b")
	if len(st.Routes) != 2 || service(st, "b") != "beta" || f.served("/b/x") != "beta" || !ok || rj.Revision != badRev {
		t.Fatalf("after relisting: %+v, want b (previous version, beta, and rejected at %d) and c", st, badRev)
	}
	if f.served("/a/x") != "" {
		t.Fatal("the table still routes /a/, deleted while the source was cut off")
	}
	// The source watches from the relisted revision on.
	c2.put(t, "b", doc("b", "beta-2"))
	st = f.wait(t, "route b fixed after the relist", func(st routesource.Status) bool { return service(st, "b") == "beta-2" })
	if len(st.Rejected) != 0 {
		t.Fatalf("Rejected = %+v after b was fixed, want none", st.Rejected)
	}
}
