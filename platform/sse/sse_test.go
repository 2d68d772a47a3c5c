package sse_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestMain fails the package if a stream's goroutine outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// feed is a log of revisions that streams read as a qlog.Watch would.
type feed struct {
	mu       sync.Mutex
	revs     [][]qlog.Event
	changed  chan struct{}
	notified map[*feedWatch]struct{} // the watches that asked to be notified
	closed   atomic.Int64            // Close calls on its watches
}

func newFeed() *feed {
	return &feed{changed: make(chan struct{}), notified: map[*feedWatch]struct{}{}}
}

// publish appends one revision of one event of each of datas.
func (f *feed) publish(datas ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rev := int64(len(f.revs) + 1)
	var evs []qlog.Event
	for _, d := range datas {
		evs = append(evs, qlog.Event{Revision: rev, Type: "put", Key: "k", Data: d})
	}
	f.revs = append(f.revs, evs)
	for w := range f.notified {
		w.notify()
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// watch reads from the next revision published.
func (f *feed) watch() *feedWatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &feedWatch{f: f, next: len(f.revs)}
}

type feedWatch struct {
	f      *feed
	next   int
	notify func() // Notify's, until Close
}

// Notify has f called on every publish, as a keyed qlog.Watch does on
// every apply that concerns it.
func (w *feedWatch) Notify(f func()) bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	w.notify = f
	w.f.notified[w] = struct{}{}
	return true
}

func (w *feedWatch) Changed() <-chan struct{} {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.f.changed
}

func (w *feedWatch) Done() <-chan struct{} { return nil }

func (w *feedWatch) Close() {
	w.f.mu.Lock()
	delete(w.f.notified, w)
	w.f.mu.Unlock()
	w.f.closed.Add(1)
}

func (w *feedWatch) TryNextRevision() ([]qlog.Event, error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	if w.next == len(w.f.revs) {
		return nil, nil
	}
	w.next++
	return w.f.revs[w.next-1], nil
}

// server serves GET /watch, a Stream of f, with web.Serve. Accepted
// connections get a small send buffer, so that a client that does not
// read blocks the server's writes soon. stop shuts it down and returns
// Serve's error.
type server struct {
	addr string
	stop func() error
	logs *webtest.Logs
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		_ = c.(*net.TCPConn).SetWriteBuffer(4 << 10)
	}
	return c, err
}

func serve(t *testing.T, f *feed, s sse.Stream) *server {
	t.Helper()
	logs := &webtest.Logs{}
	h := web.NewHandler(web.Options{Service: "t", Logger: logs.Logger(), Routes: func(r chi.Router) {
		r.Get("/watch", func(w http.ResponseWriter, r *http.Request) {
			s := s
			s.Watch = f.watch()
			if err := s.Serve(w, r); err != nil {
				web.Error(w, r, nil, err)
			}
		})
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- web.Serve(ctx, smallBuffers{ln}, h, slog.New(slog.DiscardHandler), 5*time.Second, web.Limits{})
	}()
	srv := &server{addr: ln.Addr().String(), stop: sync.OnceValue(func() error { cancel(); return <-served }), logs: logs}
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return srv
}

// dial sends GET /watch on a fresh connection, with a small receive
// buffer if small, and reads the answer's head and first comment.
func dial(t *testing.T, addr string, small bool) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if small {
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	}
	if _, err := io.WriteString(c, "GET /watch HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(c, 512)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /watch = %d %q, want 200 text/event-stream", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if first, err := readComment(br); err != nil || first != ": watching\n\n" {
		t.Fatalf("stream begins %q, %v; want \": watching\"", first, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br
}

// readComment reads a comment line and the blank line after it.
func readComment(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return line, err
	}
	blank, err := br.ReadString('\n')
	return line + blank, err
}

// nextEvent reads up to the end of the next event and returns its id line.
func nextEvent(br *bufio.Reader) (string, error) {
	var id string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return id, err
		}
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimSpace(line[4:])
		case line == "\n" && id != "":
			return id, nil
		}
	}
}

// TestHead: over HTTP/1.1 the stream's response is a 200 without length
// or chunks that ends with the connection, carrying the headers the
// middleware and the service set, and the events as WriteRevision wrote
// them, the id on a revision's last event. The request is logged once,
// as a 200, when the stream took its connection over.
func TestHead(t *testing.T) { bothPaths(t, testHead) }

func testHead(t *testing.T, hub *sse.Hub) {
	f := newFeed()
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub})
	res, err := http.Get("http://" + srv.addr + "/watch")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || !res.Close || res.ContentLength != -1 || res.TransferEncoding != nil ||
		res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Request-Id") == "" {
		t.Fatalf("GET /watch = %d close=%v length=%d encoding=%v header=%v, want 200 with Connection: close, no length or chunks, the middleware's headers",
			res.StatusCode, res.Close, res.ContentLength, res.TransferEncoding, res.Header)
	}
	br := bufio.NewReader(res.Body)
	if first, err := readComment(br); err != nil || first != ": watching\n\n" {
		t.Fatalf("stream begins %q, %v; want \": watching\"", first, err)
	}
	f.publish([]byte(`{"a":1}`), []byte(`{"b":2}`))
	want := "event: put\ndata: {\"a\":1}\n\nid: 1\nevent: put\ndata: {\"b\":2}\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("revision 1 = %q, %v; want %q", got, err, want)
	}
	// The line is written as the handler returns, which may be after
	// the stream's first write.
	webtest.WaitFor(t, 5*time.Second, "the request's log line", func() bool { return len(srv.logs.Records("request")) > 0 })
	lines := srv.logs.RequestLines(t, "request", map[string]bool{res.Header.Get("X-Request-Id"): true})
	if len(lines) != 1 || lines[0]["status"] != 200.0 || lines[0]["route"] != "/watch" {
		t.Fatalf("request log = %v, want one line: /watch answered 200", lines)
	}
}

// TestStuckClientIsCut: a client that stops reading is cut off once a
// write to it has waited WriteTimeout, while another watcher of the same
// events keeps getting each one promptly.
func TestStuckClientIsCut(t *testing.T) { bothPaths(t, testStuckClientIsCut) }

func testStuckClientIsCut(t *testing.T, hub *sse.Hub) {
	const timeout, prompt = time.Second, 500 * time.Millisecond
	f := newFeed()
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub, WriteTimeout: timeout})
	stuck, _ := dial(t, srv.addr, true)
	_, reader := dial(t, srv.addr, false)

	// Far more than the stuck client's and the server's socket buffers.
	big := bytes.Repeat([]byte("x"), 64<<10)
	const burst = 64
	for range burst {
		f.publish(big)
	}
	for i := range burst {
		if _, err := nextEvent(reader); err != nil {
			t.Fatalf("the reading watcher's event %d: %v", i+1, err)
		}
	}
	for i := burst + 1; i <= burst+5; i++ {
		start := time.Now()
		f.publish([]byte(`{}`))
		id, err := nextEvent(reader)
		if took := time.Since(start); err != nil || id != strconv.Itoa(i) || took > prompt {
			t.Fatalf("next event = id %s, %v after %s; want id %d within %s, before the stuck client's write times out", id, err, took, i, prompt)
		}
	}

	// By now the stuck client has been cut: what it holds ends, short of
	// everything, with the connection closed.
	time.Sleep(2 * timeout)
	_ = stuck.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, stuck)
	if err != nil || n >= burst*int64(len(big)) {
		t.Fatalf("the stuck client read %d bytes, then %v; want less than the %d published and the connection closed", n, err, burst*len(big))
	}
	if hub != nil {
		if slow, cut := hubMetric(t, hub, "steward_watch_hub_slow_writes_total"), hubMetric(t, hub, "steward_watch_hub_cut_total"); slow < 1 || cut != 1 {
			t.Errorf("the hub counted %v slow writes and %v cut streams, want at least 1 and 1", slow, cut)
		}
	}
}

// TestDepartedClientFreesGoroutine: a stream whose client left without a
// word ends by its next heartbeat, though nothing is published: a client
// that closed its connection, and one that closed only its side of it
// (net/http's handler loop ended on that too) but would read on.
func TestDepartedClientFreesGoroutine(t *testing.T) { bothPaths(t, testDepartedClientFreesGoroutine) }

func testDepartedClientFreesGoroutine(t *testing.T, hub *sse.Hub) {
	f := newFeed()
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub, Heartbeat: 20 * time.Millisecond})
	const clients = 10
	var conns []net.Conn
	for range clients {
		c, _ := dial(t, srv.addr, false)
		conns = append(conns, c)
	}
	if n := live(hub); n != clients {
		t.Fatalf("%d goroutines run a stream for %d clients, want one each", n, clients)
	}
	var reading sync.WaitGroup
	for i, c := range conns {
		if i%2 == 0 {
			c.Close()
			continue
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		reading.Go(func() { _, _ = io.Copy(io.Discard, c) })
	}
	webtest.WaitFor(t, 5*time.Second, "the streams' goroutines to end", func() bool { return live(hub) == 0 })
	reading.Wait() // the server closed the half-closed connections
	// Each stream released its watch (a keyed qlog.Watch leaves the
	// index that wakes it), once.
	if n := f.closed.Load(); n != clients {
		t.Errorf("%d watches closed for %d ended streams", n, clients)
	}
}

// hubMetric is the value of one of hub's metrics.
func hubMetric(t *testing.T, hub *sse.Hub, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(hub)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// bothPaths runs test with each stream on a goroutine of its own, and
// with the streams served by a Hub.
func bothPaths(t *testing.T, test func(t *testing.T, hub *sse.Hub)) {
	t.Run("goroutines", func(t *testing.T) { test(t, nil) })
	t.Run("hub", func(t *testing.T) { test(t, sse.NewHub()) })
}

// live counts the streams being served: by hub, or by goroutines of
// their own if hub is nil.
func live(hub *sse.Hub) int {
	if hub != nil {
		return hub.Streams()
	}
	return streams()
}

// streams counts the goroutines running a stream's loop.
func streams() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("sse.Stream.loop("))
}

// TestShutdownEndsStreams: a stream on a connection taken over from
// net/http still ends with the shutdown event when the server stops, and
// Serve returns only once it has.
func TestShutdownEndsStreams(t *testing.T) { bothPaths(t, testShutdownEndsStreams) }

func testShutdownEndsStreams(t *testing.T, hub *sse.Hub) {
	f := newFeed()
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub})
	c, br := dial(t, srv.addr, false)
	served := make(chan error, 1)
	go func() { served <- srv.stop() }()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "event: shutdown\ndata: {}\n\n" {
		t.Fatalf("stream after shutdown = %q, %v; want the shutdown event, then the end", rest, err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

// TestShutdownWaitsForStreams: Serve returns only once the streams that
// took their connections over have ended, a stuck one within its write
// timeout.
func TestShutdownWaitsForStreams(t *testing.T) { bothPaths(t, testShutdownWaitsForStreams) }

func testShutdownWaitsForStreams(t *testing.T, hub *sse.Hub) {
	f := newFeed()
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub, WriteTimeout: 300 * time.Millisecond})
	dial(t, srv.addr, true)
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 64 {
		f.publish(big)
	}
	time.Sleep(100 * time.Millisecond) // the stream's write is blocked by now
	start := time.Now()
	if err := srv.stop(); err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if n := live(hub); n != 0 {
		t.Fatalf("Serve returned after %s with %d streams still running, want none", time.Since(start), n)
	}
}

// TestHTTP2 serves the stream in its handler: an HTTP/2 connection cannot
// be taken over.
func TestHTTP2(t *testing.T) {
	f := newFeed()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sse.Stream{Watch: f.watch(), Revision: sse.WriteRevision}.Serve(w, r)
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	client := ts.Client()
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL, nil)
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET = %s %d %q, want HTTP/2 200 text/event-stream", res.Proto, res.StatusCode, res.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(res.Body)
	if first, err := readComment(br); err != nil || first != ": watching\n\n" {
		t.Fatalf("stream begins %q, %v; want \": watching\"", first, err)
	}
	f.publish([]byte(`{}`))
	if id, err := nextEvent(br); err != nil || id != "1" {
		t.Fatalf("event = id %q, %v; want id 1", id, err)
	}
	cancel()
	webtest.WaitFor(t, 5*time.Second, "the stream to close its watch", func() bool { return f.closed.Load() == 1 })
}

// TestHubHoldsNoGoroutinePerStream: streams served by a Hub hold no
// goroutine while they wait, and every one of them still gets each
// revision, in order.
func TestHubHoldsNoGoroutinePerStream(t *testing.T) {
	const clients = 100
	f := newFeed()
	hub := sse.NewHub()
	// No heartbeat comes to wake a stream that missed a wake-up.
	srv := serve(t, f, sse.Stream{Revision: sse.WriteRevision, Hub: hub, Heartbeat: time.Hour})
	before := runtime.NumGoroutine()
	var readers []*bufio.Reader
	var conns []net.Conn
	for range clients {
		c, br := dial(t, srv.addr, false)
		readers, conns = append(readers, br), append(conns, c)
	}
	if n := hub.Streams(); n != clients {
		t.Fatalf("the hub serves %d streams for %d clients", n, clients)
	}
	if n, want := hubMetric(t, hub, "steward_watch_hub_streams"), float64(clients); n != want {
		t.Fatalf("steward_watch_hub_streams = %v, want %v", n, want)
	}
	// Each connection still has net/http's goroutine until the handler
	// returns; wait for those to end.
	var grew int
	for range 100 {
		if grew = runtime.NumGoroutine() - before; grew < clients/10 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if grew >= clients/10 {
		t.Fatalf("%d more goroutines with %d idle streams on a hub, want a few at most", grew, clients)
	}
	for rev := 1; rev <= 3; rev++ {
		f.publish([]byte(`{}`))
		for i, br := range readers {
			if id, err := nextEvent(br); err != nil || id != strconv.Itoa(rev) {
				t.Fatalf("client %d: event id %q, %v; want %d", i, id, err, rev)
			}
		}
	}
	// Revisions published while the streams are being written: a wake-up
	// that comes during a stream's run must not be lost (the heartbeat,
	// here an hour away, would be the next). Only a round's last
	// revision has no later one to make up for a lost wake-up, so many
	// short rounds.
	rev := 3
	for round := range 50 {
		for range 10 {
			f.publish([]byte(`{}`))
		}
		rev += 10
		deadline := time.Now().Add(10 * time.Second)
		for i, br := range readers {
			_ = conns[i].SetReadDeadline(deadline)
			for want := rev - 9; want <= rev; want++ {
				if id, err := nextEvent(br); err != nil || id != strconv.Itoa(want) {
					t.Fatalf("round %d, client %d: event id %q, %v; want %d", round, i, id, err, want)
				}
			}
		}
	}
}
