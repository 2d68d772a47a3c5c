package h1server_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/h1server"
)

// serve runs s on a loopback listener until the test ends and returns
// its address.
func serve(t *testing.T, s *h1server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// TestClientLeavingEndsALongRequest: a request that outlasts the first
// second is watched, and the client's leaving ends its context, as
// net/http's background read does.
func TestClientLeavingEndsALongRequest(t *testing.T) {
	ended := make(chan error, 1)
	started := make(chan struct{})
	s := &h1server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(8 * time.Second):
			ended <- nil
		}
	})}
	c := dial(t, serve(t, s))
	if _, err := io.WriteString(c, "GET /watch HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	_ = c.Close()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("the request's context ended with %v, want context.Canceled", err)
	}
}

// TestPipelinedRequestDuringAWatch: the byte the background read takes
// is the next request's first, and that request is served whole.
func TestPipelinedRequestDuringAWatch(t *testing.T) {
	s := &h1server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2500 * time.Millisecond) // the watch starts after a second
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})}
	c := dial(t, serve(t, s))
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1800 * time.Millisecond)
	if _, err := io.WriteString(c, "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/next"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %s: %v", want, err)
		}
		b, _ := io.ReadAll(res.Body)
		if string(b) != want {
			t.Fatalf("answer body = %q, want %q", b, want)
		}
	}
}

// TestShutdownDrains: Shutdown closes an idle connection at once and
// lets an active one finish its request, answered with Connection: close.
func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	inHandler := make(chan struct{})
	s := &h1server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})}
	addr := serve(t, s)
	idle := dial(t, addr)
	busy := dial(t, addr)
	if _, err := io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-inHandler
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	if n, err := idle.Read(make([]byte, 1)); err == nil {
		t.Fatalf("the idle connection read %d bytes during Shutdown, want it closed", n)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in its handler", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	res, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "done" || !res.Close {
		t.Fatalf("answer during Shutdown: body %q, Connection: close %v; want \"done\" and true", b, res.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
}

// TestHijack: a handler takes the connection over, with the bytes the
// server read past the request.
func TestHijack(t *testing.T) {
	s := &h1server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		go func() {
			defer c.Close()
			line, _ := rw.ReadString('\n')
			_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(line)) + "\r\n\r\n" + line)
			_ = rw.Flush()
		}()
	})}
	c := dial(t, serve(t, s))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\nafter the head\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "after the head\n" {
		t.Fatalf("the hijacker read %q, want %q", b, "after the head\n")
	}
}

// TestHandOff: a request the server does not take reaches Fallback with
// its bytes, after the ones it served on the same connection.
func TestHandOff(t *testing.T) {
	got := make(chan string, 1)
	s := &h1server.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "taken") }),
		Fallback: func(c net.Conn) {
			defer c.Close()
			b := make([]byte, 64)
			n, _ := io.ReadAtLeast(c, b, len("GET / HTTP/1.0\r\n\r\n"))
			got <- string(b[:n])
		},
	}
	c := dial(t, serve(t, s))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	if string(b) != "taken" {
		t.Fatalf("first answer %q, want %q", b, "taken")
	}
	if h := <-got; !strings.HasPrefix(h, "GET / HTTP/1.0\r\n\r\n") {
		t.Fatalf("Fallback read %q, want the HTTP/1.0 request", h)
	}
}
