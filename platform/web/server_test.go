package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// serve runs h with web.Serve on loopback for the test and returns its
// base URL.
func serve(t *testing.T, limits web.Limits, routes func(chi.Router)) string {
	t.Helper()
	h := web.NewHandler(web.Options{Service: "t", Routes: routes})
	return webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), time.Second, limits)
	})
}

// holdRoute holds a slot (web.Hold) until the client goes away or the
// server stops, answering 200 and one line once it holds it.
func holdRoute(r chi.Router) {
	r.Get("/hold", func(w http.ResponseWriter, r *http.Request) {
		release, err := web.Hold(r)
		if err != nil {
			web.Error(w, r, nil, err)
			return
		}
		defer release()
		_, _ = io.WriteString(w, web.ClientKey(r)+"\n")
		_ = http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-web.Stopping(r.Context()):
		}
	})
}

// hold opens GET /hold with the given X-Forwarded-For (none if empty) and
// returns the status, the first line (the client key, or the problem) and
// a function that ends the request.
func hold(t *testing.T, client *http.Client, url, forwardedFor string) (int, string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/hold", nil)
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	res, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(res.Body).ReadString('\n')
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		line += string(b)
		if res.StatusCode == http.StatusTooManyRequests && res.Header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After")
		}
	}
	return res.StatusCode, strings.TrimSpace(line), func() { cancel(); res.Body.Close() }
}

// TestHoldPerClient: a client holds at most WatchesPerClient long-lived
// requests at once; one more is 429 problem+json with the limit, and a
// slot given back can be taken again. Another client is not affected.
func TestHoldPerClient(t *testing.T) {
	url := serve(t, web.Limits{WatchesPerClient: 3}, holdRoute)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var ends []func()
	defer func() {
		for _, end := range ends {
			end()
		}
	}()
	for i := range 3 {
		status, key, end := hold(t, client, url, "")
		ends = append(ends, end)
		if status != 200 || key != "127.0.0.1" {
			t.Fatalf("hold %d = %d %q, want 200 for client 127.0.0.1", i, status, key)
		}
	}
	status, body, end := hold(t, client, url, "")
	end()
	var p struct {
		Status int    `json:"status"`
		Type   string `json:"type"`
		Limit  int    `json:"limit"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil || status != 429 || p.Type != "urn:steward:problem:too-many-requests" || p.Limit != 3 {
		t.Fatalf("a fourth hold = %d %s, want 429 with limit 3", status, body)
	}
	// Without a trusted proxy, X-Forwarded-For changes nothing.
	if status, body, end := hold(t, client, url, "192.0.2.1"); status != 429 {
		end()
		t.Fatalf("a hold claiming another address = %d %s, want 429", status, body)
	}
	ends[0]()
	ends = ends[1:]
	webtest.WaitFor(t, 10*time.Second, "the slot given back", func() bool {
		status, _, end := hold(t, client, url, "")
		if status == 200 {
			ends = append(ends, end)
		} else {
			end()
		}
		return status == 200
	})
}

// TestHoldBehindTrustedProxy: behind a trusted proxy, each client the
// proxy names has its own slots; a proxy not trusted is one client.
func TestHoldBehindTrustedProxy(t *testing.T) {
	var trusted web.Proxies
	if err := trusted.UnmarshalText([]byte("127.0.0.1, 10.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	url := serve(t, web.Limits{WatchesPerClient: 1, TrustedProxies: trusted}, holdRoute)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	tests := []struct {
		forwardedFor string
		status       int
		key          string
	}{
		{"192.0.2.1", 200, "192.0.2.1"},
		{"192.0.2.1", 429, ""},
		// The rightmost address that is not a trusted proxy.
		{"192.0.2.9, 192.0.2.2, 10.1.2.3", 200, "192.0.2.2"},
		{"192.0.2.2", 429, ""},
		{"", 200, "127.0.0.1"},
		{"not-an-address", 429, ""}, // counted against the proxy
	}
	for _, tc := range tests {
		status, key, end := hold(t, client, url, tc.forwardedFor)
		defer end()
		if status != tc.status || (status == 200 && key != tc.key) {
			t.Fatalf("hold with X-Forwarded-For %q = %d %q, want %d %q", tc.forwardedFor, status, key, tc.status, tc.key)
		}
	}
	if err := trusted.UnmarshalText([]byte("10.0.0.0/33")); err == nil {
		t.Fatal("a prefix of 33 bits was accepted")
	}
}

// TestAmbiguousFraming: a request with both Content-Length and
// Transfer-Encoding is answered 400 and its connection closed, also after
// well-framed requests (chunked, with a length, without a body) on the
// same connection, sent one after another or all at once.
func TestAmbiguousFraming(t *testing.T) {
	url := serve(t, web.Limits{}, func(r chi.Router) {
		r.Post("/echo", func(w http.ResponseWriter, r *http.Request) {
			b, err := web.ReadBody(w, r, 0)
			if err != nil {
				web.Error(w, r, nil, err)
				return
			}
			_, _ = w.Write(b)
		})
	})
	addr := strings.TrimPrefix(url, "http://")
	webtest.AmbiguousFraming(t, addr, http.MethodPost, "/echo")
	webtest.AmbiguousFraming(t, addr, http.MethodGet, "/healthz")

	// The second body looks like headers; the framing must skip it.
	body := "\"\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\""
	good := "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3;ext=1\r\n\"ab\r\n2\r\nc\"\r\n0\r\nX-Trailer: Content-Length: 9\r\n\r\n" +
		fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body) +
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	bad := "POST /echo HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n1\r\n\"\r\n0\r\n\r\n"
	after := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%t", pipelined), func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(conn)
			want := []int{200, 200, 200, 400}
			if pipelined {
				_, _ = io.WriteString(conn, good+bad+after)
			}
			for i, status := range want {
				if !pipelined {
					switch i {
					case 0:
						// Byte by byte: the framing is followed across reads.
						for j := 0; j < len(good); j++ {
							if _, err := conn.Write([]byte{good[j]}); err != nil {
								t.Fatal(err)
							}
						}
					case 3:
						_, _ = io.WriteString(conn, bad+after)
					}
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("response %d: %v", i, err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != status {
					t.Fatalf("response %d = %d %s, want %d", i, res.StatusCode, b, status)
				}
				if i < 2 && string(b) != []string{`"abc"`, body}[i] {
					t.Fatalf("response %d = %q", i, b)
				}
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("the connection stayed open after the ambiguous request (%v)", err)
			}
		})
	}
}

// TestSlowClients: a client that sends its headers too slowly, or keeps
// an idle connection too long, is cut off; a stream that runs longer than
// both timeouts is not.
func TestSlowClients(t *testing.T) {
	url := serve(t, web.Limits{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}, func(r chi.Router) {
		r.Get("/stream", func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for i := range 10 {
				_, _ = fmt.Fprintf(w, "%d\n", i)
				_ = rc.Flush()
				time.Sleep(150 * time.Millisecond)
			}
		})
	})
	addr := strings.TrimPrefix(url, "http://")
	closed := func(t *testing.T, conn net.Conn) {
		t.Helper()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(conn); err != nil {
			t.Fatalf("the server did not close the connection: %v", err)
		}
	}
	send := func(t *testing.T, request string) net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_, _ = io.WriteString(conn, request)
		return conn
	}
	t.Run("slow headers", func(t *testing.T) {
		closed(t, send(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	})
	t.Run("idle", func(t *testing.T) {
		br := bufio.NewReader(send(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("GET /healthz = %v, %v", res, err)
		}
		_, _ = io.ReadAll(res.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("an idle connection was kept: %v", err)
		}
	})
	t.Run("long stream", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		res, err := client.Get(url + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil || strings.Count(string(b), "\n") != 10 {
			t.Fatalf("a 1.5 s stream under 300 ms timeouts gave %q, %v; want all 10 lines", b, err)
		}
	})
}
