package web

import (
	"strings"
	"testing"
)

// TestFramer: the framer finds the first ambiguous request of a
// connection's bytes however they are split into reads.
func TestFramer(t *testing.T) {
	long := "/" + strings.Repeat("a", 300)
	tests := []struct {
		name   string
		in     string
		blocks uint64
		bad    uint64
	}{
		{"both", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1, 1},
		{"both, other order, bare LF", "POST / HTTP/1.1\ntransfer-encoding: chunked\nCONTENT-LENGTH: 3\n\n0\r\n\r\n", 1, 1},
		{"one of each", "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" +
			"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
			"GET / HTTP/1.1\r\n\r\n", 3, 0},
		{"after a body that looks like headers", "POST / HTTP/1.1\r\nContent-Length: 30\r\n\r\nContent-Length: 1\r\nX: y\r\n\r\n.." +
			"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 2, 2},
		{"chunks that look like headers, trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"1b\r\nContent-Length: 1\r\nX: y\r\n\r\n\r\n0\r\nContent-Length: 5\r\n\r\n" +
			"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n", 3, 3},
		{"HTTP/1.0 ignores Transfer-Encoding", "POST " + long + " HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n" +
			"GET / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 2, 2},
		{"a Content-Length too long to read", "POST / HTTP/1.1\r\nContent-Length:" + strings.Repeat(" ", 200) + "5\r\n\r\nhello", 1, 1},
		{"a long header of another name", "GET " + long + " HTTP/1.1\r\nCookie: " + long + "\r\n\r\nGET / HTTP/1.1\r\n\r\n", 2, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for size := 1; size <= len(tc.in); size++ {
				var f framer
				for i := 0; i < len(tc.in); i += size {
					f.feed([]byte(tc.in[i:min(i+size, len(tc.in))]))
				}
				if f.blocks != tc.blocks || f.bad != tc.bad {
					t.Fatalf("in reads of %d bytes: %d blocks, first ambiguous %d; want %d, %d", size, f.blocks, f.bad, tc.blocks, tc.bad)
				}
			}
		})
	}
}
