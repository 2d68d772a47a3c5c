// Package h1client is an HTTP/1.1 client transport for plain-HTTP
// servers: an http.RoundTripper that writes each request and reads its
// answer on the calling goroutine, over keep-alive connections pooled per
// server. The SDK calls plain-HTTP endpoints with it, and the gateway
// its upstreams.
//
// net/http's Transport gives every connection two goroutines of its own,
// one writing and one reading, and hands each request and answer between
// them and the caller over channels: three goroutines take turns for every
// request. Profiled under load, that hand-off cost the gateway about as
// much CPU as the upstream's write and read system calls. Here the
// caller's goroutine does the whole exchange; parsing the answer is still
// net/http's (http.ReadResponse), so framing (Content-Length, chunked,
// close-delimited, HEAD, 204 and 304) is decided exactly as net/http
// decides it.
//
// What this transport does not do, it hands to a fallback transport
// (net/http's) unchanged: HTTPS, requests sent through a proxy, protocol
// upgrades (WebSocket), requests with Expect or trailers, and request
// bodies of unknown length or larger than Options.MaxBody. The bodies it
// does send are read whole before the request is written, so that a
// request is one write and can be replayed on a fresh connection.
package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Options configures a Transport. Zero values take the defaults named.
type Options struct {
	// Fallback carries the requests this transport does not; required.
	// Its TLS settings are the ones HTTPS upstreams are verified with.
	Fallback http.RoundTripper
	// Proxy, when set, names the proxy a request goes through, as
	// http.Transport's Proxy does (http.ProxyFromEnvironment); a request
	// it names one for goes to Fallback, which should use the same.
	Proxy func(*http.Request) (*url.URL, error)
	// MaxIdlePerHost bounds the idle connections kept per upstream
	// address: 256.
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle this long: 90 s.
	IdleTimeout time.Duration
	// DialTimeout bounds connecting: 5 s. KeepAlive is the TCP
	// keep-alive period of new connections: 30 s.
	DialTimeout time.Duration
	KeepAlive   time.Duration
	// MaxBody is the largest request body this transport sends itself:
	// 64 KiB. A larger body, or one of unknown length, goes to Fallback.
	MaxBody int64
	// MaxHeaderBytes bounds what is read of an answer's head, its 1xx
	// heads included: 1 MiB.
	MaxHeaderBytes int64
}

// Transport is an HTTP/1.1 client transport for plain-HTTP upstreams.
// It is safe for concurrent use.
type Transport struct {
	opt    Options
	dialer net.Dialer

	mu      sync.Mutex
	idle    map[string][]*conn // upstream address → idle connections, oldest first
	nidle   int
	sweeper *time.Timer // armed while any connection is idle

	stats Stats
}

// Stats counts what a Transport did, for metrics.
type Stats struct {
	Requests  atomic.Uint64 // requests this transport carried
	Fallbacks atomic.Uint64 // requests handed to the fallback
	Dials     atomic.Uint64 // connections opened
	Reused    atomic.Uint64 // requests sent on a pooled connection
	Stale     atomic.Uint64 // pooled connections found closed by the upstream
}

// New returns a Transport; it panics without a fallback.
func New(opt Options) *Transport {
	if opt.Fallback == nil {
		panic("h1client: Options.Fallback is required")
	}
	if opt.MaxIdlePerHost <= 0 {
		opt.MaxIdlePerHost = 256
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 90 * time.Second
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 5 * time.Second
	}
	if opt.KeepAlive <= 0 {
		opt.KeepAlive = 30 * time.Second
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 64 << 10
	}
	if opt.MaxHeaderBytes <= 0 {
		opt.MaxHeaderBytes = 1 << 20
	}
	return &Transport{opt: opt, dialer: net.Dialer{Timeout: opt.DialTimeout, KeepAlive: opt.KeepAlive},
		idle: map[string][]*conn{}}
}

// Stats returns the transport's counters.
func (t *Transport) Stats() *Stats { return &t.stats }

// Idle reports how many connections are idle in the pools.
func (t *Transport) Idle() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nidle
}

// RoundTrip sends req and returns its answer; see the package comment for
// which requests go to the fallback instead.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.carries(req) {
		t.stats.Fallbacks.Add(1)
		return t.opt.Fallback.RoundTrip(req)
	}
	t.stats.Requests.Add(1)
	payload, err := readBody(req)
	if err != nil {
		return nil, err
	}
	ctx := req.Context()
	replayable := replayable(req)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := t.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, req, payload)
		if err == nil {
			return resp, nil
		}
		// A pooled connection the upstream closed after it was checked
		// answers nothing: a replayable request goes again on another.
		// Any other may have been acted on and is the caller's to retry.
		if errors.Is(err, errStale) && replayable && ctx.Err() == nil {
			t.stats.Stale.Add(1)
			continue
		}
		return nil, err
	}
}

// carries reports whether this transport sends req itself.
func (t *Transport) carries(req *http.Request) bool {
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" || req.Method == http.MethodConnect {
		return false
	}
	if len(req.Header["Upgrade"]) > 0 || len(req.Header["Expect"]) > 0 || len(req.Trailer) > 0 || len(req.TransferEncoding) > 0 {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && (req.ContentLength <= 0 || req.ContentLength > t.opt.MaxBody) {
		return false // unknown length (net/http sends it chunked), or large
	}
	if t.opt.Proxy != nil {
		if p, err := t.opt.Proxy(req); p != nil || err != nil {
			return false // the fallback proxies it, or fails as it would
		}
	}
	return true
}

// replayable: net/http's rule for resending a request whose connection
// failed: a method without a body effect, or a request the client marked
// safe to repeat.
func replayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return len(req.Header["Idempotency-Key"]) > 0 || len(req.Header["X-Idempotency-Key"]) > 0
}

// readBody reads req's body whole (carries bounded its length) and closes
// it, as a RoundTripper must.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b := make([]byte, req.ContentLength)
	if n, err := io.ReadFull(req.Body, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("http: ContentLength=%d with Body length %d", req.ContentLength, n)
		}
		return nil, err
	}
	var one [1]byte
	if n, _ := req.Body.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("http: ContentLength=%d with a longer Body", req.ContentLength)
	}
	return b, nil
}

// get returns an idle connection to addr, the newest, or a new one. A
// pooled connection is first checked to be open with nothing unasked
// waiting on it (a 408 an upstream sent before closing): net/http's
// transport learns the same from the goroutine it keeps reading each
// idle connection.
func (t *Transport) get(ctx context.Context, addr string) (*conn, error) {
	for {
		c := t.takeIdle(addr)
		if c == nil {
			break
		}
		if c.alive() {
			t.stats.Reused.Add(1)
			return c, nil
		}
		t.stats.Stale.Add(1)
		c.close()
	}
	nc, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.stats.Dials.Add(1)
	c := &conn{t: t, addr: addr, nc: nc}
	c.watch.nc = nc
	c.lr = limitedReader{r: watchedConn{c}}
	c.br = bufio.NewReaderSize(&c.lr, 4<<10)
	c.bw = bufio.NewWriterSize(watchedConn{c}, 4<<10)
	return c, nil
}

func (t *Transport) takeIdle(addr string) *conn {
	now := time.Now()
	var expired []*conn
	t.mu.Lock()
	list := t.idle[addr]
	var c *conn
	for len(list) > 0 {
		c, list = list[len(list)-1], list[:len(list)-1]
		t.nidle--
		if now.Sub(c.idleSince) < t.opt.IdleTimeout {
			break
		}
		expired, c = append(expired, c), nil
	}
	t.idle[addr] = list
	t.mu.Unlock()
	for _, e := range expired {
		e.close()
	}
	if c != nil {
		c.reused = true
	}
	return c
}

// put returns c to its pool, or closes it when the pool is full.
func (t *Transport) put(c *conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	list := t.idle[c.addr]
	if len(list) >= t.opt.MaxIdlePerHost {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle[c.addr] = append(list, c)
	t.nidle++
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.opt.IdleTimeout/2, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes the connections idle past IdleTimeout, and runs again
// while any remain idle.
func (t *Transport) sweep() {
	cutoff := time.Now().Add(-t.opt.IdleTimeout)
	var expired []*conn
	t.mu.Lock()
	for addr, list := range t.idle {
		n := 0
		for n < len(list) && list[n].idleSince.Before(cutoff) {
			n++
		}
		expired = append(expired, list[:n]...)
		t.nidle -= n
		if n == len(list) {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = append(list[:0:0], list[n:]...)
		}
	}
	if t.nidle > 0 {
		t.sweeper.Reset(t.opt.IdleTimeout / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		c.close()
	}
}

// CloseIdleConnections closes every idle connection, this transport's and
// the fallback's.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.nidle = map[string][]*conn{}, 0
	if t.sweeper != nil {
		t.sweeper.Stop()
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.close()
		}
	}
	if f, ok := t.opt.Fallback.(interface{ CloseIdleConnections() }); ok {
		f.CloseIdleConnections()
	}
}

// errStale marks a pooled connection that failed before any byte of an
// answer came: the upstream had closed it while it was idle.
var errStale = errors.New("the upstream closed the pooled connection")

// aLongTimeAgo is a deadline that has passed: setting it unblocks a
// connection's reads and writes at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one keep-alive connection to an upstream.
type conn struct {
	t         *Transport
	addr      string
	nc        net.Conn
	lr        limitedReader
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	reused    bool  // taken from the pool, not dialed for this request
	probe     probe // alive's peek, set up on its first use
	watch     watch // the exchange's context
}

func (c *conn) close() { _ = c.nc.Close() }

// roundTrip sends req on c and reads its answer's head. On success the
// answer's body owns c: reading it to the end returns c to the pool.
// On failure c is closed.
func (c *conn) roundTrip(ctx context.Context, req *http.Request, payload []byte) (*http.Response, error) {
	// The request's context ends the exchange by failing the
	// connection's reads and writes, until the body is done with.
	c.watch.arm(ctx)
	c.lr.read = 0
	fail := func(err error) (*http.Response, error) {
		c.watch.stop()
		c.close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
	if err := c.writeRequest(req, payload); err != nil {
		if c.reused {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		return fail(err)
	}
	c.lr.n = c.t.opt.MaxHeaderBytes
	if _, err := c.br.Peek(1); err != nil {
		if c.reused && c.lr.read == 0 {
			err = fmt.Errorf("%w: %w", errStale, err)
		}
		return fail(err)
	}
	var resp *http.Response
	for informational := 0; ; informational++ {
		var err error
		if resp = readCommonHead(c.br, req); resp == nil {
			resp, err = http.ReadResponse(c.br, req)
		}
		if err != nil {
			if c.lr.n <= 0 {
				err = fmt.Errorf("the upstream's answer has a head over %d bytes", c.t.opt.MaxHeaderBytes)
			}
			return fail(err)
		}
		// Only 1xx is interim; a code below 100, which ReadResponse
		// accepts, is the answer, as net/http's transport takes it.
		code := resp.StatusCode
		if code < 100 || code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			return fail(errors.New("the upstream switched protocols for a request that asked no upgrade"))
		}
		if informational == 5 {
			return fail(errors.New("the upstream sent too many 1xx informational answers"))
		}
		// 103 Early Hints and the like, passed on as net/http's
		// transport passes them (httputil.ReverseProxy forwards them).
		if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(code, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(err)
			}
		}
	}
	c.lr.n = -1 // the body is not bounded here: the proxy streams it
	b := &body{c: c, ctx: ctx, rc: resp.Body,
		keep: !resp.Close && !req.Close && (resp.ContentLength >= 0 || chunked(resp) || resp.Body == http.NoBody)}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, nil
	}
	resp.Body = b
	return resp, nil
}

func chunked(resp *http.Response) bool {
	return len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
}

// excludedHeaders are written by writeRequest itself, as net/http does.
var excludedHeaders = map[string]bool{"Host": true, "User-Agent": true, "Content-Length": true,
	"Transfer-Encoding": true, "Trailer": true}

const defaultUserAgent = "Go-http-client/1.1"

// writeRequest writes req's head and body as net/http's Request.Write
// would for a request of known length, and flushes them in one write.
func (c *conn) writeRequest(req *http.Request, payload []byte) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return errors.New("http: invalid Host header")
	}
	for k, vs := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("net/http: invalid header field name %q", k)
		}
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("net/http: invalid header field value for %q", k)
			}
		}
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	w := c.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	ua := defaultUserAgent
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		w.WriteString("User-Agent: ")
		w.WriteString(ua)
		w.WriteString("\r\n")
	}
	// net/http's rule: a length for any body, and 0 for a POST, PUT or
	// PATCH without one ("many servers expect" it).
	if len(payload) > 0 || method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(payload)))
		w.WriteString("\r\n")
	}
	if req.Close && len(req.Header["Connection"]) == 0 {
		w.WriteString("Connection: close\r\n")
	}
	if err := req.Header.WriteSubset(w, excludedHeaders); err != nil {
		return err
	}
	w.WriteString("\r\n")
	w.Write(payload)
	return w.Flush()
}

// body is an answer's body; done with, it returns its connection to the
// pool when the answer was read to its end and the connection can carry
// another, and closes it otherwise.
type body struct {
	c    *conn
	ctx  context.Context
	rc   io.ReadCloser
	keep bool
	done atomic.Bool
	eof  bool // read to the end; only the reading goroutine touches it
}

var errBodyClosed = errors.New("http: read on closed response body")

func (b *body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.done.Load() {
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
		b.finish(true)
	case err != nil:
		b.finish(false)
		if ctxErr := b.ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
	}
	return n, err
}

func (b *body) Close() error {
	b.finish(false)
	return nil
}

// finish ends the exchange once: the connection goes back to the pool
// when the body was read to its end, nothing more is buffered, and the
// request's context did not fire on it; otherwise it is closed.
func (b *body) finish(eof bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	c := b.c
	if c.watch.stop() && eof && b.keep && c.br.Buffered() == 0 {
		c.reused = false
		c.t.put(c)
		return
	}
	c.close()
}

// limitedReader reads the connection, failing once n bytes were read
// while n is positive (the answer's head); n < 0 is no limit. read counts
// the bytes read since the head began.
type limitedReader struct {
	r    io.Reader
	n    int64
	read int64
}

var errHeadTooLarge = errors.New("the upstream's answer head is too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, errHeadTooLarge
	}
	if l.n > 0 && int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.n > 0 {
		l.n -= int64(n)
	}
	return n, err
}
