package h1client_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/sdk/h1client"
)

// FuzzAnswer is a differential fuzz target: the same raw bytes, sent by an
// upstream in answer to the same request, are read once through h1client
// and once through net/http's own Transport, and what the caller sees must
// be the same: whether RoundTrip failed, and if both answered the status,
// protocol, headers, length, transfer encoding, Close, the 1xx answers
// seen through httptrace, the body bytes, whether reading the body failed,
// and the trailers. Error messages may differ.
//
// The legitimate differences, and only those, are normalised (see
// fuzzLegitimate): a final 101 and more than five 1xx answers. Inputs of
// MaxHeaderBytes or more are skipped (see below). The reference transport
// runs with DisableCompression, because h1client never asks for gzip: with
// compression on, net/http would send "Accept-Encoding: gzip" and then
// decode a gzip answer and drop its Content-Encoding and Content-Length,
// which is a different request, not a different reading of the answer.
//
// A hang (the 2 s deadline of a request firing) fails the input at once.
func FuzzAnswer(f *testing.F) {
	const (
		get  = 0
		head = 1
		post = 2
	)
	seeds := []struct {
		method byte
		raw    string
	}{
		// A plain 200 with a length, for each method.
		{get, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"},
		{post, "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nLocation: /x\r\n\r\nok"},
		// Chunked, with a trailer.
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n"},
		// Close-delimited: neither a length nor chunking.
		{get, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the upstream closes"},
		// HEAD with a Content-Length and no body (and one with a body it
		// should not have sent).
		{head, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
		{head, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		// 204 and 304, which have no body whatever their headers say.
		{get, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"},
		{get, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n"},
		{post, "HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\nabc"},
		// 1xx before the answer: 103 Early Hints, 100 Continue unasked.
		{get, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"},
		{post, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		// Five 1xx answers (h1client's most) and six (one too many).
		{get, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 5) + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
		{get, strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6) + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"},
		// 101 to a request that asked no upgrade.
		{get, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw"},
		{get, "HTTP/1.1 101 Switching Protocols\r\n\r\n"},
		// Connection: close, with a length and without.
		{get, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"},
		{get, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\noops"},
		// HTTP/1.0: close-delimited, and keep-alive with a length.
		{get, "HTTP/1.0 200 OK\r\n\r\nten bytes."},
		{get, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"},
		{head, "HTTP/1.0 404 Not Found\r\nContent-Length: 9\r\n\r\n"},
		// Both Content-Length and Transfer-Encoding.
		{get, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"},
		// Content-Lengths: two different, two equal.
		{get, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
		{get, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"},
		// Truncated: a body shorter than its length, a chunk cut short, a
		// head cut short.
		{get, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nabc"},
		{get, "HTTP/1.1 200 OK\r\nContent-Le"},
		// Garbage, and nothing at all.
		{get, "garbage\r\n\r\n"},
		{get, "\x00\xff\r\n"},
		{get, ""},
		{post, ""},
		// Bad chunk sizes.
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"},
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n"},
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n"},
		// An obs-fold header line.
		{get, "HTTP/1.1 200 OK\r\nX-Folded: a\r\n  b\r\nContent-Length: 1\r\n\r\nz"},
		// Odd but parseable: bare LF, a status without text, an unknown
		// transfer coding.
		{get, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
		{get, "HTTP/1.1 418\r\nContent-Length: 0\r\n\r\n"},
		{get, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
	}
	for _, s := range seeds {
		f.Add(s.method, []byte(s.raw))
	}

	// Outside fuzzing, where it is cheap, check that the inputs left no
	// goroutine behind (TestMain's goleak check comes only once all the
	// package's tests ran). Under -fuzz every input is checked anyway for
	// connections left open (see fuzzUpstream), which is what would keep a
	// transport's goroutines alive.
	if fl := flag.Lookup("test.fuzz"); fl == nil || fl.Value.String() == "" {
		before := goleak.IgnoreCurrent()
		f.Cleanup(func() { goleak.VerifyNone(f, before) })
	}
	up := newFuzzUpstream(f)

	f.Fuzz(func(t *testing.T, method byte, raw []byte) {
		// h1client bounds all of an answer's heads, 1xx included, to
		// MaxHeaderBytes (1 MiB by default), counting what its buffer
		// reads ahead; net/http bounds each to 10 MiB. Below 1 MiB of
		// input neither bound can be reached.
		if len(raw) >= 1<<20 {
			t.Skip("input over h1client's head limit")
		}
		var m string
		var reqBody string
		switch method % 3 {
		case get:
			m = http.MethodGet
		case head:
			m = http.MethodHead
		case post:
			m, reqBody = http.MethodPost, "a=1&b=2"
		}

		url := up.answer(t, raw)

		tr := h1client.New(h1client.Options{Fallback: &http.Transport{}})
		t.Cleanup(tr.CloseIdleConnections)
		ref := &http.Transport{DisableKeepAlives: false, DisableCompression: true}
		t.Cleanup(ref.CloseIdleConnections)

		got := fuzzExchange(t, tr, m, url, reqBody)
		if n := tr.Stats().Fallbacks.Load(); n != 0 {
			t.Fatalf("h1client handed the %s request to its fallback", m)
		}
		want := fuzzExchange(t, ref, m, url, reqBody)

		if got.hung || want.hung {
			t.Fatalf("%s with the answer %q: a hang (deadline hit)\nh1client: %s\nnet/http: %s", m, raw, got, want)
		}
		if why := fuzzLegitimate(raw, m, got, want); why != "" {
			t.Logf("%s with the answer %q: a legitimate difference (%s)\nh1client: %s\nnet/http: %s", m, raw, why, got, want)
			return
		}
		if diffs := fuzzCompare(got, want); len(diffs) > 0 {
			t.Fatalf("%s with the answer %q:\n\t%s\nh1client: %s\nnet/http: %s", m, raw, strings.Join(diffs, "\n\t"), got, want)
		}
	})
}

// fuzzLegitimate says why got and want may differ, or "" when they may not.
// Both reasons are differences h1client documents and net/http does not
// share; each is exempted only when h1client failed and the input is
// what provokes it.
func fuzzLegitimate(raw []byte, method string, got, want fuzzOutcome) string {
	if got.err == nil {
		return ""
	}
	// net/http's Transport returns a final 101 to any request (it treats
	// 101 as terminal, golang.org/issue/26161, and hands a protocol switch
	// the connection as a writable body); h1client refuses a 101 to a
	// request that asked no upgrade (it sends upgrades to its fallback),
	// since it cannot hand over a pooled connection.
	if want.err == nil && want.status == http.StatusSwitchingProtocols {
		return "h1client refuses a 101 it did not ask for"
	}
	// h1client fails an answer after 5 informational heads; net/http
	// (transport.go, persistConn.readResponse) has no count and bounds
	// only the bytes of all heads, so it reads the answer or fails on it
	// for some other reason.
	if fuzzLeading1xx(raw, method) > 5 {
		return "h1client takes at most 5 1xx answers"
	}
	return ""
}

// fuzzLeading1xx counts the informational heads (1xx other than 101, as both
// transports count them) that raw starts with and that parse.
func fuzzLeading1xx(raw []byte, method string) int {
	req, _ := http.NewRequest(method, "http://upstream/", nil)
	br := bufio.NewReaderSize(bytes.NewReader(raw), 4<<10)
	n := 0
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return n
		}
		resp.Body.Close()
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			return n
		}
		n++
	}
}

// fuzzOutcome is what a caller saw of one exchange.
type fuzzOutcome struct {
	hung bool  // the request's deadline fired
	err  error // from RoundTrip
	info []fuzzInformational

	status                 int
	statusText, proto      string
	protoMajor, protoMinor int
	header, trailer        http.Header
	contentLength          int64
	transferEncoding       []string
	close, uncompressed    bool
	body                   []byte
	bodyErr                error
}

type fuzzInformational struct {
	code   int
	header http.Header
}

func (o fuzzOutcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("error %q (1xx %v)", o.err, o.info)
	}
	return fmt.Sprintf("%d %q %s header=%v length=%d te=%q close=%t 1xx=%v body=%q bodyErr=%v trailer=%v",
		o.status, o.statusText, o.proto, o.header, o.contentLength, o.transferEncoding, o.close, o.info,
		o.body, o.bodyErr, o.trailer)
}

// exchange sends one request through rt and reads its answer whole.
func fuzzExchange(t *testing.T, rt http.RoundTripper, method, url, body string) fuzzOutcome {
	var o fuzzOutcome
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			o.info = append(o.info, fuzzInformational{code, http.Header(h).Clone()})
			return nil
		},
	})
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rb)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		o.err = err
		o.hung = ctx.Err() != nil
		return o
	}
	defer resp.Body.Close()
	o.status, o.statusText, o.proto = resp.StatusCode, resp.Status, resp.Proto
	o.protoMajor, o.protoMinor = resp.ProtoMajor, resp.ProtoMinor
	o.header = resp.Header
	o.contentLength = resp.ContentLength
	o.transferEncoding = resp.TransferEncoding
	o.close, o.uncompressed = resp.Close, resp.Uncompressed
	o.body, o.bodyErr = io.ReadAll(resp.Body)
	o.trailer = resp.Trailer // complete once the body is read
	o.hung = ctx.Err() != nil
	return o
}

// compare lists how got differs from want.
func fuzzCompare(got, want fuzzOutcome) []string {
	var d []string
	if (got.err != nil) != (want.err != nil) {
		return []string{fmt.Sprintf("RoundTrip error: h1client %v, net/http %v", got.err, want.err)}
	}
	if !reflect.DeepEqual(got.info, want.info) {
		d = append(d, fmt.Sprintf("1xx answers: h1client %v, net/http %v", got.info, want.info))
	}
	if got.err != nil {
		return d
	}
	diff := func(what string, g, w any) {
		if !reflect.DeepEqual(g, w) {
			d = append(d, fmt.Sprintf("%s: h1client %#v, net/http %#v", what, g, w))
		}
	}
	diff("StatusCode", got.status, want.status)
	diff("Status", got.statusText, want.statusText)
	diff("Proto", [3]any{got.proto, got.protoMajor, got.protoMinor}, [3]any{want.proto, want.protoMajor, want.protoMinor})
	diff("Header", got.header, want.header)
	diff("ContentLength", got.contentLength, want.contentLength)
	diff("TransferEncoding", got.transferEncoding, want.transferEncoding)
	diff("Close", got.close, want.close)
	diff("Uncompressed", got.uncompressed, want.uncompressed)
	diff("body", string(got.body), string(want.body))
	diff("body read failed", got.bodyErr != nil, want.bodyErr != nil)
	diff("Trailer", got.trailer, want.trailer)
	return d
}

// fuzzUpstream answers each connection with the raw bytes of the input
// its request names: it reads the request's head and body, writes the
// bytes, shuts its sending side, and waits for the client to close the
// connection.
//
// One listener serves all the inputs of a process, not one per input: the
// upstream closes first, so each connection leaves a TIME_WAIT socket on
// the upstream's port for a minute, and at a thousand inputs a second
// listeners on fresh ports soon find no ephemeral port free. Everything
// else is per input: answer's cleanup waits for the input's connections
// to be served and closed, and fails the input for one a transport left
// open or for a connection too many or too few.
type fuzzUpstream struct {
	ln     net.Listener
	served sync.WaitGroup // the accepting goroutine and every connection's

	mu     sync.Mutex
	done   *sync.Cond // signalled when a connection of an input is done
	inputs map[string]*fuzzInput
	next   int
	errs   []error // of connections whose request named no input
}

type fuzzInput struct {
	raw         []byte
	conns, open int // connections served, and being served
	errs        []error
}

func newFuzzUpstream(f *testing.F) *fuzzUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	u := &fuzzUpstream{ln: ln, inputs: map[string]*fuzzInput{}}
	u.done = sync.NewCond(&u.mu)
	u.served.Add(1)
	go func() {
		defer u.served.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // the listener is closed
			}
			u.served.Add(1)
			go func() {
				defer u.served.Done()
				defer c.Close()
				u.serve(c)
			}()
		}
	}()
	f.Cleanup(func() {
		ln.Close()
		u.served.Wait()
	})
	return u
}

// answer registers raw as an input and returns the URL that gets it.
// Its cleanup, which runs after the transports' CloseIdleConnections
// (registered later), checks that exactly two connections asked for it,
// one per transport, and that both were closed by their client.
func (u *fuzzUpstream) answer(t *testing.T, raw []byte) string {
	u.mu.Lock()
	u.next++
	id := strconv.Itoa(u.next)
	in := &fuzzInput{raw: raw}
	u.inputs[id] = in
	u.mu.Unlock()
	t.Cleanup(func() {
		u.mu.Lock()
		// Every connection of the input was accepted and had its request
		// read before its transport returned (the answer comes after),
		// and each serve ends by its deadline.
		for in.open > 0 {
			u.done.Wait()
		}
		delete(u.inputs, id)
		errs := append(in.errs, u.errs...)
		u.errs = nil
		conns := in.conns
		u.mu.Unlock()
		for _, err := range errs {
			t.Errorf("upstream: %v (answer %q)", err, raw)
		}
		if conns != 2 {
			t.Errorf("upstream: %d connections for one request per transport (answer %q)", conns, raw)
		}
	})
	return "http://" + u.ln.Addr().String() + "/fuzz/" + id + "?q=1"
}

// serve answers one connection; see fuzzUpstream.
func (u *fuzzUpstream) serve(c net.Conn) {
	// Far beyond the requests' 2 s: a client that keeps the connection
	// this long after cleanup closed its idle connections leaked it.
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		u.mu.Lock()
		u.errs = append(u.errs, fmt.Errorf("reading a request: %w", err))
		u.mu.Unlock()
		return
	}
	u.mu.Lock()
	in := u.inputs[strings.TrimPrefix(req.URL.Path, "/fuzz/")]
	if in == nil {
		u.errs = append(u.errs, fmt.Errorf("a request for %q, no input's", req.URL))
		u.mu.Unlock()
		return
	}
	in.conns++
	in.open++
	u.mu.Unlock()
	err = fuzzServe(c, br, req, in.raw)
	u.mu.Lock()
	if err != nil {
		in.errs = append(in.errs, err)
	}
	in.open--
	u.done.Broadcast()
	u.mu.Unlock()
}

func fuzzServe(c net.Conn, br *bufio.Reader, req *http.Request, raw []byte) error {
	if _, err := io.Copy(io.Discard, req.Body); err != nil {
		return fmt.Errorf("reading the request's body: %w", err)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("%d bytes sent after the request", br.Buffered())
	}
	// The client may have given up on a bad answer and closed: a failed
	// write is no error of the exchange.
	if _, err := c.Write(raw); err == nil {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			return fmt.Errorf("shutting the sending side: %w", err)
		}
	}
	// Anything else than a timeout (EOF, a reset) means the client closed
	// the connection; bytes would be a second request.
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	switch {
	case n > 0:
		return fmt.Errorf("%d bytes sent after the request", n)
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("the client left the connection open")
	}
	return nil
}
