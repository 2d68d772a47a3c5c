package h1server_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/stewardhq/steward/platform/web/h1server"
)

// BenchmarkServe: keep-alive GETs on one connection, one at a time, a
// 13-byte answer; the same handler behind net/http's server and behind
// h1server. The client writes the request's bytes and reads the answer
// by its Content-Length, so it costs both the same.
func BenchmarkServe(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello, world\n")
	})
	for _, bc := range []struct {
		name  string
		serve func(net.Listener)
	}{
		{"net/http", func(ln net.Listener) { _ = (&http.Server{Handler: h}).Serve(ln) }},
		{"h1server", func(ln net.Listener) { _ = (&h1server.Server{Handler: h}).Serve(ln) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go bc.serve(ln)
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req := []byte("GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			br := bufio.NewReader(c)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readAnswer(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// readAnswer reads one answer with a Content-Length.
func readAnswer(br *bufio.Reader) error {
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	_, err := br.Discard(length)
	return err
}
