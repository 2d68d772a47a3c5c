package h1server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/web/h1server"
)

// TestStats: a connection's requests the server takes count as served,
// and the first it does not take counts one handoff, by why.
func TestStats(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: h\r\n\r\n"
	for _, tc := range []struct {
		name    string
		request string
		served  int    // answers before the handoff, if any
		reason  string // the handoff's; "" for none
		partial bool   // the client half-closes after request
	}{
		{"served", get + get, 2, "", false},
		{"served then HTTP/1.0", get + "GET / HTTP/1.0\r\n\r\n", 1, "version", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: h\r\n\r\n", 0, "version", false},
		{"chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", 0, "framing", false},
		{"two lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 0, "framing", false},
		{"TE", "GET / HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n", 0, "framing", false},
		{"CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 0, "method", false},
		{"h2c preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, "method", false},
		{"absolute-form", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 0, "target", false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", 0, "target", false},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 0, "host", false},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, "host", false},
		{"Expect", "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", 0, "expect", false},
		{"WebSocket", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 0, "upgrade", false},
		{"h2c upgrade", "GET / HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", 0, "upgrade", false},
		{"Connection", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, x\r\n\r\n", 0, "connection", false},
		{"over 4 KiB", "GET / HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", 0, "too_large", false},
		{"101 lines", "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X: a\r\n", 100) + "\r\n", 0, "too_large", false},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 0, "malformed", false},
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", 0, "malformed", false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 0, "malformed", false},
		{"UTF-8 value", "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n", 0, "malformed", false},
		{"cut head", "GET / HTTP/1.1\r\nHost: h\r\n", 0, "incomplete", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			handedOff := make(chan struct{})
			s := &h1server.Server{
				Handler:  http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "taken") }),
				Fallback: func(c net.Conn) { _ = c.Close(); close(handedOff) },
			}
			c := dial(t, serve(t, s))
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			if tc.partial {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			br := bufio.NewReader(c)
			for i := range tc.served {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("answer %d: %v", i, err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
			}
			if tc.reason != "" {
				<-handedOff
			}

			st := s.Stats()
			if got := st.Requests.Load(); got != uint64(tc.served) {
				t.Errorf("Stats().Requests = %d, want %d", got, tc.served)
			}
			if got := st.Connections.Load(); got != 1 {
				t.Errorf("Stats().Connections = %d, want 1", got)
			}
			for r := range h1server.NumReasons {
				reason := h1server.Reason(r)
				want := uint64(0)
				if reason.String() == tc.reason {
					want = 1
				}
				if got := st.Handoffs[reason].Load(); got != want {
					t.Errorf("Stats().Handoffs[%s] = %d, want %d", reason, got, want)
				}
			}
		})
	}
}
