package h1server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/stewardhq/steward/platform/web/h1server"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// BenchmarkServe: keep-alive GETs on one connection, one at a time, a
// 13-byte answer; the same handler behind net/http's server and behind
// h1server, over plain TCP and over TLS. The client writes the request's
// bytes and reads the answer by its Content-Length, so it costs both the
// same.
func BenchmarkServe(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello, world\n")
	})
	ca := webtest.NewPKI(b, "ca")
	cert := ca.Certificate("server", 10)
	overTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	for _, bc := range []struct {
		name  string
		tls   bool
		serve func(net.Listener)
	}{
		{"net/http", false, func(ln net.Listener) { _ = (&http.Server{Handler: h}).Serve(ln) }},
		{"h1server", false, func(ln net.Listener) { _ = (&h1server.Server{Handler: h}).Serve(ln) }},
		{"net/http-tls", true, func(ln net.Listener) { _ = (&http.Server{Handler: h}).Serve(tls.NewListener(ln, overTLS)) }},
		{"h1server-tls", true, func(ln net.Listener) { _ = (&h1server.Server{Handler: h}).Serve(tls.NewListener(ln, overTLS)) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go bc.serve(ln)
			var c net.Conn
			if bc.tls {
				c, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			} else {
				c, err = net.Dial("tcp", ln.Addr().String())
			}
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
