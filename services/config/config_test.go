package config_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config"
)

// node is one config replica behind a real HTTP server on a free port.
type node struct {
	url string
	rep *config.Replica
}

func startNode(t testing.TB, nc *nats.Conn, id string, voters []string, retain int64) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := config.Settings{RetainRevisions: retain, Replicated: service.Replicated{ReplicaID: id, Voters: voters, StreamReplicas: 1, SnapshotEvery: 100_000}}
	rep, err := config.Open(ctx, s, nc, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rep.Handler)
	t.Cleanup(func() { srv.Close(); rep.Close() })
	e2eRan.Store(strings.SplitN(t.Name(), "/", 2)[0], true)
	if _, fuzzing := t.(*testing.F); !fuzzing { // a fuzz coordinator may run no input itself
		contract().ExpectValidated(t, srv.Listener.Addr().String())
	}
	return &node{url: srv.URL, rep: rep}
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	if res.StatusCode >= 400 && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("%s %s = %d without problem+json: %s", method, url, res.StatusCode, b)
	}
	if res.Header.Get("X-Steward-Revision") == "" && !strings.HasSuffix(url, "/openapi.json") {
		t.Fatalf("%s %s: no X-Steward-Revision", method, url)
	}
	return r
}

func (r resp) num(field string) int64 {
	f, _ := r.body[field].(float64)
	return int64(f)
}

func expect(t *testing.T, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

func TestKVLifecycle(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	u := n.url + "/v1/kv/app/db/url"

	r := expect(t, call(t, "PUT", u, `"postgres://a"`), 200)
	rev := r.num("modRevision")
	if r.header.Get("ETag") != fmt.Sprintf(`"%d"`, rev) || r.body["value"] != "postgres://a" || r.num("version") != 1 {
		t.Fatalf("PUT = %v %v", r.header, r.body)
	}
	expect(t, call(t, "PUT", u, `"x"`, "If-None-Match", "*"), 412)
	r = expect(t, call(t, "PUT", u, `"x"`, "If-Match", `"999"`), 412)
	if r.num("modRevision") != rev {
		t.Fatalf("412 body = %v, want current modRevision %d", r.body, rev)
	}
	r = expect(t, call(t, "PUT", u, `{"host":"b"}`, "If-Match", fmt.Sprintf(`"%d"`, rev)), 200)
	if r.num("version") != 2 {
		t.Fatalf("CAS = %v", r.body)
	}
	expect(t, call(t, "GET", u, ""), 200)
	r = expect(t, call(t, "GET", fmt.Sprintf("%s?revision=%d", u, rev), ""), 200)
	if r.body["value"] != "postgres://a" {
		t.Fatalf("GET at revision %d = %v", rev, r.body)
	}
	expect(t, call(t, "GET", u+"?consistency=serializable", ""), 200)
	expect(t, call(t, "GET", n.url+"/v1/kv/app/none", ""), 404)

	for _, k := range []string{"a", "b", "c"} {
		expect(t, call(t, "PUT", n.url+"/v1/kv/app/list/"+k, `1`), 200)
	}
	r = expect(t, call(t, "GET", n.url+"/v1/kv?prefix=/app/list/&limit=2", ""), 200)
	if items := r.body["items"].([]any); len(items) != 2 || r.body["next"] != "/app/list/b" {
		t.Fatalf("list page 1 = %v", r.body)
	}
	r = expect(t, call(t, "GET", n.url+"/v1/kv?prefix=/app/list/&limit=2&after=/app/list/b&keysOnly=true", ""), 200)
	if items := r.body["items"].([]any); len(items) != 1 || r.body["next"] != nil || items[0].(map[string]any)["value"] != nil {
		t.Fatalf("list page 2 = %v", r.body)
	}
	r = expect(t, call(t, "DELETE", n.url+"/v1/kv?prefix=/app/list/", ""), 200)
	if r.num("deleted") != 3 {
		t.Fatalf("delete prefix = %v", r.body)
	}
	expect(t, call(t, "DELETE", u, "", "If-Match", `"1"`), 412)
	expect(t, call(t, "DELETE", u, ""), 200)
	expect(t, call(t, "DELETE", u, ""), 404)
	r = expect(t, call(t, "GET", n.url+"/v1/history?key=/app/db/url", ""), 200)
	if items := r.body["items"].([]any); len(items) != 3 {
		t.Fatalf("history = %v", r.body)
	}
}

func TestTxnLeasesFencing(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	txn := `{"compare":[{"key":"/lock","target":"exists","op":"==","value":false}],
		"success":[{"put":{"key":"/lock","value":"me"}},{"get":{"key":"/lock"}}],
		"failure":[{"get":{"key":"/lock"}}]}`
	r := expect(t, call(t, "POST", n.url+"/v1/txn", txn), 200)
	if r.body["succeeded"] != true || len(r.body["results"].([]any)) != 2 {
		t.Fatalf("txn = %v", r.body)
	}
	if r := expect(t, call(t, "POST", n.url+"/v1/txn", txn), 200); r.body["succeeded"] != false {
		t.Fatalf("second txn = %v", r.body)
	}

	r = expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"1s"}`), 201)
	id := r.num("id")
	expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/kv/svc/a?lease=%d", n.url, id), `"up"`), 200)
	r = expect(t, call(t, "GET", fmt.Sprintf("%s/v1/leases/%d", n.url, id), ""), 200)
	if keys := r.body["keys"].([]any); len(keys) != 1 {
		t.Fatalf("lease = %v", r.body)
	}
	expect(t, call(t, "POST", fmt.Sprintf("%s/v1/leases/%d/keepalive", n.url, id), ""), 200)
	expect(t, call(t, "PUT", n.url+"/v1/kv/svc/b?lease=424242", `1`), 404)
	for _, bad := range []string{`{"ttl":"0.5s"}`, `{"ttl":"25h"}`, `{"ttl":10}`, `{"ttl":"1s","x":1}`} {
		expect(t, call(t, "POST", n.url+"/v1/leases", bad), 400)
	}
	// Nothing keeps the lease alive now: expiry must delete its key. The
	// expiry proposer is part of Serve; run it here as Serve would.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); n.rep.Log.RunExpiry(ctx, 50*time.Millisecond, n.rep.Machine.DueExpiries) }()
	deadline := time.Now().Add(10 * time.Second)
	for call(t, "GET", n.url+"/v1/kv/svc/a", "").status != 404 {
		if time.Now().After(deadline) {
			t.Fatal("leased key not deleted 10s after its 1s lease lapsed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	expect(t, call(t, "GET", fmt.Sprintf("%s/v1/leases/%d", n.url, id), ""), 404)

	expect(t, call(t, "PUT", n.url+"/v1/kv/leader/cfg", `1`, "X-Steward-Fence", "leader:7"), 200)
	r = expect(t, call(t, "PUT", n.url+"/v1/kv/leader/cfg", `2`, "X-Steward-Fence", "leader:6"), 409)
	if r.num("fenceToken") != 7 {
		t.Fatalf("409 = %v, want fenceToken 7", r.body)
	}
	if r := expect(t, call(t, "GET", n.url+"/v1/kv/leader/cfg", ""), 200); r.body["value"] != float64(1) {
		t.Fatalf("a fenced write changed the value: %v", r.body)
	}
}

// TestBadInputChangesNothing sends malformed requests and checks each gets
// a 4xx problem and that the revision did not move.
func TestBadInputChangesNothing(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	expect(t, call(t, "PUT", n.url+"/v1/kv/a", `1`), 200)
	before := n.rep.Log.Revision()
	huge := `"` + strings.Repeat("x", 1<<20+10) + `"`
	cases := []struct {
		method, path, body string
		hdr                []string
		status             int
	}{
		{"PUT", "/v1/kv/a", `{"x":`, nil, 400},
		{"PUT", "/v1/kv/a", ``, nil, 400},
		{"PUT", "/v1/kv/a", huge, nil, 413},
		{"PUT", "/v1/kv/a", `1`, []string{"Content-Type", "text/plain"}, 415},
		{"PUT", "/v1/kv/a//b", `1`, nil, 400},
		{"PUT", "/v1/kv/a/../b", `1`, nil, 400},
		{"PUT", "/v1/kv/" + strings.Repeat("k", 1100), `1`, nil, 400},
		{"PUT", "/v1/kv/a", `1`, []string{"If-Match", "abc"}, 400},
		{"PUT", "/v1/kv/a", `1`, []string{"If-None-Match", `"3"`}, 400},
		{"PUT", "/v1/kv/a?lease=x", `1`, nil, 400},
		{"PUT", "/v1/kv/a", `1`, []string{"X-Steward-Fence", "nocolon"}, 400},
		{"GET", "/v1/kv/a?revision=-1", ``, nil, 400},
		{"GET", "/v1/kv/a?consistency=eventual", ``, nil, 400},
		{"GET", "/v1/kv/a?index=1&wait=forever", ``, nil, 400},
		{"GET", "/v1/kv?limit=0", ``, nil, 400},
		{"DELETE", "/v1/kv", ``, nil, 400},
		{"POST", "/v1/txn", `{"compare":[],"success":[{"put":{"key":"/a","value":1}}],"extra":1}`, nil, 400},
		{"POST", "/v1/txn", `{"compare":[{"key":"/a","target":"version","op":"==","value":"1"}]}`, nil, 400},
		{"POST", "/v1/txn", `{"success":[{"put":{"key":"a","value":1}}]}`, nil, 400},
		{"POST", "/v1/txn", `{"success":"nope"}`, nil, 400},
		{"GET", "/v1/watch", ``, nil, 400},
		{"GET", "/v1/watch?key=/a&prefix=/", ``, nil, 400},
		{"GET", "/v1/history?key=nope", ``, nil, 400},
		{"POST", "/v1/leases/abc/keepalive", ``, nil, 400},
		{"PATCH", "/v1/kv/a", `1`, nil, 405},
	}
	for _, tc := range cases {
		r := call(t, tc.method, n.url+tc.path, tc.body, tc.hdr...)
		if r.status != tc.status {
			t.Errorf("%s %s = %d, want %d: %s", tc.method, tc.path, r.status, tc.status, r.raw)
		}
	}
	if after := n.rep.Log.Revision(); after != before {
		t.Fatalf("revision moved from %d to %d on bad input", before, after)
	}
}

func TestIdempotencyKey(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	a := expect(t, call(t, "PUT", n.url+"/v1/kv/counter", `1`, "Idempotency-Key", "k1"), 200)
	b := expect(t, call(t, "PUT", n.url+"/v1/kv/counter", `1`, "Idempotency-Key", "k1"), 200)
	if a.num("version") != 1 || b.num("version") != 1 || a.num("modRevision") != b.num("modRevision") {
		t.Fatalf("retry = %v then %v, want the same single effect", a.body, b.body)
	}
}

type sse struct {
	id, event, data string
}

func readEvents(t *testing.T, body *bufio.Reader, n int) []sse {
	t.Helper()
	var out []sse
	var cur sse
	for len(out) < n {
		line, err := body.ReadString('\n')
		if err != nil {
			t.Fatalf("reading events: %v (have %d of %d)", err, len(out), n)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
			}
			cur = sse{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return out
}

func TestWatchResumeAndCompaction(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(hdr ...string) (*http.Response, *bufio.Reader) {
		req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/v1/watch?prefix=/w/", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res, bufio.NewReader(res.Body)
	}
	res, body := open()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("watch = %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	expect(t, call(t, "PUT", n.url+"/v1/kv/w/1", `1`), 200)
	expect(t, call(t, "PUT", n.url+"/v1/kv/other", `1`), 200)
	expect(t, call(t, "PUT", n.url+"/v1/kv/w/2", `2`), 200)
	evs := readEvents(t, body, 2)
	res.Body.Close()
	if evs[0].event != "put" || evs[1].event != "put" || !strings.Contains(evs[1].data, `"key":"/w/2"`) {
		t.Fatalf("events = %+v", evs)
	}
	expect(t, call(t, "DELETE", n.url+"/v1/kv/w/1", ""), 200)
	expect(t, call(t, "PUT", n.url+"/v1/kv/w/3", `3`), 200)
	res, body = open("Last-Event-ID", evs[1].id)
	defer res.Body.Close()
	more := readEvents(t, body, 2)
	if more[0].event != "delete" || !strings.Contains(more[0].data, `"prevEntry"`) || !strings.Contains(more[1].data, `"/w/3"`) {
		t.Fatalf("resumed events = %+v", more)
	}
}

// TestWatchStartsAfterNow: a watch without fromRevision or Last-Event-ID
// sees the changes after it began, not the history before it, as etcd's
// watch without a revision does and the document says.
func TestWatchStartsAfterNow(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	expect(t, call(t, "PUT", n.url+"/v1/kv/w/old", `1`), 200)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/v1/watch?prefix=/w/", nil)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	expect(t, call(t, "PUT", n.url+"/v1/kv/w/new", `2`), 200)
	if evs := readEvents(t, bufio.NewReader(res.Body), 1); !strings.Contains(evs[0].data, `"key":"/w/new"`) {
		t.Fatalf("first event = %+v, want the put after the watch began", evs[0])
	}
}

// TestWatchRevisionIsWhole checks that the events of one revision (a
// prefix delete) are sent together with the id on the last only, so that a
// client resuming from the previous id gets the whole revision again.
func TestWatchRevisionIsWhole(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	for _, k := range []string{"a", "b", "c"} {
		expect(t, call(t, "PUT", n.url+"/v1/kv/g/"+k, `1`), 200)
	}
	before := expect(t, call(t, "PUT", n.url+"/v1/kv/g/marker", `1`), 200).num("modRevision")
	del := expect(t, call(t, "DELETE", n.url+"/v1/kv?prefix=/g/", ""), 200).num("revision")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 { // a second time, as a client resuming after `before`
		req, _ := http.NewRequestWithContext(ctx, "GET", n.url+"/v1/watch?prefix=/g/", nil)
		req.Header.Set("Last-Event-ID", fmt.Sprint(before))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		evs := readEvents(t, bufio.NewReader(res.Body), 4)
		res.Body.Close()
		for i, ev := range evs {
			wantID := ""
			if i == len(evs)-1 {
				wantID = fmt.Sprint(del)
			}
			if ev.event != "delete" || ev.id != wantID {
				t.Fatalf("event %d = %+v, want a delete with id %q", i, ev, wantID)
			}
		}
	}
}
