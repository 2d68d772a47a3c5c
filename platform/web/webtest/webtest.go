// Package webtest holds what tests of Steward's HTTP services share:
// serving a real server on a loopback port for the length of a test,
// waiting for a condition with a deadline, reading what was logged, and
// sending what only a raw connection can send.
package webtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/logging/logtest"
)

// ServeOn runs run on a fresh loopback listener until the test ends (its
// context is then cancelled, and an error it returns fails the test) and
// returns the base URL once GET /readyz answers 200.
func ServeOn(t testing.TB, run func(ctx context.Context, ln net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", ln.Addr(), err)
		}
	})
	url := "http://" + ln.Addr().String()
	WaitFor(t, 30*time.Second, url+" ready", func() bool {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return url
}

// WaitFor polls cond every 20 ms until it holds, and fails the test if it
// does not within d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs is a logger's output kept for a test to read: every record as the
// JSON handler writes it, decoded.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a logger that writes to l at every level, built as every
// Steward process builds its own (logging.New).
func (l *Logs) Logger() *slog.Logger {
	return logging.New(l, logging.JSON, slog.LevelDebug)
}

// Strict returns every record written so far, decoded strictly: an error
// names the first line that is not one JSON object or repeats a key.
func (l *Logs) Strict() ([]map[string]any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return logtest.Lines(l.buf.Bytes())
}

// RequestLines returns the records whose msg is msg, failing the test when
// anything logged is not one JSON object or repeats a key (Strict), or when
// one of those records has a request_id that is not in ids: the IDs its
// clients were answered with.
func (l *Logs) RequestLines(t testing.TB, msg string, ids map[string]bool) []map[string]any {
	t.Helper()
	recs, err := l.Strict()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, rec := range recs {
		if rec["msg"] != msg {
			continue
		}
		out = append(out, rec)
		if id, _ := rec["request_id"].(string); !ids[id] {
			t.Errorf("request_id %q is not an id a client was answered with: %v", id, rec)
		}
	}
	return out
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Records returns the records written so far whose msg is msg (every
// record if msg is empty).
func (l *Logs) Records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(l.buf.Bytes()) {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil && (msg == "" || rec["msg"] == msg) {
			out = append(out, rec)
		}
	}
	return out
}

// AmbiguousFraming sends to the server at addr (host:port), on a
// connection of its own, a request to path with both Content-Length and
// Transfer-Encoding, and fails the test unless it is answered 400
// problem+json and the server then closes the connection (RFC 9112 §6.3).
func AmbiguousFraming(t testing.TB, addr, method, path string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", method, path, addr); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%s %s with Content-Length and Transfer-Encoding: %v", method, path, err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%s %s with Content-Length and Transfer-Encoding = %d %s %s, want 400 problem+json",
			method, path, res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if b, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after answering an ambiguous request the connection is still open (read %q, %v), want it closed", b, err)
	}
}
