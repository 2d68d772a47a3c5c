// Package h1server serves plain HTTP/1.1 keep-alive requests with less
// work per request than net/http's server, and hands every connection
// whose next request it does not take to net/http.
//
// Over TLS (the *tls.Conn tls.NewListener accepts), it completes the
// handshake first, as net/http does, and its requests carry the
// connection's state in Request.TLS; so do the ones net/http serves after
// a handoff, which it reads from the handed-off connection's
// ConnectionState as from a *tls.Conn's.
//
// What it saves, per request: the background read net/http starts on the
// connection while the handler runs (a goroutine, a read system call that
// finds nothing, and the wake-up that stops it), textproto's allocations
// (one string holds the whole head here), and the header map's clone.
// What it keeps: the handler sees the *http.Request net/http would have
// built, and the answer's bytes are the ones net/http writes (the same
// rules for Content-Length, chunking, sniffing, HEAD, 1xx, trailers, the
// unread body and Connection: close). The differential test and fuzz
// target hold it to both, byte for byte.
//
// A client that goes away is noticed as net/http notices it, by a read
// that ends the request's context, but only once the request has lasted
// a second (a stream, a blocking query); a write that fails ends it too.
//
// Three things differ, all by design. The request's context holds
// http.ServerContextKey only if BaseContext or ConnContext puts it there
// (web.Serve does). And http.MaxBytesReader cannot tell this server that
// its limit was hit (it calls a method only net/http's writer has): the
// connection is not closed for that alone. The unread rest of the body is
// read away before the next request, as for any body a handler leaves,
// or, over 256 KiB, the connection is closed after the answer. And a
// plain HTTP request sent to a TLS listener gets no 400 (see handshake).
package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 connections, handing to Fallback each
// connection whose next request it does not take (see parseHead), and
// counts what it did (Stats).
type Server struct {
	Handler http.Handler
	// Fallback serves a connection from its next request on, which the
	// connection's Read returns first (net/http's server, through a
	// listener); it must not block for long.
	Fallback func(net.Conn)
	// ReadHeaderTimeout bounds how long a request's head may take to
	// arrive, IdleTimeout how long a connection may wait for its next
	// request; 0 means 10s and 2m.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// BaseContext is every connection's context, made per connection
	// into ConnContext's when that is set; nil means Background.
	BaseContext context.Context
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	Logger      *slog.Logger

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	closed    bool
	stop      chan struct{} // made with the first connection, which starts the sweep; closed by Shutdown and Close
	shutting  atomic.Bool
	stats     Stats
}

// Serve accepts connections on ln and serves each until Shutdown or
// Close, then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(nil, ln) {
		return http.ErrServerClosed
	}
	defer s.untrackListener(ln)
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go s.ServeConn(c)
	}
}

// ServeConn serves c until it closes, is handed to Fallback, or is
// hijacked by a handler.
func (s *Server) ServeConn(c net.Conn) {
	s.stats.Connections.Add(1)
	sc := newConn(s, c)
	if !s.track(sc, nil) {
		_ = c.Close()
		return
	}
	sc.serve()
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish the request they serve (each then closes) until ctx
// ends. Connections already handed to Fallback are Fallback's to drain.
func (s *Server) Shutdown(ctx context.Context) error {
	s.close()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	return nil
}

func (s *Server) close() {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		if s.stop != nil {
			close(s.stop)
		}
	}
	for ln := range s.listeners {
		_ = ln.Close()
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			_ = c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// track adds a connection or a listener; false once the server closed.
func (s *Server) track(c *conn, ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns, s.listeners = map[*conn]struct{}{}, map[net.Listener]struct{}{}
	}
	if ln != nil {
		s.listeners[ln] = struct{}{}
	}
	if c != nil {
		s.conns[c] = struct{}{}
		if s.stop == nil {
			s.stop = make(chan struct{})
			go s.sweep(s.stop)
		}
	}
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) untrackListener(ln net.Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.listeners, ln)
}

// watchAfter is how long a request runs before its connection is read
// in the background to notice the client leaving: ordinary requests end
// sooner, and pay nothing for it.
const watchAfter = time.Second

// sweep starts the background read of each request that has lasted
// watchAfter, every half of it, until stop closes.
func (s *Server) sweep(stop <-chan struct{}) {
	tick := time.NewTicker(watchAfter / 2)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			s.mu.Lock()
			for c := range s.conns {
				if started := c.started.Load(); started != 0 && now.UnixNano()-started >= int64(watchAfter) {
					c.watch()
				}
			}
			s.mu.Unlock()
		}
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// A connection's state, for Shutdown: idle connections are closed, the
// others finish their request first.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// A request's progress, for the background read: it may start only once
// the handler runs and the body is read (nothing else reads the
// connection then), and must be stopped before the connection is read
// again.
const (
	readNone     int32 = iota // no request in the handler
	readBody                  // the handler runs; its body may be read
	readDone                  // the handler runs; the body is read
	readWatching              // the background read runs
)

// conn is one client connection.
type conn struct {
	srv    *Server
	nc     net.Conn
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	ew     errWriter
	ctx    context.Context
	remote string
	tls    *tls.ConnectionState // after the handshake, shared by the requests as net/http's is; nil without TLS

	state   atomic.Int32
	reading atomic.Int32
	started atomic.Int64 // when the request in the handler started (unix ns); 0: none
	// cancel ends the context of the request in the handler; the
	// background read and a failed write call it. It is set before the
	// handler runs and cleared after the background read stopped.
	cancel  context.CancelFunc
	watched chan struct{} // closed when the background read ends
	gone    atomic.Bool   // the background read saw the client leave

	// Reused by each request's answer.
	out       *bufio.Writer // the answer's body before chunking, 2 KiB as net/http's; pooled
	head      []byte        // the answer's header lines, serialized at WriteHeader
	keys      []string      // sorting the header's keys
	statusBuf [3]byte
	lengthBuf [20]byte
}

func newConn(s *Server, c net.Conn) *conn {
	sc := &conn{srv: s, nc: c, remote: c.RemoteAddr().String()}
	sc.cr.c = sc
	sc.ew.c = sc
	sc.br = bufio.NewReaderSize(&sc.cr, readBufferSize)
	sc.bw = bufio.NewWriterSize(&sc.ew, writeBufferSize)
	ctx := s.BaseContext
	if ctx == nil {
		ctx = context.Background()
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, c)
	}
	sc.ctx = ctx
	return sc
}

// As net/http's: a 4 KiB read buffer, which bounds the heads taken, and a
// 4 KiB write buffer.
const (
	readBufferSize  = 4 << 10
	writeBufferSize = 4 << 10
)

func (c *conn) serve() {
	defer c.srv.untrack(c)
	if !c.handshake() {
		return
	}
	lastMethod := ""
	for served := 0; ; served++ {
		// As net/http: the first request has ReadHeaderTimeout to come;
		// each next one IdleTimeout for its first 4 bytes (fewer and
		// then the end closes the connection without an answer), and
		// then ReadHeaderTimeout for the rest of its head.
		switch {
		case served == 0:
			_ = c.nc.SetReadDeadline(time.Now().Add(orDefault(c.srv.ReadHeaderTimeout, 10*time.Second)))
			if _, err := c.br.Peek(1); err != nil {
				c.close()
				return
			}
		case c.br.Buffered() < 4:
			if !c.state.CompareAndSwap(stateActive, stateIdle) {
				c.close()
				return
			}
			_ = c.nc.SetReadDeadline(time.Now().Add(orDefault(c.srv.IdleTimeout, 2*time.Minute)))
			if _, err := c.br.Peek(4); err != nil {
				c.close()
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) && c.state.Load() != stateActive {
			c.close()
			return
		}
		if lastMethod == http.MethodPost {
			// As net/http (RFC 9112 §2.2's tolerance of old clients):
			// CRs and LFs after a POST's body are skipped.
			b, _ := c.br.Peek(4)
			n := 0
			for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
				n++
			}
			_, _ = c.br.Discard(n)
		}
		p, refused, ok, err := c.readHead(served == 0)
		if err != nil {
			c.close()
			return
		}
		if !ok {
			c.srv.stats.Handoffs[refused].Add(1)
			c.handOff()
			return
		}
		c.srv.stats.Requests.Add(1)
		_ = c.nc.SetReadDeadline(time.Time{})
		lastMethod = p.method
		if !c.serveRequest(p) {
			return
		}
		if c.srv.shutting.Load() {
			c.close()
			return
		}
	}
}

// handshake completes a TLS connection's handshake before its first
// request and keeps its state, and reports whether the connection can
// serve. As net/http (conn.serve): the handshake's reads and writes have
// ReadHeaderTimeout, a failure is logged with net/http's words, and the
// connection closed. Unlike net/http, a client that closed between two
// records (before its first, as TCP health checks do every few seconds)
// is logged at debug level, not as a warning; and a plain HTTP request
// is not answered 400 under the TLS layer, only closed: what clients of
// web.ServeTLS got before this server read TLS listeners, when net/http
// read them through a wrapper and never did the handshake itself.
func (c *conn) handshake() bool {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		// As net/http: a connection that is not a *tls.Conn but has
		// ConnectionState gives its requests that state.
		if cs, ok := c.nc.(connectionStater); ok {
			st := cs.ConnectionState()
			c.tls = &st
		}
		return true
	}
	deadline := time.Now().Add(orDefault(c.srv.ReadHeaderTimeout, 10*time.Second))
	_ = c.nc.SetReadDeadline(deadline)
	_ = c.nc.SetWriteDeadline(deadline)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		level := slog.LevelWarn
		if errors.Is(err, io.EOF) {
			level = slog.LevelDebug
		}
		c.srv.logger().Log(c.ctx, level, fmt.Sprintf("http: TLS handshake error from %s: %v", c.remote, err))
		c.close()
		return false
	}
	// The read deadline is the first request's, set next.
	_ = c.nc.SetWriteDeadline(time.Time{})
	st := tc.ConnectionState()
	c.tls = &st
	return true
}

// connectionStater is what net/http reads Request.TLS from on a
// connection that is not a *tls.Conn.
type connectionStater interface {
	ConnectionState() tls.ConnectionState
}

// readHead reads the next request's head: the parsed head when the
// server takes the request, ok false and why not when it goes to
// net/http.
func (c *conn) readHead(first bool) (p parsed, refused Reason, ok bool, err error) {
	from, deadline := 0, first // the first request's deadline is set
	for {
		b, _ := c.br.Peek(c.br.Buffered())
		if !startsLikeRequest(b) {
			return p, ReasonMethod, false, nil
		}
		switch end := headEnd(b, from); {
		case end < 0:
			return p, ReasonMalformed, false, nil
		case end > 0:
			if p, refused, ok = parseHead(string(b[:end])); ok {
				_, _ = c.br.Discard(end)
			}
			return p, refused, ok, nil
		}
		if len(b) == readBufferSize {
			return p, ReasonTooLarge, false, nil
		}
		from = lineStart(b)
		if !deadline {
			deadline = true
			_ = c.nc.SetReadDeadline(time.Now().Add(orDefault(c.srv.ReadHeaderTimeout, 10*time.Second)))
		}
		if _, err := c.br.Peek(len(b) + 1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return p, 0, false, err // net/http closes such a connection too
			}
			// A partial head and then an end or an error: net/http
			// answers it as it would have.
			return p, ReasonIncomplete, false, nil
		}
	}
}

// handOff gives the connection, its unread bytes first, to Fallback.
func (c *conn) handOff() {
	c.srv.untrack(c)
	_ = c.nc.SetReadDeadline(time.Time{})
	b, _ := c.br.Peek(c.br.Buffered())
	unread := string(b)
	if c.cr.hasByte {
		// The background read's byte comes after the buffered ones.
		unread, c.cr.hasByte = unread+string(c.cr.byteBuf[:]), false
	}
	if c.srv.Fallback == nil {
		_ = c.nc.Close()
		return
	}
	rc := &replayConn{Conn: c.nc, unread: unread}
	switch nc := c.nc.(type) {
	case connectionStater:
		// A *tls.Conn: net/http sets Request.TLS from the state.
		c.srv.Fallback(replayTLSConn{rc, nc})
	case io.ReaderFrom:
		// net/http sends large answers with the socket's ReadFrom
		// (sendfile, splice) when the connection has one, and writes
		// their heads differently when it does not.
		c.srv.Fallback(replayReaderFrom{rc, nc})
	default:
		c.srv.Fallback(rc)
	}
}

// close flushes what is buffered and closes the connection.
func (c *conn) close() {
	c.state.Store(stateClosed)
	_ = c.bw.Flush()
	_ = c.nc.Close()
}

// closeWriteAndWait half-closes the connection and waits a little before
// closing it, as net/http does when it did not read a request's whole
// body: the client then reads the answer instead of a reset.
func (c *conn) closeWriteAndWait() {
	_ = c.bw.Flush()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	time.Sleep(rstAvoidanceDelay)
	c.close()
}

// rstAvoidanceDelay is net/http's.
const rstAvoidanceDelay = 500 * time.Millisecond

// watch starts the background read of the request in the handler, if
// its body is read and none runs yet.
func (c *conn) watch() {
	// Only the sweep starts a watch, so watched is not replaced while
	// one runs; it is set before the swap, which orders it before
	// stopWatching's read of it.
	if c.reading.Load() != readDone {
		return
	}
	c.watched = make(chan struct{})
	if c.reading.CompareAndSwap(readDone, readWatching) {
		go c.cr.backgroundRead()
	}
}

// stopWatching ends the background read, if one runs, and waits for it.
func (c *conn) stopWatching() {
	if c.reading.Swap(readNone) != readWatching {
		return
	}
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watched
	_ = c.nc.SetReadDeadline(time.Time{})
}

var aLongTimeAgo = time.Unix(1, 0)

// connReader is what the connection's bufio.Reader reads: the socket,
// after a byte the background read took.
type connReader struct {
	c       *conn
	hasByte bool
	byteBuf [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte && len(p) > 0 {
		p[0], r.hasByte = r.byteBuf[0], false
		return 1, nil
	}
	return r.c.nc.Read(p)
}

// backgroundRead reads one byte while the handler runs: a byte is the
// next request's (pipelined), kept for the reader; an end or an error
// means the client is gone, and ends the request's context. The read
// ended by stopWatching's deadline is neither.
func (r *connReader) backgroundRead() {
	c := r.c
	defer close(c.watched)
	n, err := c.nc.Read(r.byteBuf[:])
	if n == 1 {
		r.hasByte = true
		return
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	c.gone.Store(true)
	if c.cancel != nil {
		c.cancel()
	}
}

// errWriter writes to the socket and, on the first failure, ends the
// request's context, as net/http does: the client is gone.
type errWriter struct {
	c   *conn
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.c.nc.Write(p)
	if err != nil && w.err == nil {
		w.err = err
		if w.c.cancel != nil {
			w.c.cancel()
		}
	}
	return n, err
}

// replayConn is a handed-off connection: its unread bytes, then the
// socket's.
type replayConn struct {
	net.Conn
	unread string
}

func (c *replayConn) Read(p []byte) (int, error) {
	if c.unread != "" {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the socket, which net/http does before closing
// a connection whose request body it left unread: the client then reads
// the answer instead of a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil // then net/http only waits before closing, as without the method
}

// replayReaderFrom is a replayConn whose socket has ReadFrom.
type replayReaderFrom struct {
	*replayConn
	rf io.ReaderFrom
}

func (c replayReaderFrom) ReadFrom(r io.Reader) (int64, error) { return c.rf.ReadFrom(r) }

// replayTLSConn is a replayConn over TLS. Its ConnectionState is the
// socket's, which net/http gives the requests it serves on it as it gives
// a *tls.Conn's, and wrappers look for (web's framedConn hides it).
type replayTLSConn struct {
	*replayConn
	cs connectionStater
}

func (c replayTLSConn) ConnectionState() tls.ConnectionState { return c.cs.ConnectionState() }

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
