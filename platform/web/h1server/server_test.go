package h1server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/h1server"
	"github.com/stewardhq/steward/platform/web/webtest"
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

// serveTLS is serve on a TLS listener of cert.
func serveTLS(t *testing.T, s *h1server.Server, cert tls.Certificate) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})) }()
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
// is the next request's first, and that request is served whole; over
// TLS too, where the read deadline that stops the background read falls
// inside a record's read, and the byte comes out of a decrypted record.
func TestPipelinedRequestDuringAWatch(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert := ca.Certificate("server", 10)
	for _, overTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("TLS %t", overTLS), func(t *testing.T) {
			t.Parallel()
			s := &h1server.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					time.Sleep(2500 * time.Millisecond) // the watch starts after a second
				}
				_, _ = io.WriteString(w, r.URL.Path)
				if overTLS != (r.TLS != nil) {
					t.Errorf("%s: r.TLS = %v over TLS %t", r.URL.Path, r.TLS, overTLS)
				}
			})}
			var c net.Conn
			if overTLS {
				c = dial(t, serveTLS(t, s, cert))
				c = tls.Client(c, &tls.Config{InsecureSkipVerify: true})
			} else {
				c = dial(t, serve(t, s))
			}
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
		})
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

// TestTLSHandshakeFailures: over TLS, a connection whose handshake fails
// is closed unanswered and logged with net/http's words, at debug level
// when the client closed before sending anything (TCP health checks), as
// a warning otherwise; a silent client is cut after ReadHeaderTimeout.
func TestTLSHandshakeFailures(t *testing.T) {
	ca := webtest.NewPKI(t, "ca")
	cert := ca.Certificate("server", 10)
	for _, tc := range []struct {
		name  string
		send  string // then close, unless silent
		quiet bool   // send nothing, and wait
		level string
		err   string // in the logged message
	}{
		{"closed at once", "", false, "DEBUG", "EOF"},
		{"plain HTTP", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", false, "WARN", "does not look like a TLS handshake"},
		{"silent", "", true, "WARN", "i/o timeout"},
		{"half a ClientHello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", true, "WARN", "i/o timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs webtest.Logs
			s := &h1server.Server{
				Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("a request was served") }),
				ReadHeaderTimeout: 200 * time.Millisecond,
				Logger:            logs.Logger(),
			}
			c := dial(t, serveTLS(t, s, cert))
			start := time.Now()
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			if !tc.quiet {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			answer, err := io.ReadAll(c)
			if len(answer) > 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client read %q, %v; want nothing, then the close", answer, err)
			}
			if took := time.Since(start); tc.quiet && (took < 150*time.Millisecond || took > 5*time.Second) {
				t.Errorf("the silent client was cut after %v, want ReadHeaderTimeout (200ms)", took)
			}
			webtest.WaitFor(t, 5*time.Second, "the handshake's failure logged", func() bool { return len(logs.Records("")) > 0 })
			recs := logs.Records("")
			msg, _ := recs[0]["msg"].(string)
			if len(recs) != 1 || recs[0]["level"] != tc.level || !strings.HasPrefix(msg, "http: TLS handshake error from 127.0.0.1:") || !strings.Contains(msg, tc.err) {
				t.Errorf("logged %v, want one %s record: http: TLS handshake error from the client: ...%s...", recs, tc.level, tc.err)
			}
			if st := s.Stats(); st.Connections.Load() != 1 || st.Requests.Load() != 0 {
				t.Errorf("Stats: %d connections, %d requests; want 1 and 0", st.Connections.Load(), st.Requests.Load())
			}
		})
	}
}
