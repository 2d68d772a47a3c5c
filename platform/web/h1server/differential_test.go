package h1server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/h1server"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// The differential test and fuzz target send the same raw bytes to
// net/http's own server and to h1server (in front of a second net/http
// server, its Fallback), with the same handler behind both, and require the
// same answer: the bytes on the wire, up to the Date header's value, how
// the server ended the connection, and what the handler saw of every
// request it was given, in order. That is h1server's whole promise: a
// request it takes is served as net/http would have served it, and one it
// does not take is served by net/http itself.
//
// What cannot match is left out where it arises, and said why: the Date
// header's value, http.ServerContextKey (seenRequest.request), the
// cancellation of r.Context() (timing), how a trickled exchange ends
// (servers.compare), and http.MaxBytesReader (behaviours).

// TestMatchesNetHTTP runs every input with every behaviour of the handler.
func TestMatchesNetHTTP(t *testing.T) {
	p := startServers(t)
	for _, in := range differentialInputs {
		for b := range behaviours {
			if answeredBeforeAnyHandler[in.name] && b > 0 {
				break
			}
			t.Run(in.name+"/"+behaviours[b].name, func(t *testing.T) {
				t.Parallel()
				p.compare(t, []byte(in.raw), b, false)
			})
		}
	}
}

// TestMatchesNetHTTPTrickled sends each input in pieces of a few bytes,
// with a pause after each, so that the servers read heads, bodies and the
// gaps between requests a piece at a time, where TestMatchesNetHTTP's
// single write mostly arrives whole. h1server decides on what it has
// buffered; net/http reads lines and peeks, and waits for what it lacks.
func TestMatchesNetHTTPTrickled(t *testing.T) {
	p := startServers(t)
	for _, in := range differentialInputs {
		if len(in.raw) > maxTrickled {
			continue
		}
		for _, b := range trickledBehaviours {
			t.Run(in.name+"/"+behaviours[b].name, func(t *testing.T) {
				t.Parallel()
				p.compare(t, []byte(in.raw), b, true)
			})
		}
	}
}

// TestMatchesNetHTTPOverTLS is TestMatchesNetHTTP, and the trickled
// inputs of TestMatchesNetHTTPTrickled, over TLS: net/http's server on a
// TLS listener against h1server on one, each handshake with a client
// certificate and a server name, which the handler sees in r.TLS
// (seenRequest.request) through h1server itself and through net/http
// after a handoff. Every input is sent, with the behaviours whose
// answer depends on the connection under it (tlsBehaviours).
func TestMatchesNetHTTPOverTLS(t *testing.T) {
	p := startServersOverTLS(t)
	for _, in := range differentialInputs {
		for i, b := range tlsBehaviours {
			if answeredBeforeAnyHandler[in.name] && i > 0 {
				break
			}
			t.Run(in.name+"/"+behaviours[b].name, func(t *testing.T) {
				t.Parallel()
				p.compare(t, []byte(in.raw), b, false)
			})
		}
		if len(in.raw) > maxTrickled {
			continue
		}
		for _, b := range trickledBehaviours {
			t.Run(in.name+"/"+behaviours[b].name+"/trickled", func(t *testing.T) {
				t.Parallel()
				p.compare(t, []byte(in.raw), b, true)
			})
		}
	}
}

// maxTrickled bounds the inputs sent trickled: at a piece every 100µs or
// more, a long one is slow. Heads near h1server's 4 KiB limit are left to
// TestMatchesNetHTTP.
const maxTrickled = 1 << 10

// trickledBehaviours are three that read the body differently: whole,
// not at all, in part.
var trickledBehaviours = behavioursNamed("echo", "body unread", "body partly read")

// tlsBehaviours are those whose answer depends on the connection the
// server writes to, a *tls.Conn instead of a *net.TCPConn: reading the
// body, flushes and the 2 KiB buffer, ReadFrom (which a *tls.Conn lacks),
// a failed write, the close after the answer (close_notify), hijacking.
// The others differ only in the head and body written, which do not.
var tlsBehaviours = behavioursNamed("echo", "nothing", "over 2 KiB", "body unread", "body partly read",
	"body closed unread", "flush", "abort past the buffer", "panic", "Connection: close", "io.Copy",
	"optional interfaces", "100 Continue written", "full duplex", "write deadline passed",
	"write then hijack", "hijack", "identity answer")

// behavioursNamed returns the indexes of the named behaviours, in
// behaviours' order.
func behavioursNamed(names ...string) []int {
	var bs []int
	for i, b := range behaviours {
		if slices.Contains(names, b.name) {
			bs = append(bs, i)
		}
	}
	if len(bs) != len(names) {
		panic(fmt.Sprintf("behavioursNamed(%q): %d of them are behaviours", names, len(bs)))
	}
	return bs
}

// maxFuzzTrickled bounds the fuzz inputs sent trickled, each exec of
// which takes milliseconds: a trickled input that finds new code is
// minimized by running it hundreds of times, during which the fuzzer runs
// nothing else.
const maxFuzzTrickled = 128

// maxFuzzInput bounds a fuzz input: past h1server's 4 KiB head limit and a
// few pipelined requests, longer inputs find nothing new and only slow
// each execution.
const maxFuzzInput = 16 << 10

// FuzzMatchesNetHTTP is TestMatchesNetHTTP on arbitrary bytes; the second
// argument picks the handler's behaviour, and its top bit sends an input
// of up to maxFuzzTrickled bytes trickled (see TestMatchesNetHTTPTrickled).
func FuzzMatchesNetHTTP(f *testing.F) {
	for i, in := range differentialInputs {
		if len(in.raw) > maxFuzzInput {
			continue
		}
		f.Add([]byte(in.raw), uint8(i%len(behaviours)))
		if len(in.raw) <= maxFuzzTrickled {
			f.Add([]byte(in.raw), 0x80|uint8(i%len(behaviours)))
		}
	}
	// One pair of servers for the whole fuzzing process: starting them per
	// input would cost more than the input. Connections' logs are kept
	// apart by the connection (see connections), not by the run.
	p := startServers(f)
	f.Fuzz(func(t *testing.T, in []byte, b uint8) {
		if len(in) > maxFuzzInput {
			in = in[:maxFuzzInput]
		}
		trickle := b&0x80 != 0 && len(in) <= maxFuzzTrickled
		p.compare(t, in, int(b&0x7f)%len(behaviours), trickle)
	})
}

// differentialInputs are raw requests, one or several pipelined, each
// sent whole and followed by the client's half-close.
var differentialInputs = []struct{ name, raw string }{
	{"empty", ""},
	{"GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{"GET with query", "GET /search?q=a+b&x=%20y HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n"},
	{"GET with fragment", "GET /p?q#frag HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"escaped slash in path", "GET /a%2Fb/c HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"double slash path", "GET //x/y HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"Host with port", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"},
	{"empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n"},
	{"lower-case header names", "POST /x HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\nx-a: b\r\n\r\nhi"},
	{"repeated header", "GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: b\r\nX-Empty:\r\nX-Spaces:   v  \t\r\n\r\n"},
	{"POST with length", "POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\na=1&b=2"},
	{"PUT, PATCH and DELETE", "PUT /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\naPATCH /r HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nbDELETE /r HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"GET with a body", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"},
	{"POST with zero length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
	{"POST without length", "POST / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"two pipelined", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"},
	{"three pipelined", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"close then another", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"keep-alive token", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\n\r\n"},
	{"close and keep-alive", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"Connection: CLOSE", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"two Connection headers", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"other connection token", "GET /1 HTTP/1.1\r\nHost: h\r\nConnection: X-Hop\r\nX-Hop: 1\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"HEAD", "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"HEAD then GET", "HEAD /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"length and chunked", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"two equal lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
	{"two lengths in one line", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc"},
	{"two different lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
	{"length +5", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"},
	{"length -1", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\nhello"},
	{"length in spaces", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5 \r\n\r\nhello"},
	{"length 0x5", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello"},
	{"length with leading zeros", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 005\r\n\r\nhello"},
	{"empty length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\nhello"},
	{"length of 19 digits", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0000000000000000005\r\n\r\nhello"},
	{"huge length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\nhello"},
	{"chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"chunked with trailer", "POST / HTTP/1.1\r\nHost: h\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 42\r\n\r\n"},
	{"identity transfer encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nhello"},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n"},
	{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-Bad : v\r\n\r\n"},
	{"bad header name", "GET / HTTP/1.1\r\nHost: h\r\nX(A): v\r\n\r\n"},
	{"tab in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-Tab: a\tb\r\n\r\n"},
	{"bare LF", "GET / HTTP/1.1\nHost: h\n\nGET /2 HTTP/1.1\nHost: h\n\n"},
	{"bare LF in one line", "GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\r\n"},
	{"missing Host", "GET / HTTP/1.1\r\n\r\n"},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
	{"invalid Host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"},
	{"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n"},
	{"HTTP/1.0 keep-alive", "GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\nHost: h\r\n\r\n"},
	{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
	{"HTTP/2 version", "GET / HTTP/2.0\r\nHost: h\r\n\r\n"},
	{"absolute-form", "GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"},
	{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"},
	{"unknown method", "FOO / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"lower-case method", "get / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"non-ASCII in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\n\r\n"},
	{"NUL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n"},
	{"control byte in target", "GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"Expect 100-continue", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"},
	{"Upgrade websocket", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"},
	{"Pragma without Cache-Control", "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n"},
	{"Pragma with Cache-Control", "GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n"},
	{"head over 4 KiB", "GET /long HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("a", 5000) + "\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	// Past net/http's MaxHeaderBytes: its 431.
	{"head over 1 MiB", "GET /huge HTTP/1.1\r\nHost: h\r\nX-Huge: " + strings.Repeat("h", 1<<20+8<<10) + "\r\n\r\n"},
	{"head just under 4 KiB", "GET /long HTTP/1.1\r\nHost: h\r\nX-Long: " + strings.Repeat("b", 4000) + "\r\n\r\nGET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"unread body under 256 KiB", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("c", 100000) + "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"unread body over 256 KiB", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("d", 300000) + "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"unread body over 256 KiB, handed off", "POST / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\nContent-Length: 300000\r\n\r\n" + strings.Repeat("d", 300000) + "GET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"POST with Connection: close", "POST / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhelloGET /after HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"body shorter than its length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"},
	{"incomplete head", "GET / HTTP/1.1\r\nHost: h\r\n"},
	{"under 4 bytes after a request", "GET / HTTP/1.1\r\nHost: h\r\n\r\nGE"},
	{"under 4 bytes", "GE"},
	{"CRLF after a POST", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"CRLF after a GET", "GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"second head across the buffer's end", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4000\r\n\r\n" + strings.Repeat("e", 4000) + "GET /2 HTTP/1.1\r\nHost: h\r\nX-A: " + strings.Repeat("f", 100) + "\r\n\r\n"},
	{"request after a handed-off one", "FOO /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"handed off after one taken", "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /3 HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"empty query", "GET /? HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"bad escape in target", "GET /a%zz?b=%zz HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"two spaces after the method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
	{"space after the version", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n"},
	{"header line without a colon", "GET / HTTP/1.1\r\nHost: h\r\nX-NoColon\r\n\r\n"},
	{"many headers", "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Many: v\r\nAccept-Language: en\r\n", 60) + "\r\n"},
	{"fifty pipelined", strings.Repeat("GET /p?n=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: pipeline\r\n\r\n", 50)},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	{"garbage", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"},
	{"garbage after a request", "GET / HTTP/1.1\r\nHost: h\r\n\r\nnot a request\r\n\r\n"},
}

// answeredBeforeAnyHandler names the inputs TestMatchesNetHTTP sends with
// one behaviour only: no handler runs for them, and they are big enough
// for the race detector to make every extra run slow.
var answeredBeforeAnyHandler = map[string]bool{"head over 1 MiB": true}

// A behaviour is what the handler does with a request. Each records in s
// what it read and what its writes returned, as that is part of what the
// handler sees.
type behaviour struct {
	name  string
	serve func(w http.ResponseWriter, r *http.Request, s *seenRequest)
}

// bodyOver2K is past net/http's 2048-byte buffer, so the answer is chunked
// (no Content-Length can be computed at the handler's return).
var bodyOver2K = bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789\n"), 100)

var behaviours = []behaviour{
	{"echo", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		body := s.readBody(r)
		if len(body) > 1000 {
			body = body[:1000]
		}
		s.write(w, fmt.Appendf(nil, "%s %s %s host=%q body=%q\n", r.Method, r.RequestURI, r.Proto, r.Host, body))
	}},
	{"nothing", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {}},
	{"over 2 KiB", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, bodyOver2K)
	}},
	{"explicit length", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "11")
		s.write(w, []byte("hello world"))
	}},
	{"fewer bytes than the length", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "20")
		s.write(w, []byte("hello"))
	}},
	{"more bytes than the length", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "3")
		s.write(w, []byte("hello"))
	}},
	{"body unread", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.write(w, []byte("hello"))
	}},
	{"body partly read", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		buf := make([]byte, 2)
		n, err := io.ReadFull(r.Body, buf)
		s.note("read %q %s", buf[:n], errText(err))
		s.write(w, []byte("hello"))
	}},
	{"body closed unread", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.note("close %s", errText(r.Body.Close()))
		s.write(w, []byte("hello"))
	}},
	{"flush", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("X-Flushed", "yes")
		s.write(w, []byte("first "))
		s.note("flush %s", errText(http.NewResponseController(w).Flush()))
		s.write(w, []byte("second"))
	}},
	{"204 with a body", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusNoContent)
		s.write(w, []byte("no body allowed"))
	}},
	{"304 with a body", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
		s.write(w, []byte("no body allowed"))
	}},
	{"explicit Content-Type", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Type", "text/plain")
		s.write(w, []byte("<html><body>not sniffed</body></html>"))
	}},
	{"sniffed Content-Type", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, []byte("<html><body>sniffed</body></html>"))
	}},
	{"trailers", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Trailer", "X-T")
		s.write(w, []byte("body before trailers"))
		w.Header().Set("X-T", "declared")
		w.Header().Set(http.TrailerPrefix+"X-U", "undeclared")
	}},
	{"103 Early Hints", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusOK)
		s.write(w, []byte("ok"))
	}},
	{"abort", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, []byte("partial"))
		panic(http.ErrAbortHandler)
	}},
	{"abort past the buffer", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, bodyOver2K)
		panic(http.ErrAbortHandler)
	}},
	{"panic", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, []byte("partial"))
		panic("boom")
	}},
	{"Connection: close", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Connection", "close")
		s.write(w, []byte("bye"))
	}},
	{"many small writes", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		for i := range 100 {
			s.write(w, fmt.Appendf(nil, "line %02d: 0123456789abcdefghij\n", i))
		}
	}},
	{"explicit length over 2 KiB", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", fmt.Sprint(len(bodyOver2K)))
		s.write(w, bodyOver2K)
	}},
	{"Content-Type suppressed", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header()["Content-Type"] = nil
		s.write(w, []byte("<html>no type</html>"))
	}},
	{"explicit Date", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
		s.write(w, []byte("dated"))
	}},
	{"explicit chunking", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Transfer-Encoding", "chunked")
		s.write(w, []byte("chunked by request"))
	}},
	// net/http takes what it needs of the request's header and Close
	// before the handler runs (golang.org/issue/14940), so a handler that
	// changes them changes nothing on the wire. (It reads r.ContentLength
	// as it answers, but a handler that zeroes it on a request with a body
	// makes net/http's own server panic on the connection, a concurrent
	// read of it, and net/http's bugs are not h1server's to copy.)
	{"request mutated", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		r.Header.Set("Connection", "close")
		r.Header.Del("Content-Length")
		r.Close = true
		s.write(w, []byte("mutated"))
	}},
	// io.Copy hands the answer to the ResponseWriter's ReadFrom when the
	// source has no WriteTo (an io.LimitReader, as http.ServeContent
	// copies through): net/http's sends the head once it has the first
	// 512 bytes, so a body it would have sent with a length goes chunked.
	{"optional interfaces", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.writer(w)
		s.write(w, []byte("ok"))
	}},
	{"io.Copy", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		n, err := io.Copy(w, io.LimitReader(bytes.NewReader(bodyOver2K), 1000))
		s.note("copied %d %s", n, errText(err))
	}},
	{"header changed after WriteHeader", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("X-Early", "sent")
		w.WriteHeader(http.StatusAccepted)
		w.Header().Set("X-Late", "not sent")
		w.Header().Del("X-Early")
		s.write(w, []byte("accepted"))
	}},
	{"status without a text", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.WriteHeader(599)
		s.write(w, []byte("odd status"))
	}},
	// net/http panics on a code outside 100-999.
	{"invalid status", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.WriteHeader(1000)
	}},
	{"invalid answer length", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "abc")
		s.write(w, []byte("length dropped"))
	}},
	// net/http parses the handler's Content-Length with strconv.ParseInt,
	// which takes a sign, and writes it as the handler set it.
	{"answer length +5", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "+5")
		s.write(w, []byte("hello"))
	}},
	{"answer length in spaces", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", " 5 ")
		s.write(w, []byte("hello"))
	}},
	{"length and chunking in the answer", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "5")
		w.Header().Set("Transfer-Encoding", "chunked")
		s.write(w, []byte("hello"))
	}},
	// Transfer-Encoding: identity asks for a body ended by the close.
	{"identity answer", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Transfer-Encoding", "identity")
		s.write(w, []byte("until the close"))
	}},
	{"odd answer headers", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		h := w.Header()
		h["Bad Key"] = []string{"dropped"}
		h["x-lower"] = []string{"kept as is"}
		h.Set("X-Newline", "a\nb\rc")
		h.Add("X-Twice", "1")
		h.Add("X-Twice", "2")
		h["X-Empty"] = []string{""}
		h["X-None"] = nil
		s.write(w, []byte("odd headers"))
	}},
	{"304 with a length", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.Header().Set("Content-Length", "10")
		w.WriteHeader(http.StatusNotModified)
	}},
	{"100 Continue written", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		w.WriteHeader(http.StatusContinue)
		s.readBody(r)
		s.write(w, []byte("continued"))
	}},
	{"flush first", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.note("flush %s", errText(http.NewResponseController(w).Flush()))
	}},
	// Once the head is out, net/http has read what it reads of an unread
	// body (up to 256 KiB) and closed it: later reads fail.
	{"body read after a flush", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.write(w, []byte("first"))
		s.note("flush %s", errText(http.NewResponseController(w).Flush()))
		s.readBody(r)
		s.write(w, []byte("second"))
	}},
	{"full duplex", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		rc := http.NewResponseController(w)
		s.note("full duplex %s", errText(rc.EnableFullDuplex()))
		s.write(w, []byte("first"))
		s.note("flush %s", errText(rc.Flush()))
		s.readBody(r)
		s.write(w, []byte("second"))
	}},
	// The write deadline is in the past, so the first write to the socket
	// fails at once, whatever the timing.
	{"write deadline passed", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		rc := http.NewResponseController(w)
		s.note("deadline %s", errText(rc.SetWriteDeadline(time.Now().Add(-time.Second))))
		s.write(w, []byte("never sent"))
		s.note("flush %s", errText(rc.Flush()))
		s.write(w, []byte("after the failure"))
	}},
	{"101 without an upgrade", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		w.WriteHeader(http.StatusSwitchingProtocols)
		s.write(w, []byte("switched?"))
	}},
	{"WriteString over 2 KiB", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		piece := strings.Repeat("io.WriteString, 0123456789\n", 40)
		for range 3 {
			n, err := io.WriteString(w, piece)
			s.note("write string %d %s", n, errText(err))
		}
	}},
	// net/http flushes the head, not the body bytes buffered before it,
	// when the handler hijacks after writing.
	{"write then hijack", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		s.readBody(r)
		s.write(w, []byte("lost?"))
		c, rw, err := http.NewResponseController(w).Hijack()
		s.note("hijack %s", errText(err))
		if err != nil {
			return
		}
		s.atEnd = func() { c.Close() }
		fmt.Fprintf(rw, "raw after the hijack")
		s.note("flush %s", errText(rw.Flush()))
		s.write(w, []byte("after the hijack"))
	}},
	// Not here: a handler reading through http.MaxBytesReader past its
	// limit. MaxBytesReader tells net/http's ResponseWriter through an
	// unexported method (requestTooLarge), which no type outside net/http
	// can have; net/http then adds "Connection: close" to the answer's
	// header (the handler sees it in w.Header()) and closes the
	// connection, while behind h1server the connection stays open. No
	// server outside net/http can match that.
	{"hijack", func(w http.ResponseWriter, r *http.Request, s *seenRequest) {
		c, rw, err := http.NewResponseController(w).Hijack()
		s.note("hijack %s", errText(err))
		if err != nil {
			return
		}
		// Closed once the request is logged: the client reads the
		// close as the end of the exchange.
		s.atEnd = func() { c.Close() }
		// The rest of the input, whole: the client has half-closed, so
		// how much of it was buffered at the hijack does not show.
		rest, err := io.ReadAll(rw)
		s.note("after the hijack %q %s", rest, errText(err))
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhijacked, then read %q", rest)
		s.note("flush %s", errText(rw.Flush()))
	}},
}

// seenRequest is what a handler saw of one request, rendered as text so
// that two can be compared and printed.
type seenRequest struct {
	b strings.Builder
	// atEnd, if set, runs once the request is logged.
	atEnd func()
}

func (s *seenRequest) note(format string, args ...any) {
	fmt.Fprintf(&s.b, format, args...)
	s.b.WriteString("\n")
}

// request records the request as the handler is given it. Of r.Context()
// only the local address is compared: its cancellation depends on timing
// (net/http cancels it when its background read sees the client's
// half-close).
func (s *seenRequest) request(r *http.Request) {
	s.note("%s %q %s (%d.%d) host=%q", r.Method, r.RequestURI, r.Proto, r.ProtoMajor, r.ProtoMinor, r.Host)
	u := r.URL
	user := "<nil>"
	if u.User != nil {
		user = u.User.String()
	}
	s.note("url %q scheme=%q opaque=%q user=%q host=%q path=%q rawPath=%q omitHost=%t forceQuery=%t rawQuery=%q fragment=%q rawFragment=%q",
		u.String(), u.Scheme, u.Opaque, user, u.Host, u.Path, u.RawPath, u.OmitHost, u.ForceQuery, u.RawQuery, u.Fragment, u.RawFragment)
	s.note("header %s", renderHeader(r.Header))
	s.note("length=%d te=%q close=%t noBody=%t nilBody=%t trailerDeclared=%s",
		r.ContentLength, r.TransferEncoding, r.Close, r.Body == http.NoBody, r.Body == nil, renderHeader(r.Trailer))
	// http.ServerContextKey is left out: net/http puts its *http.Server
	// there, and h1server has none to put (nothing in its API is one), so
	// a handler behind it cannot rely on that key.
	s.note("remote=%s local=%v", r.RemoteAddr, r.Context().Value(http.LocalAddrContextKey))
	if st := r.TLS; st != nil {
		s.note("tls version=%#x cipher=%#x server=%q complete=%t resumed=%t protocol=%q peers=%d chains=%d",
			st.Version, st.CipherSuite, st.ServerName, st.HandshakeComplete, st.DidResume, st.NegotiatedProtocol,
			len(st.PeerCertificates), len(st.VerifiedChains))
	} else {
		s.note("tls nil")
	}
}

// writer records which of the optional interfaces of net/http's
// ResponseWriter w has: handlers test for them (http.ResponseController
// among them, which answers http.ErrNotSupported for what is missing),
// and io.Copy takes ReadFrom when the source has no WriteTo.
func (s *seenRequest) writer(w http.ResponseWriter) {
	var has []string
	for _, i := range []struct {
		name string
		ok   bool
	}{
		{"Flusher", is[http.Flusher](w)},
		{"FlushError", is[interface{ FlushError() error }](w)},
		{"Hijacker", is[http.Hijacker](w)},
		// Deprecated, but handlers still assert it.
		//lint:ignore SA1019 what net/http's ResponseWriter has is the point
		{"CloseNotifier", is[http.CloseNotifier](w)},
		{"ReaderFrom", is[io.ReaderFrom](w)},
		{"StringWriter", is[io.StringWriter](w)},
		{"SetReadDeadline", is[interface{ SetReadDeadline(time.Time) error }](w)},
		{"SetWriteDeadline", is[interface{ SetWriteDeadline(time.Time) error }](w)},
		{"EnableFullDuplex", is[interface{ EnableFullDuplex() error }](w)},
	} {
		if i.ok {
			has = append(has, i.name)
		}
	}
	s.note("writer has %s", strings.Join(has, " "))
}

func is[I any](w http.ResponseWriter) bool {
	_, ok := w.(I)
	return ok
}

// done records what the handler can see once it is over: the trailers
// reading the body filled in.
func (s *seenRequest) done(r *http.Request) {
	s.note("trailer %s", renderHeader(r.Trailer))
}

func (s *seenRequest) readBody(r *http.Request) []byte {
	body, err := io.ReadAll(r.Body)
	s.note("body %q %s", body, errText(err))
	return body
}

func (s *seenRequest) write(w http.ResponseWriter, p []byte) {
	n, err := w.Write(p)
	s.note("write %d of %d: %s", n, len(p), errText(err))
}

// errText names the errors a handler tells apart; others by their text.
func errText(err error) string {
	switch {
	case err == nil:
		return "nil"
	case err == io.EOF:
		return "io.EOF"
	default:
		return fmt.Sprintf("%q", err.Error())
	}
}

// renderHeader writes h with its keys sorted, so that equal maps render
// alike.
func renderHeader(h http.Header) string {
	if h == nil {
		return "nil"
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%q: %q", k, h[k])
	}
	b.WriteString("}")
	return b.String()
}

// connections is the handler behind both servers. It tells the test's
// connections apart by the address each dials from, which a server
// reports as r.RemoteAddr: each gets the behaviour its test asked for and
// its own log of what the handler saw. Keying by connection rather than by
// run keeps logs apart when runs overlap (parallel subtests) or a server
// still holds an old connection.
type connections struct {
	mu     sync.Mutex
	byAddr map[string]*connLog
	// strays are requests that arrived on no test connection's address: a
	// server that reports a wrong RemoteAddr shows up here, not as a
	// request missing from its connection's log.
	strays []string
}

type connLog struct {
	behaviour int
	seen      []string
}

func (cs *connections) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cs.mu.Lock()
	l := cs.byAddr[r.RemoteAddr]
	cs.mu.Unlock()
	var s seenRequest
	s.request(r)
	if l == nil {
		cs.mu.Lock()
		cs.strays = append(cs.strays, s.b.String())
		cs.mu.Unlock()
		return
	}
	// Deferred, so that a panicking behaviour is logged too.
	defer func() {
		s.done(r)
		cs.mu.Lock()
		l.seen = append(l.seen, s.b.String())
		cs.mu.Unlock()
		if s.atEnd != nil {
			s.atEnd()
		}
	}()
	behaviours[l.behaviour].serve(w, r, &s)
}

func (cs *connections) open(addr string, behaviour int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.byAddr[addr] = &connLog{behaviour: behaviour}
}

// close forgets addr and returns what the handler saw on it. The client
// calls it once the server closed the connection, when every handler that
// served it has returned.
func (cs *connections) close(addr string) []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	l := cs.byAddr[addr]
	delete(cs.byAddr, addr)
	return l.seen
}

func (cs *connections) takeStrays() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	s := cs.strays
	cs.strays = nil
	return s
}

// servers are the two servers under comparison, on loopback TCP.
type servers struct {
	netHTTP, h1 string // addresses
	handler     *connections
	tls         *tls.Config // the client's over TLS; nil: plain TCP
}

// startServers starts net/http's server and h1server, each on its own
// listener, with the same handler and otherwise default settings. The
// servers are shut down when tb ends.
func startServers(tb testing.TB) *servers {
	return startServersWith(tb, nil, nil)
}

// startServersOverTLS is startServers with TLS listeners, which ask for
// a client certificate, and a client that sends one and a server name.
func startServersOverTLS(tb testing.TB) *servers {
	tb.Helper()
	ca := webtest.NewPKI(tb, "ca")
	serverCert, clientCert := ca.Certificate("server", 10), ca.Certificate("client", 20)
	server := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: ca.Pool(),
		ClientAuth: tls.VerifyClientCertIfGiven, NextProtos: []string{"http/1.1"}}
	// What is compared is the servers' side: the client takes any
	// certificate, which lets it send a server name its IP address
	// certificate does not cover.
	client := &tls.Config{Certificates: []tls.Certificate{clientCert}, ServerName: "steward.test",
		InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}
	return startServersWith(tb, server, client)
}

// startServersWith starts the servers, on TLS listeners of server when
// it is not nil, and the client of client.
func startServersWith(tb testing.TB, server, client *tls.Config) *servers {
	tb.Helper()
	cs := &connections{byAddr: map[string]*connLog{}}
	quiet := log.New(io.Discard, "", 0)

	refLn, h1Ln := listen(tb), listen(tb)
	if server != nil {
		refLn, h1Ln = tls.NewListener(refLn, server), tls.NewListener(h1Ln, server)
	}
	ref := &http.Server{Handler: cs, ErrorLog: quiet}

	handoffs := newHandoffListener(h1Ln.Addr())
	fallback := &http.Server{Handler: cs, ErrorLog: quiet}
	h1 := &h1server.Server{
		Handler:  cs,
		Fallback: handoffs.push,
		Logger:   slog.New(slog.DiscardHandler),
	}

	var wg sync.WaitGroup
	serve := func(name string, f func() error) {
		wg.Go(func() {
			if err := f(); !errors.Is(err, http.ErrServerClosed) {
				tb.Errorf("%s: Serve = %v, want http.ErrServerClosed", name, err)
			}
		})
	}
	serve("net/http", func() error { return ref.Serve(refLn) })
	serve("fallback", func() error { return fallback.Serve(handoffs) })
	serve("h1server", func() error { return h1.Serve(h1Ln) })

	tb.Cleanup(func() {
		// Shutdown, not Close: it waits for the connections net/http
		// keeps open for rstAvoidanceDelay after its last answer, so no
		// server goroutine outlives the test.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h1.Shutdown(ctx); err != nil {
			tb.Errorf("h1server: Shutdown = %v", err)
		}
		for name, s := range map[string]*http.Server{"net/http": ref, "fallback": fallback} {
			if err := s.Shutdown(ctx); err != nil {
				tb.Errorf("%s: Shutdown = %v", name, err)
			}
		}
		wg.Wait()
		if strays := cs.takeStrays(); len(strays) > 0 {
			tb.Errorf("requests on no test connection (a wrong r.RemoteAddr?):\n%s", strings.Join(strays, "\n"))
		}
	})
	return &servers{netHTTP: refLn.Addr().String(), h1: h1Ln.Addr().String(), handler: cs, tls: client}
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

// handoffListener is the listener h1server's Fallback feeds: Accept
// returns the connections pushed to it, until Close.
type handoffListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   net.Addr
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{conns: make(chan net.Conn), closed: make(chan struct{}), addr: addr}
}

func (l *handoffListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// exchangeTimeout bounds one exchange. Every input ends in the client's
// half-close, so no server has anything to wait for: reaching it is a
// hang, and fails the input.
const exchangeTimeout = 5 * time.Second

// outcome is what a client saw of one connection, and what the handler
// saw of the requests on it.
type outcome struct {
	wire []byte // with each Date header's value replaced
	end  string // how reading ended: "EOF", "connection reset" or an error
	hung bool
	seen []string
}

// dateLine matches net/http's Date header (http.TimeFormat).
var dateLine = regexp.MustCompile(`\r\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n`)

// exchange sends in to addr, half-closes, and reads until the server
// closes the connection.
func (p *servers) exchange(t testing.TB, addr string, in []byte, b int, trickle bool) outcome {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, exchangeTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	client := c.LocalAddr().String()
	p.handler.open(client, b)
	c.SetDeadline(time.Now().Add(exchangeTimeout))
	// Over TLS, CloseWrite sends close_notify, which the server reads as
	// the end, as it reads TCP's half-close.
	var conn interface {
		net.Conn
		CloseWrite() error
	} = c.(*net.TCPConn)
	if p.tls != nil {
		// The handshake first: CloseWrite fails before it, and the
		// empty input writes nothing that would start it.
		tc := tls.Client(c, p.tls)
		if err := tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake with %s: %v", addr, err)
		}
		conn = tc
	}

	// Written beside the reading, not before it: a server may answer and
	// close without reading all of in (a body too large to discard, a head
	// it refuses), and a write that fills the socket's buffers would then
	// block the client. What the write returns is the server's business.
	written := make(chan struct{})
	go func() {
		defer close(written)
		if trickle {
			// Pieces of 1 to 7 bytes: the same for both servers, and
			// cutting every line and head at many places across inputs.
			for i := 0; len(in) > 0; i++ {
				n := min(len(in), 1+i%7)
				if _, err := conn.Write(in[:n]); err != nil {
					return
				}
				in = in[n:]
				time.Sleep(100 * time.Microsecond)
			}
			conn.CloseWrite()
			return
		}
		if _, err := conn.Write(in); err == nil {
			conn.CloseWrite()
		}
	}()
	wire, err := io.ReadAll(conn)
	conn.Close()
	<-written

	o := outcome{end: "EOF", seen: p.handler.close(client)}
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout():
		o.hung, o.end = true, "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		o.end = "connection reset"
	default:
		o.end = err.Error()
	}
	o.wire = dateLine.ReplaceAll(wire, []byte("\r\nDate: <date>\r\n"))
	// The two servers listen on different ports: what the handler saw of
	// the addresses (r.RemoteAddr, the local address in r.Context(), the
	// text of a network error) is compared as the roles they play.
	for i, s := range o.seen {
		s = strings.ReplaceAll(s, client, "<client>")
		o.seen[i] = strings.ReplaceAll(s, addr, "<server>")
	}
	return o
}

// compare runs in against both servers, one after the other, and fails t
// with every difference.
func (p *servers) compare(t testing.TB, in []byte, b int, trickle bool) {
	t.Helper()
	want := p.exchange(t, p.netHTTP, in, b, trickle)
	got := p.exchange(t, p.h1, in, b, trickle)
	var diffs []string
	if got.hung || want.hung {
		diffs = append(diffs, fmt.Sprintf("a hang (no close within %v): net/http %t, h1server %t", exchangeTimeout, want.hung, got.hung))
	}
	if !bytes.Equal(got.wire, want.wire) {
		diffs = append(diffs, wireDiff(want.wire, got.wire))
	}
	// Trickled, the end is timing: a server that closes while the client
	// still writes (net/http does after its 400 to a malformed request)
	// makes the client's kernel answer the next piece with a reset, which
	// the client's reader meets before or after the end of the answer.
	if got.end != want.end && !trickle {
		diffs = append(diffs, fmt.Sprintf("the connection ended with %s from h1server, %s from net/http", got.end, want.end))
	}
	if !slices.Equal(got.seen, want.seen) {
		diffs = append(diffs, seenDiff(want.seen, got.seen))
	}
	if len(diffs) > 0 {
		t.Errorf("behaviour %q, input %s:\n%s", behaviours[b].name, clip(in, 0), strings.Join(diffs, "\n"))
	}
}

// wireDiff says where two answers part and shows both from a little before.
func wireDiff(want, got []byte) string {
	at := 0
	for at < len(want) && at < len(got) && want[at] == got[at] {
		at++
	}
	return fmt.Sprintf("the bytes on the wire differ at byte %d (lengths %d and %d):\nnet/http: %s\nh1server: %s",
		at, len(want), len(got), clip(want, at), clip(got, at))
}

// seenDiff shows what the handler saw of each request where the servers
// differ.
func seenDiff(want, got []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the handler saw %d requests through net/http, %d through h1server", len(want), len(got))
	for i := range max(len(want), len(got)) {
		w, g := "(none)", "(none)"
		if i < len(want) {
			w = want[i]
		}
		if i < len(got) {
			g = got[i]
		}
		if w == g {
			continue
		}
		fmt.Fprintf(&b, "\nrequest %d, through net/http:\n%s\nthrough h1server:\n%s", i+1, indent(w), indent(g))
	}
	return b.String()
}

func indent(s string) string {
	return "\t" + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n\t")
}

// clip quotes b whole when it is short, and otherwise the part around at
// with the length of what it left out.
func clip(b []byte, at int) string {
	const before, after = 200, 1500
	if len(b) <= before+after {
		return fmt.Sprintf("%q", b)
	}
	from := max(0, at-before)
	to := min(len(b), at+after)
	s := fmt.Sprintf("%q", b[from:to])
	if from > 0 {
		s = fmt.Sprintf("(%d bytes) ", from) + s
	}
	if to < len(b) {
		s += fmt.Sprintf(" (%d more bytes)", len(b)-to)
	}
	return s
}
