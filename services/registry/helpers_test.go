package registry_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// httpClient makes every request of the tests.
var httpClient = &http.Client{Timeout: 60 * time.Second}

// node is one registry replica served by registry.Serve, the whole
// service: API, expiry, active checks, self-registration.
type node struct {
	url  string
	id   string
	stop func() // stops the replica and waits for it
}

// testSettings are the settings the tests run with: local addresses
// allowed (targets are on loopback) and a fast presence interval.
func testSettings(id string, voters []string) registry.Settings {
	return registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 16, PresenceInterval: 200 * time.Millisecond, Replicated: service.Replicated{ReplicaID: id, Voters: voters, StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
}

func startNode(t testing.TB, nc *nats.Conn, s registry.Settings) *node {
	t.Helper()
	return startNodeAt(t, nc, s, "127.0.0.1:0")
}

// startNodeAt starts a replica listening on addr, retrying while a
// previous incarnation's address lingers.
func startNodeAt(t testing.TB, nc *nats.Conn, s registry.Settings, addr string) *node {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- registry.Serve(ctx, s, ln, nc, nil, slog.New(slog.DiscardHandler)) }()
	n := &node{url: "http://" + ln.Addr().String(), id: s.ReplicaID}
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve %s: %v", s.ReplicaID, err)
		}
	}
	t.Cleanup(n.stop)
	webtest.WaitFor(t, 30*time.Second, "replica "+s.ReplicaID+" ready", func() bool {
		res, err := httpClient.Get(n.url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return n
}

type resp struct {
	status int
	header http.Header
	raw    []byte
}

// decode decodes the body into v.
func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.raw, v); err != nil {
		t.Fatalf("decode %s: %v", r.raw, err)
	}
}

// instance decodes the body as an instance.
func (r resp) instance(t testing.TB) catalog.Instance {
	t.Helper()
	var inst catalog.Instance
	r.decode(t, &inst)
	return inst
}

func call(t testing.TB, method, url, body string, hdr ...string) resp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, header: res.Header, raw: b}
	if res.StatusCode >= 400 && !strings.HasPrefix(res.Header.Get("Content-Type"), "application/problem+json") {
		t.Fatalf("%s %s = %d without problem+json: %s", method, url, res.StatusCode, b)
	}
	if res.Header.Get("X-Steward-Revision") == "" && !strings.HasSuffix(url, "/openapi.json") && !strings.HasSuffix(url, "/metrics") {
		t.Fatalf("%s %s: no X-Steward-Revision", method, url)
	}
	return r
}

func expect(t testing.TB, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// instances lists a service's instances.
func instances(t testing.TB, url, svc, query string) []catalog.Instance {
	t.Helper()
	var out []catalog.Instance
	expect(t, call(t, "GET", url+"/v1/services/"+svc+"/instances"+query, ""), 200).decode(t, &out)
	return out
}

func statusOf(t testing.TB, url, svc, id string) catalog.Status {
	t.Helper()
	r := call(t, "GET", url+"/v1/services/"+svc+"/instances/"+id, "")
	if r.status == 404 {
		return ""
	}
	return expect(t, r, 200).instance(t).Status
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id, typ string
	data    []byte
}

// stream opens a watch through httpClient's transport and delivers its
// events on a channel, closed when the stream ends, until the test ends.
// The transport checks each event as it is read (watchEvents); one that
// fails ends the stream and fails t.
func stream(t testing.TB, url string, hdr ...string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Not httpClient itself: its timeout would cut the stream.
	res, err := (&http.Client{Transport: httpClient.Transport}).Do(req)
	if err != nil {
		cancel()
		t.Fatalf("watch %s: %v", url, err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		res.Body.Close()
		cancel()
		t.Fatalf("watch %s = %d %s, want an event stream", url, res.StatusCode, res.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 1024)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-done
		for _, f := range contract.Failures(req.URL.Host) {
			t.Errorf("watch %s: %s", url, f)
		}
	})
	go func() {
		defer close(done)
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = []byte(line[6:])
			}
		}
	}()
	return out
}

// nextSet waits for the next instances event.
func nextSet(t testing.TB, events <-chan sseEvent, d time.Duration) (registry.InstanceSet, string) {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("watch stream ended")
		}
		if ev.typ != "instances" {
			t.Fatalf("event %q: %s, want instances", ev.typ, ev.data)
		}
		var set registry.InstanceSet
		if err := json.Unmarshal(ev.data, &set); err != nil {
			t.Fatal(err)
		}
		return set, ev.id
	case <-time.After(d):
		t.Fatalf("no watch event within %s", d)
	}
	return registry.InstanceSet{}, ""
}

func ids(list []catalog.Instance) string {
	var out []string
	for _, inst := range list {
		out = append(out, inst.ID)
	}
	return strings.Join(out, ",")
}
