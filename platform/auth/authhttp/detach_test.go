package authhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestMain fails the package if a stream, a hold's timer or the Guard's
// loop outlives its test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, qlogtest.IgnoreNATSLeaks()) }

// authLog opens a one-replica auth log on an embedded NATS server and
// returns it with its state machine, once ready.
func authLog(tb testing.TB, service string) (*qlog.Log, *auth.Machine) {
	tb.Helper()
	ctx := tb.Context()
	nc := qlogtest.StartServer(tb).Connect(tb)
	snaps, err := qlogsvc.Snapshots(ctx, nc, nil, service, 1)
	if err != nil {
		tb.Fatal(err)
	}
	m := auth.New()
	l, err := qlog.Open(ctx, qlog.Config{Service: service, ReplicaID: "a-0", Voters: []string{"a-0"}, Conn: nc,
		StreamReplicas: 1, Snapshots: snaps, Logger: slog.New(slog.DiscardHandler)}, m)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	if err := l.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
	return l, m
}

// apply proposes auth commands and waits for each to be applied.
func apply(tb testing.TB, l *qlog.Log, cmds ...auth.Command) {
	tb.Helper()
	for _, c := range cmds {
		cmd, _ := json.Marshal(c)
		if _, err := l.Propose(tb.Context(), cmd, qlog.ProposeOptions{}); err != nil {
			tb.Fatal(err)
		}
	}
}

// readerRole is a role that may read the kv keys under prefix.
func readerRole(name, prefix string) auth.Command {
	return auth.Command{Op: auth.OpPutRole, Role: &auth.Role{Name: name,
		Rules: []auth.Rule{{Resource: auth.KV, Prefix: prefix, Access: auth.Read}}}}
}

// idle is a watch on which nothing ever happens.
type idle struct{}

func (idle) Changed() <-chan struct{}               { return nil }
func (idle) TryNextRevision() ([]qlog.Event, error) { return nil, nil }
func (idle) Done() <-chan struct{}                  { return nil }
func (idle) Close()                                 {}

// watching counts the goroutines of this process in the stream's loop,
// and those net/http serves a connection with.
func watching() (streams, conns int) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("sse.Stream.loop(")), bytes.Count(buf, []byte("net/http.(*conn).serve("))
}

// TestAuthenticatedWatchDetaches: with auth on, a watch over HTTP/1
// takes its connection over and leaves its handler (one goroutine per
// watcher, none of net/http's), and still ends promptly when its token is
// revoked or loses the access the route needs, also when that happens
// before the Guard holds it; as each stream ends the Guard forgets it and
// its client's slot (web.Hold) is free again.
func TestAuthenticatedWatchDetaches(t *testing.T) {
	const perToken = 50
	l, m := authLog(t, "authdetach")
	createA, secretA := auth.CreateToken("", auth.TokenRequest{Roles: []string{"a"}})
	createB, secretB := auth.CreateToken("", auth.TokenRequest{Roles: []string{"b"}})
	createC, secretC := auth.CreateToken("", auth.TokenRequest{Roles: []string{"a"}})
	apply(t, l, readerRole("a", "/app/"), readerRole("b", "/app/"), createA, createB, createC)

	g := authhttp.NewGuard(l, m, false, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	var run sync.WaitGroup
	run.Go(func() { g.Run(ctx) })
	var table []authhttp.Route
	h := web.NewHandler(web.Options{Service: "t", Middleware: []func(http.Handler) http.Handler{g.Middleware},
		Routes: func(r chi.Router) {
			prefix := func(r *http.Request) (string, error) { return r.URL.Query().Get("prefix"), nil }
			authhttp.NewRouter(r, &table).Get("/v1/watch", authhttp.Need{Resource: auth.KV, Access: auth.Read, Name: prefix, Prefix: true},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					s := sse.Stream{Watch: idle{}, Revision: sse.WriteRevision, Heartbeat: 50 * time.Millisecond}
					if err := s.Serve(w, r); err != nil {
						web.Error(w, r, nil, err)
					}
				}))
		}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), 5*time.Second, web.Limits{WatchesPerClient: 2 * perToken})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
		run.Wait()
	})
	addr := ln.Addr().String()

	before := runtime.NumGoroutine()
	var heapBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapBefore)
	var a, b []*stream
	for range perToken {
		a = append(a, watch(t, addr, secretA, http.StatusOK))
		b = append(b, watch(t, addr, secretB, http.StatusOK))
	}
	// Every stream is watched by the Guard once it ran holdAfter.
	webtest.WaitFor(t, 5*time.Second, "the Guard to hold every stream", func() bool { return g.Held() == 2*perToken })
	var heapAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapAfter)
	goroutines := runtime.NumGoroutine() - before
	streams, conns := watching()
	t.Logf("%d watchers with auth on: %.1f goroutines and %.1f KiB of live heap each (the client's side included)",
		2*perToken, float64(goroutines)/(2*perToken), float64(int64(heapAfter.HeapAlloc)-int64(heapBefore.HeapAlloc))/1024/(2*perToken))
	if streams != 2*perToken || conns != 0 || goroutines > 2*perToken+5 {
		t.Fatalf("%d watchers: %d stream loops, %d connections served by net/http, %d goroutines more; want one loop each, none of net/http's, about one goroutine each",
			2*perToken, streams, conns, goroutines)
	}

	// Revoking A ends A's streams, and only those.
	endWithin(t, l, auth.Command{Op: auth.OpRevokeToken, ID: createA.ID}, "A's streams", a)
	webtest.WaitFor(t, 5*time.Second, "the Guard to forget A's streams", func() bool { return g.Held() == perToken })
	if streams, _ := watching(); streams != perToken {
		t.Fatalf("%d streams run after A's ended, want B's %d", streams, perToken)
	}

	// A's slots are free again: B takes them, and no more.
	for range perToken {
		b = append(b, watch(t, addr, secretB, http.StatusOK))
	}
	watch(t, addr, secretB, http.StatusTooManyRequests)

	// B's role loses the access the route needs: every B stream ends.
	endWithin(t, l, readerRole("b", "/other/"), "B's streams", b)
	webtest.WaitFor(t, 5*time.Second, "the Guard to forget every stream", func() bool { return g.Held() == 0 })

	// A token revoked before the Guard holds its detached stream (within
	// holdAfter of its start) is caught when it does.
	c := watch(t, addr, secretC, http.StatusOK)
	endWithin(t, l, auth.Command{Op: auth.OpRevokeToken, ID: createC.ID}, "C's stream", []*stream{c})
	webtest.WaitFor(t, 5*time.Second, "the Guard to forget C's stream", func() bool { return g.Held() == 0 })
	webtest.WaitFor(t, 5*time.Second, "every stream's goroutine to end", func() bool { streams, _ := watching(); return streams == 0 })
}

// endWithin applies change and fails unless every one of streams ends
// within a second: holdAfter, and the time the Guard takes to notice.
func endWithin(t *testing.T, l *qlog.Log, change auth.Command, what string, streams []*stream) {
	t.Helper()
	apply(t, l, change)
	applied := time.Now()
	for i, st := range streams {
		if rest, err := st.readToEnd(); err != nil {
			t.Fatalf("%s: stream %d after the %s: %v (read %q)", what, i, change.Op, err, rest)
		}
	}
	if d := time.Since(applied); d > time.Second {
		t.Errorf("%s ended %v after the %s was applied, want within 1s", what, d, change.Op)
	} else {
		t.Logf("%s ended %v after the %s was applied", what, d, change.Op)
	}
}

// stream is a watch's connection, read past the answer's head.
type stream struct {
	c  net.Conn
	br *bufio.Reader
}

// watch opens GET /v1/watch?prefix=/app/ with secret on a fresh
// connection and checks the answer's status; of a stream, the first
// comment is read too.
func watch(t *testing.T, addr, secret string, want int) *stream {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /v1/watch?prefix=/app/ HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + secret + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// A small buffer, so that the heap a watcher costs is the server's.
	br := bufio.NewReaderSize(c, 64)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != want {
		t.Fatalf("GET /v1/watch = %d, want %d", res.StatusCode, want)
	}
	if want != http.StatusOK {
		return nil
	}
	if line, err := br.ReadString('\n'); err != nil || line != ": watching\n" {
		t.Fatalf("stream begins %q, %v; want \": watching\"", line, err)
	}
	return &stream{c: c, br: br}
}

// readToEnd reads the stream until its connection closes, for 5s at
// most, and returns what came before the end but heartbeats.
func (s *stream) readToEnd() (string, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var rest bytes.Buffer
	for {
		line, err := s.br.ReadString('\n')
		if err == io.EOF && line == "" {
			return rest.String(), nil
		}
		if err != nil {
			return rest.String(), err
		}
		if line != ": heartbeat\n" && line != "\n" {
			rest.WriteString(line)
		}
	}
}
