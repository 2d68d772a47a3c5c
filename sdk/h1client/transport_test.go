package h1client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/sdk/h1client"
)

func newTransport(t *testing.T, opt h1client.Options) *h1client.Transport {
	t.Helper()
	if opt.Fallback == nil {
		fb := &http.Transport{}
		t.Cleanup(fb.CloseIdleConnections)
		opt.Fallback = fb
	}
	tr := h1client.New(opt)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// countingServer is a net/http upstream that counts the connections it
// accepted.
func countingServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func get(t *testing.T, tr http.RoundTripper, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

func TestKeepsConnectionsAlive(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello "+r.URL.Path) })
	tr := newTransport(t, h1client.Options{})
	for i := range 100 {
		if _, body := get(t, tr, "GET", srv.URL+"/a", nil); body != "hello /a" {
			t.Fatalf("request %d: body %q", i, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("100 sequential requests used %d connections, want 1", n)
	}
	if s := tr.Stats(); s.Dials.Load() != 1 || s.Reused.Load() != 99 || s.Requests.Load() != 100 || s.Fallbacks.Load() != 0 {
		t.Errorf("stats: dials %d, reused %d, requests %d, fallbacks %d; want 1, 99, 100, 0",
			s.Dials.Load(), s.Reused.Load(), s.Requests.Load(), s.Fallbacks.Load())
	}
}

// TestFraming: every way an answer's body can end is read to its end,
// and the connection is used again only where the framing says where the
// answer ends and the upstream did not ask to close.
func TestFraming(t *testing.T) {
	for _, tc := range []struct {
		name, method string
		handler      http.HandlerFunc
		body         string
		reuse        bool
	}{
		{"content-length", "GET", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "twelve bytes") }, "twelve bytes", true},
		{"chunked with a trailer", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "part two")
			w.Header().Set("X-Sum", "2")
		}, "part one, part two", true},
		{"HEAD", "HEAD", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Content-Length", "99") }, "", true},
		{"204", "GET", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, "", true},
		{"304", "GET", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotModified) }, "", true},
		{"Connection: close", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, "bye")
		}, "bye", false},
		{"close-delimited", "GET", func(w http.ResponseWriter, _ *http.Request) {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				panic(err)
			}
			defer c.Close()
			_, _ = rw.WriteString("HTTP/1.1 200 OK\r\n\r\nuntil the end")
			_ = rw.Flush()
		}, "until the end", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := countingServer(t, tc.handler)
			tr := newTransport(t, h1client.Options{})
			for i := range 3 {
				resp, body := get(t, tr, tc.method, srv.URL+"/", nil)
				if body != tc.body {
					t.Fatalf("request %d: body %q, want %q", i, body, tc.body)
				}
				if tc.name == "chunked with a trailer" && resp.Trailer.Get("X-Sum") != "2" {
					t.Errorf("trailer %v, want X-Sum: 2", resp.Trailer)
				}
			}
			want := int64(3)
			if tc.reuse {
				want = 1
			}
			if n := conns.Load(); n != want {
				t.Errorf("3 requests used %d connections, want %d", n, want)
			}
			// A connection whose answer ended it is closed, not pooled
			// to be found closed by the next request.
			if n := tr.Stats().Stale.Load(); n != 0 {
				t.Errorf("%d pooled connections were found closed", n)
			}
		})
	}
}

// TestSendsWhatNetHTTPSends: the upstream sees the same request from this
// transport as from net/http's: method, target, Host, headers, length and
// body.
func TestSendsWhatNetHTTPSends(t *testing.T) {
	type seen struct {
		Method, RequestURI, Host, Body string
		Header                         http.Header
		ContentLength                  int64
		TransferEncoding               []string
	}
	got := make(chan seen, 1)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, string(b), r.Header, r.ContentLength, r.TransferEncoding}
	})
	ours := newTransport(t, h1client.Options{})
	// net/http's transport, as httputil.ReverseProxy had it, asked for
	// gzip where the client had not and unzipped the answer itself:
	// work a proxy should not do, and h1client does not. The rest
	// must match.
	theirs := &http.Transport{DisableCompression: true}
	t.Cleanup(theirs.CloseIdleConnections)
	for _, tc := range []struct {
		name, method, path, body string
		header                   http.Header
		host                     string
	}{
		{name: "GET", method: "GET", path: "/a/b?c=d&e=%20f"},
		{name: "escaped path", method: "GET", path: "/a%2Fb/c%252F"},
		{name: "headers", method: "GET", path: "/", header: http.Header{"X-One": {"1", "2"}, "Accept": {"text/plain"},
			"Via": {"1.1 a", "1.1 b"}, "X-Forwarded-For": {"10.0.0.1"}}},
		{name: "no user agent", method: "GET", path: "/", header: http.Header{"User-Agent": {""}}},
		{name: "a user agent", method: "GET", path: "/", header: http.Header{"User-Agent": {"curl/8"}}},
		{name: "Host", method: "GET", path: "/", host: "api.example.com:8443"},
		{name: "POST with a body", method: "POST", path: "/p", body: `{"x":1}`, header: http.Header{"Content-Type": {"application/json"}}},
		{name: "PUT without a body", method: "PUT", path: "/p"},
		{name: "DELETE", method: "DELETE", path: "/p"},
		{name: "HEAD", method: "HEAD", path: "/h"},
		{name: "OPTIONS", method: "OPTIONS", path: "/o"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var both [2]seen
			for i, tr := range []http.RoundTripper{ours, theirs} {
				var body io.Reader
				if tc.body != "" {
					body = strings.NewReader(tc.body)
				}
				req, err := http.NewRequest(tc.method, srv.URL+tc.path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.header {
					req.Header[k] = v
				}
				req.Host = tc.host
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				both[i] = <-got
			}
			if !reflect.DeepEqual(both[0], both[1]) {
				t.Errorf("the upstream saw\n  from h1client: %+v\n  from net/http: %+v", both[0], both[1])
			}
		})
	}
}

// tcpUpstream serves each connection it accepts with serve, on a
// goroutine of its own, and counts the connections; every goroutine ends
// with the test.
func tcpUpstream(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = new(atomic.Int64)
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			wg.Go(func() {
				defer c.Close()
				go func() { <-done; _ = c.Close() }() // ends serve's reads at cleanup
				serve(c, bufio.NewReader(c))
			})
		}
	})
	return ln.Addr().String(), conns
}

// closingUpstream answers the first request on each connection and closes
// the connection on reading the second, as an upstream whose idle timeout
// ends a connection at the moment a request comes.
func closingUpstream(t *testing.T) (addr string, conns *atomic.Int64) {
	return tcpUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if i == 1 {
				return
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
}

// TestStaleConnection: a pooled connection the upstream closes on the
// next request carries a replayable request again on a new connection;
// a POST is not sent twice.
func TestStaleConnection(t *testing.T) {
	addr, conns := closingUpstream(t)
	tr := newTransport(t, h1client.Options{})
	get(t, tr, "GET", "http://"+addr+"/", nil)
	if _, body := get(t, tr, "GET", "http://"+addr+"/", nil); body != "ok" {
		t.Fatalf("body %q", body)
	}
	if n, s := conns.Load(), tr.Stats().Stale.Load(); n != 2 || s != 1 {
		t.Errorf("connections %d, stale %d; want 2 and 1 (the GET resent once)", n, s)
	}
	// The GET's new connection is pooled now; a POST on it is lost with
	// it and must come back as an error, not be sent again.
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("once"))
	if resp, err := tr.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("POST on a connection the upstream closed: %s, want an error", resp.Status)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("the POST opened a connection to resend it (%d connections)", n)
	}
	// With an Idempotency-Key it may go again.
	req, _ = http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("once"))
	req.Header.Set("Idempotency-Key", "k1")
	get(t, tr, "GET", "http://"+addr+"/", nil) // pools a connection again
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("POST with an Idempotency-Key: %v", err)
	}
	_ = resp.Body.Close()
}

// rawUpstream answers every request on a connection with answer, once.
func rawUpstream(t *testing.T, answer string) (addr string, conns *atomic.Int64) {
	return tcpUpstream(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if _, err := io.WriteString(c, answer); err != nil {
				return
			}
		}
	})
}

// TestUnaskedDataIsNotAnAnswer: bytes an upstream sends after an answer
// (a 408 before closing, a second answer) are never taken as the answer
// to the next request.
func TestUnaskedDataIsNotAnAnswer(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"in the same write", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawUpstream(t, tc.answer)
			tr := newTransport(t, h1client.Options{})
			for i := range 3 {
				resp, body := get(t, tr, "GET", "http://"+addr+"/", nil)
				if resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("request %d: %s %q", i, resp.Status, body)
				}
			}
			if n := conns.Load(); n != 3 {
				t.Errorf("%d connections for 3 requests, want 3 (none reused after unasked bytes)", n)
			}
		})
	}
	t.Run("after the answer", func(t *testing.T) {
		late := make(chan struct{})
		srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/late" {
				c, rw, _ := http.NewResponseController(w).Hijack()
				_, _ = rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				_ = rw.Flush()
				<-late
				_, _ = io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
				_ = c.Close()
				return
			}
			_, _ = io.WriteString(w, "fresh")
		})
		tr := newTransport(t, h1client.Options{})
		get(t, tr, "GET", srv.URL+"/late", nil)
		close(late)
		time.Sleep(50 * time.Millisecond) // the 408 reaches the pooled connection
		if resp, body := get(t, tr, "GET", srv.URL+"/next", nil); resp.StatusCode != 200 || body != "fresh" {
			t.Fatalf("next request: %s %q", resp.Status, body)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
}

// TestContextEndsTheExchange: a request's context ends the wait for the
// answer and the reading of its body, and the connection is not pooled.
func TestContextEndsTheExchange(t *testing.T) {
	release := make(chan struct{})
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/body" {
			_, _ = io.WriteString(w, "first part")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	tr := newTransport(t, h1client.Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/head", nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for the head: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx2, "GET", srv.URL+"/body", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := resp.Body.Read(buf)
	if err != nil || string(buf[:n]) != "first part" {
		t.Fatalf("first read: %q %v", buf[:n], err)
	}
	time.AfterFunc(50*time.Millisecond, cancel2)
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
		t.Fatalf("reading the rest after cancel: %v, want context.Canceled", err)
	}
	_ = resp.Body.Close()
	if n := tr.Idle(); n != 0 {
		t.Errorf("%d idle connections after canceled exchanges, want 0", n)
	}
}

// TestBoundedHead: an answer head over MaxHeaderBytes fails the request
// instead of being read into memory.
func TestBoundedHead(t *testing.T) {
	addr, _ := rawUpstream(t, "HTTP/1.1 200 OK\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\nContent-Length: 0\r\n\r\n")
	tr := newTransport(t, h1client.Options{MaxHeaderBytes: 16 << 10})
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("a 64 KiB head with a 16 KiB limit was accepted")
	}
	if !strings.Contains(err.Error(), "over 16384 bytes") {
		t.Errorf("error %q does not name the limit", err)
	}
	// Under the limit it passes.
	tr = newTransport(t, h1client.Options{MaxHeaderBytes: 128 << 10})
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

// TestInformational: 1xx answers before the final one reach the caller's
// trace (httputil.ReverseProxy passes them on) and are not the answer.
func TestInformational(t *testing.T) {
	addr, _ := rawUpstream(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tr := newTransport(t, h1client.Options{})
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || len(hints) != 1 || hints[0] != "</a.css>; rel=preload" {
		t.Errorf("got %s %q, hints %q", resp.Status, b, hints)
	}

	addr, _ = rawUpstream(t, strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 6)+"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	if resp, err := tr.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Error("6 informational answers were accepted")
	}
}

// TestFallback: what this transport does not carry goes to the fallback.
func TestFallback(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "tls") }))
	t.Cleanup(tlsSrv.Close)
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+strings.Join(r.TransferEncoding, ",")+" "+string(b))
	})
	fb := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}}
	t.Cleanup(fb.CloseIdleConnections)
	tr := newTransport(t, h1client.Options{Fallback: fb, MaxBody: 8})

	if _, body := get(t, tr, "GET", tlsSrv.URL+"/", nil); body != "tls" {
		t.Errorf("HTTPS: %q", body)
	}
	if _, body := get(t, tr, "POST", srv.URL+"/", strings.NewReader("more than eight")); body != "POST  more than eight" {
		t.Errorf("large body: %q", body)
	}
	if _, body := get(t, tr, "POST", srv.URL+"/", io.MultiReader(strings.NewReader("chunked"))); body != "POST chunked chunked" {
		t.Errorf("body of unknown length: %q", body)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	req.Header.Set("Expect", "100-continue")
	if resp, err := tr.RoundTrip(req); err != nil {
		t.Errorf("Expect: %v", err)
	} else {
		_ = resp.Body.Close()
	}
	if f, r := tr.Stats().Fallbacks.Load(), tr.Stats().Requests.Load(); f != 4 || r != 0 {
		t.Errorf("fallbacks %d, carried %d; want 4 and 0", f, r)
	}
	if _, body := get(t, tr, "POST", srv.URL+"/", strings.NewReader("small")); body != "POST  small" {
		t.Errorf("small body: %q", body)
	}
	if r := tr.Stats().Requests.Load(); r != 1 {
		t.Errorf("a small body was not carried by h1client (%d)", r)
	}
}

// TestProxiedRequestsGoToTheFallback: a request Options.Proxy names a
// proxy for is the fallback's, which sends it through that proxy; the
// others are carried here, straight to the server.
func TestProxiedRequestsGoToTheFallback(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "direct") })
	var proxied atomic.Int64
	proxy, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, "via proxy to "+r.URL.String())
	})
	proxyURL, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	choose := func(r *http.Request) (*url.URL, error) {
		if r.URL.Path == "/proxied" {
			return proxyURL, nil
		}
		return nil, nil
	}
	fb := &http.Transport{Proxy: choose}
	t.Cleanup(fb.CloseIdleConnections)
	tr := newTransport(t, h1client.Options{Fallback: fb, Proxy: choose})

	if _, body := get(t, tr, "GET", srv.URL+"/proxied", nil); body != "via proxy to "+srv.URL+"/proxied" {
		t.Errorf("proxied: %q", body)
	}
	if _, body := get(t, tr, "GET", srv.URL+"/direct", nil); body != "direct" {
		t.Errorf("direct: %q", body)
	}
	if p, f, r := proxied.Load(), tr.Stats().Fallbacks.Load(), tr.Stats().Requests.Load(); p != 1 || f != 1 || r != 1 {
		t.Errorf("proxy saw %d, fallbacks %d, carried %d; want 1, 1 and 1", p, f, r)
	}
}

// TestPoolBounds: no more idle connections per upstream than
// MaxIdlePerHost, and none kept past IdleTimeout.
func TestPoolBounds(t *testing.T) {
	hold := make(chan struct{})
	var arrived sync.WaitGroup
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			arrived.Done()
			<-hold
		}
	})
	tr := newTransport(t, h1client.Options{MaxIdlePerHost: 2, IdleTimeout: 200 * time.Millisecond})
	var wg sync.WaitGroup
	arrived.Add(5)
	for range 5 {
		wg.Go(func() { get(t, tr, "GET", srv.URL+"/hold", nil) })
	}
	arrived.Wait()
	close(hold)
	wg.Wait()
	if n := tr.Idle(); n != 2 {
		t.Errorf("%d idle connections after 5 at once, want MaxIdlePerHost 2", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for tr.Idle() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := tr.Idle(); n != 0 {
		t.Errorf("%d idle connections 5 s after IdleTimeout 200ms", n)
	}
}

// TestDialFailure: a refused connection is the dial error net/http gives,
// which the proxy retries on another instance.
func TestDialFailure(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	tr := newTransport(t, h1client.Options{})
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("x"))
	_, err := tr.RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Errorf("error %v, want a *net.OpError dialing", err)
	}
}

// TestContextWatchedLazily: an exchange's context is watched by the
// connection's deadline for its first few milliseconds and by
// context.AfterFunc after that. Neither may fail an exchange whose context
// is live, however slow the upstream, or leave a deadline on a connection
// that goes back to the pool; and a context that ends early ends the
// exchange early.
func TestContextWatchedLazily(t *testing.T) {
	release := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-head":
			time.Sleep(40 * time.Millisecond)
		case "/slow-body":
			_, _ = io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		case "/hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "done")
	})
	defer close(release)
	tr := newTransport(t, h1client.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exchange := func(path string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s: reading the body: %v", path, err)
		}
		_ = resp.Body.Close()
		return string(b)
	}
	for _, path := range []string{"/fast", "/slow-head", "/fast", "/slow-body", "/fast"} {
		if got := exchange(path); !strings.HasSuffix(got, "done") {
			t.Fatalf("%s answered %q", path, got)
		}
		// Idle past the deadline an exchange began with: the connection
		// must still be taken from the pool.
		time.Sleep(20 * time.Millisecond)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for five exchanges in a row, want 1", n)
	}

	// A context that ends within the first milliseconds, and one that ends
	// later: each ends its exchange, and its connection is not pooled.
	for _, after := range []time.Duration{time.Millisecond, 60 * time.Millisecond} {
		hctx, hcancel := context.WithCancel(context.Background())
		time.AfterFunc(after, hcancel)
		req, _ := http.NewRequestWithContext(hctx, "GET", srv.URL+"/hang", nil)
		start := time.Now()
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled after %v: %v, want context.Canceled", after, err)
		}
		if d := time.Since(start); d > after+2*time.Second {
			t.Fatalf("canceled after %v, the exchange ended after %v", after, d)
		}
	}
	if n := tr.Idle(); n != 0 {
		t.Errorf("%d idle connections, want 0 (a canceled exchange's connection is closed)", n)
	}
}
