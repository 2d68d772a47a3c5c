package h1server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// serveRequest serves one taken request and reports whether the
// connection can serve another.
func (c *conn) serveRequest(p parsed) (keep bool) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.cancel = cancel
	r := (&http.Request{
		Method:        p.method,
		URL:           p.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        p.header,
		Body:          http.NoBody,
		ContentLength: p.contentLength,
		Close:         p.close,
		Host:          p.host,
		RemoteAddr:    c.remote,
		RequestURI:    p.target,
		TLS:           c.tls,
	}).WithContext(ctx)
	w := &response{c: c, req: r, contentLength: -1, wantsClose: p.close}
	if p.contentLength > 0 {
		w.body = &body{c: c, remaining: p.contentLength}
		r.Body = w.body
		c.reading.Store(readBody)
	} else {
		c.reading.Store(readDone)
	}
	c.out = outPool.Get().(*bufio.Writer)
	c.out.Reset(chunkWriter{w})
	c.started.Store(time.Now().UnixNano())
	defer func() {
		c.started.Store(0)
		c.stopWatching()
		c.cancel = nil
		cancel()
		if err := recover(); err != nil {
			keep = false
			if err != http.ErrAbortHandler {
				c.srv.logger().Error("a handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(err), "stack", string(debug.Stack()))
			}
			if !w.hijacked {
				c.close()
			}
		}
	}()
	c.srv.Handler.ServeHTTP(w, r)
	if w.hijacked {
		c.putOut()
		return false
	}
	w.finish()
	c.putOut()
	c.started.Store(0)
	c.stopWatching()
	switch {
	case w.shouldReuse() && !c.gone.Load() && !c.srv.shutting.Load():
		return true
	case w.requestTooLarge || w.body != nil && w.body.earlyClose:
		c.closeWriteAndWait()
	default:
		c.close()
	}
	return false
}

// outPool holds the 2 KiB buffers answers' bodies pass through, as
// net/http pools its own: an idle connection holds none.
var outPool = sync.Pool{New: func() any { return bufio.NewWriterSize(io.Discard, 2<<10) }}

func (c *conn) putOut() {
	c.out.Reset(io.Discard)
	outPool.Put(c.out)
	c.out = nil
}

// body is a taken request's body: Content-Length bytes off the
// connection. Another goroutine may read or close it (a transport
// sending it upstream), so it locks.
type body struct {
	c          *conn
	mu         sync.Mutex
	remaining  int64
	sawEOF     bool
	closed     bool
	earlyClose bool // closed with more unread than is worth reading
	err        error
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

func (b *body) readLocked(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.c.br.Read(p)
	b.remaining -= int64(n)
	switch {
	case err == io.EOF:
		// The client ended the body early: as net/http's body, it
		// reads as ended from now on, the early end reported once.
		b.done()
		return n, io.ErrUnexpectedEOF
	case err != nil:
		b.err = err
	case b.remaining == 0:
		// The end comes with the last bytes, as net/http's body does.
		b.done()
		return n, io.EOF
	}
	return n, err
}

// done marks the body read: the connection may be read in the
// background from now on.
func (b *body) done() {
	if !b.sawEOF {
		b.sawEOF = true
		b.c.reading.CompareAndSwap(readBody, readDone)
	}
}

// Close reads what is left, up to maxPostHandlerReadBytes, so that the
// connection can serve the next request; a larger rest is left, and the
// connection closed after the answer. So net/http's body does.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	var err error
	switch {
	case b.sawEOF:
	case b.remaining > maxPostHandlerReadBytes:
		b.earlyClose = true
	default:
		var n int64
		n, err = io.CopyN(io.Discard, bodyLocked{b}, maxPostHandlerReadBytes)
		if err == io.EOF {
			err = nil
		}
		if n == maxPostHandlerReadBytes {
			b.earlyClose = true
		}
	}
	b.closed = true
	b.c.reading.CompareAndSwap(readBody, readDone)
	return err
}

// bodyLocked reads a body whose lock its caller holds.
type bodyLocked struct{ b *body }

func (bl bodyLocked) Read(p []byte) (int, error) { return bl.b.readLocked(p) }

// maxPostHandlerReadBytes is net/http's: how much of an unread body the
// server reads to keep the connection.
const maxPostHandlerReadBytes = 256 << 10

// response is the http.ResponseWriter of a taken request. Its rules are
// net/http's (server.go: response, chunkWriter): the handler's body goes
// through a 2 KiB buffer; the head is written with the first 2 KiB, the
// first flush or the handler's end, and if the handler ended by then the
// answer gets a Content-Length, else it is chunked.
type response struct {
	c   *conn
	req *http.Request

	handlerHeader http.Header
	status        int
	wroteHeader   bool // the handler chose the status
	headWritten   bool // the status line and header lines were written
	handlerDone   bool
	hijacked      bool
	contentLength int64 // declared by the handler, or set for a finished small body; -1: none
	written       int64
	chunking      bool

	fullDuplex      bool
	wantsClose      bool // the request said Connection: close
	closeAfterReply bool
	requestTooLarge bool

	// From the header at WriteHeader: what the head's decisions need.
	haveType, hasCE, haveDate bool
	haveLength                bool   // a Content-Length line, valid or not
	te                        string // the handler's Transfer-Encoding; "" when none
	connection                string // the handler's Connection, as written
	connSpan                  [2]int // where its lines are in c.head
	trailerKeys               []string
	hasTrailers               bool

	body *body
}

func (w *response) Header() http.Header {
	if w.handlerHeader == nil {
		w.handlerHeader = make(http.Header)
	}
	return w.handlerHeader
}

func (w *response) WriteHeader(code int) {
	if w.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		// An informational answer goes out at once, with the header as
		// it is now (RFC 8297: the map is not cleared).
		bw := w.c.bw
		w.writeStatusLine(code)
		w.c.head = appendHeader(w.c.head[:0], w.handlerHeader, &w.c.keys, dropLength|dropEncoding, nil)
		_, _ = bw.Write(w.c.head)
		_, _ = bw.WriteString("\r\n")
		_ = bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.handlerHeader
	_, w.haveLength = h["Content-Length"]
	if cl := h.Get("Content-Length"); cl != "" {
		if v, err := strconv.ParseInt(cl, 10, 64); err == nil && v >= 0 {
			w.contentLength = v
		}
	}
	w.snapshot(h)
	if w.haveLength && w.contentLength == -1 {
		// An invalid length leaves the handler's map; net/http's
		// clone of it, which the head is written from, keeps it.
		w.handlerHeader.Del("Content-Length")
	}
}

// snapshot serializes the header lines as they are at WriteHeader (what
// net/http's clone of the map keeps), leaving out the ones the head's
// rules always drop, and notes what those rules ask of the header.
func (w *response) snapshot(h http.Header) {
	for _, v := range h["Trailer"] {
		w.hasTrailers = true
		foreachHeaderElement(v, func(k string) {
			k = http.CanonicalHeaderKey(k)
			if validTrailer(k) {
				w.trailerKeys = append(w.trailerKeys, k)
			}
		})
	}
	w.te = h.Get("Transfer-Encoding")
	_, w.haveType = h["Content-Type"]
	w.hasCE = h.Get("Content-Encoding") != ""
	_, w.haveDate = h["Date"]
	w.connection = h.Get("Connection")
	hasCL := w.contentLength != -1
	bodyAllowed := bodyAllowedForStatus(w.status)
	// The lines net/http's writeHeader deletes, decided by what is known
	// now: the status, the method, the framing headers.
	var drop dropped
	if !bodyAllowed {
		drop |= dropLength | dropEncoding
		if w.status == http.StatusNotModified {
			drop |= dropType
		}
	}
	if hasCL && w.te != "" && w.te != "identity" {
		drop |= dropLength // both: net/http drops the length and chunks
		hasCL = false
	}
	switch {
	case w.req.Method == http.MethodHead || !bodyAllowed || w.status == http.StatusNoContent,
		hasCL, w.te == "identity":
		drop |= dropEncoding
	default:
		// Chunked: a length line the handler set, which can only be
		// an invalid one here, goes, and so does its own chunked.
		drop |= dropLength
		if w.te == "chunked" {
			drop |= dropEncoding
		}
	}
	w.c.head = appendHeader(w.c.head[:0], h, &w.c.keys, drop, &w.connSpan)
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			w.hasTrailers = true
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if err := w.admit(len(p)); err != nil || len(p) == 0 {
		return 0, err
	}
	return w.c.out.Write(p)
}

func (w *response) WriteString(s string) (int, error) {
	if err := w.admit(len(s)); err != nil || len(s) == 0 {
		return 0, err
	}
	return w.c.out.WriteString(s)
}

// admit checks a write of n body bytes as net/http's response.write
// does, choosing 200 if no status was: an error refuses the write.
func (w *response) admit(n int) error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return nil
	}
	if !bodyAllowedForStatus(w.status) {
		return http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return http.ErrContentLength
	}
	return nil
}

// ReadFrom is net/http's: on a socket with ReadFrom (TCP, not TLS), the
// first 512 bytes go through Write (to sniff a Content-Type, and so that
// an empty source writes no head); then the head goes out, and the rest
// goes straight to the socket when the answer is not chunked (sendfile,
// splice). On another connection all of it goes through Write.
func (w *response) ReadFrom(src io.Reader) (n int64, err error) {
	bufp := copyBufPool.Get().(*[copyBufSize]byte)
	defer copyBufPool.Put(bufp)
	buf := bufp[:]
	rf, ok := w.c.nc.(io.ReaderFrom)
	if !ok {
		return io.CopyBuffer(writerOnly{w}, src, buf)
	}
	if !w.headWritten {
		n0, err := io.CopyBuffer(writerOnly{w}, io.LimitReader(src, sniffLen), buf)
		n += n0
		if err != nil || n0 < sniffLen {
			return n, err
		}
	}
	_ = w.c.out.Flush()
	if !w.headWritten {
		w.writeHead(nil)
	}
	_ = w.c.bw.Flush()
	if !w.chunking && bodyAllowedForStatus(w.status) && w.req.Method != http.MethodHead {
		n0, err := rf.ReadFrom(src)
		n += n0
		w.written += n0
		return n, err
	}
	n0, err := io.CopyBuffer(writerOnly{w}, src, buf)
	return n + n0, err
}

// sniffLen is how much of a body DetectContentType reads.
const sniffLen = 512

// copyBufPool lends ReadFrom its copy buffers (net/http's size).
var copyBufPool = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

const copyBufSize = 32 << 10

// writerOnly hides ReadFrom from io.CopyBuffer, which would call it.
type writerOnly struct{ io.Writer }

func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what is buffered, the head first if it is not sent.
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.c.out.Flush()
	if !w.headWritten {
		w.writeHead(nil)
	}
	if err2 := w.c.bw.Flush(); err == nil {
		err = err2
	}
	return err
}

// Hijack hands the connection to the handler, with what the server
// buffered from it.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.handlerDone {
		panic("net/http: Hijack called after ServeHTTP finished")
	}
	if w.wroteHeader && !w.headWritten {
		// As net/http: the head goes out, the buffered body does not.
		w.writeHead(nil)
	}
	c := w.c
	c.stopWatching()
	c.srv.untrack(c)
	w.hijacked = true
	_ = c.bw.Flush()
	_ = c.nc.SetDeadline(time.Time{})
	if c.cr.hasByte {
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, nil, fmt.Errorf("unexpected Peek failure reading buffered byte: %w", err)
		}
	}
	return c.nc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.nc)), nil
}

// EnableFullDuplex lets the handler read the body after answering has
// begun: the unread rest is not read away when the head goes out.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// CloseNotify is the deprecated http.CloseNotifier: a channel that
// receives once the request's context ends (the client left, or the
// handler returned).
func (w *response) CloseNotify() <-chan bool {
	ch := make(chan bool, 1)
	ctx := w.req.Context()
	go func() {
		<-ctx.Done()
		ch <- true
	}()
	return ch
}

// SetReadDeadline and SetWriteDeadline are for http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// finish ends the answer after the handler returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_ = w.c.out.Flush()
	if !w.headWritten {
		w.writeHead(nil)
	}
	if w.chunking {
		bw := w.c.bw
		_, _ = bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			w.c.head = appendHeader(w.c.head[:0], t, &w.c.keys, 0, nil)
			_, _ = bw.Write(w.c.head)
		}
		_, _ = bw.WriteString("\r\n")
	}
	_ = w.c.bw.Flush()
	if w.body != nil {
		_ = w.body.Close()
	}
}

// shouldReuse is net/http's shouldReuseConnection.
func (w *response) shouldReuse() bool {
	switch {
	case w.closeAfterReply:
		return false
	case w.req.Method != http.MethodHead && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written:
		return false // fewer bytes than announced: the stream is out of step
	case w.c.ew.err != nil:
		return false
	case w.body != nil && w.body.earlyClose:
		return false
	}
	return true
}

// chunkWriter takes the body from the 2 KiB buffer: the first time, it
// writes the head; then each piece, as a chunk when chunking.
type chunkWriter struct{ w *response }

func (cw chunkWriter) Write(p []byte) (int, error) {
	w := cw.w
	if !w.headWritten {
		w.writeHead(p)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // the answer to HEAD has no body
	}
	bw := w.c.bw
	if w.chunking {
		var size [16]byte
		_, _ = bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	return n, err
}

// writeHead writes the status line and the header with what net/http
// adds: Date, Content-Length for a finished small body, a sniffed
// Content-Type, Connection: close, Transfer-Encoding: chunked. first is
// the body's first piece (nil when there is none yet).
func (w *response) writeHead(first []byte) {
	w.headWritten = true
	isHEAD := w.req.Method == http.MethodHead
	bodyAllowed := bodyAllowedForStatus(w.status)
	var contentType, connection, transferEncoding string
	var clBytes []byte
	if w.handlerDone && !w.hasTrailers && w.te == "" && bodyAllowed && !w.haveLength && (!isHEAD || len(first) > 0) {
		w.contentLength = int64(len(first))
		clBytes = strconv.AppendInt(w.c.lengthBuf[:0], int64(len(first)), 10)
	}
	hasCL := w.contentLength != -1
	if w.wantsClose {
		w.closeAfterReply = true
	}
	keepAlives := !w.c.srv.shutting.Load()
	if w.connection == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	// net/http reads what is left of a body the handler did not read
	// before answering, or gives up on the connection when it is large.
	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex && w.body != nil {
		w.body.mu.Lock()
		closed, sawEOF, unread := w.body.closed, w.body.sawEOF, w.body.remaining
		w.body.mu.Unlock()
		tooBig := false
		switch {
		case closed:
			if !sawEOF {
				w.closeAfterReply = true
			}
		case unread >= maxPostHandlerReadBytes:
			tooBig = true
		default:
			_, err := io.CopyN(io.Discard, w.body, maxPostHandlerReadBytes+1)
			switch {
			case err == nil:
				tooBig = true
			case errors.Is(err, http.ErrBodyReadAfterClose):
			case err == io.EOF:
				_ = w.body.Close()
			default:
				w.closeAfterReply = true
			}
		}
		if tooBig {
			w.requestTooLarge, w.closeAfterReply = true, true
			connection = "close"
			w.connection = "" // dropped: Connection: close replaces it
			w.cutConnection()
		}
	}
	if bodyAllowed && !w.hasCE && !w.haveType && w.te == "" && len(first) > 0 {
		contentType = http.DetectContentType(first)
	}
	if hasCL && w.te != "" && w.te != "identity" {
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowed || w.status == http.StatusNoContent:
	case hasCL:
	case w.te == "identity":
		w.closeAfterReply = true
	default:
		w.chunking = true
		transferEncoding = "chunked"
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(w.connection, "close")) {
		w.cutConnection()
		connection = "close"
	}

	bw := w.c.bw
	w.writeStatusLine(w.status)
	_, _ = bw.Write(w.c.head)
	if !w.haveDate {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.WriteString(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	if clBytes != nil {
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.Write(clBytes)
		_, _ = bw.WriteString("\r\n")
	}
	for _, kv := range [...][2]string{{"Content-Type", contentType}, {"Connection", connection}, {"Transfer-Encoding", transferEncoding}} {
		if kv[1] != "" {
			_, _ = bw.WriteString(kv[0])
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(kv[1])
			_, _ = bw.WriteString("\r\n")
		}
	}
	_, _ = bw.WriteString("\r\n")
}

// cutConnection removes the handler's Connection lines from the head.
func (w *response) cutConnection() {
	if s := w.connSpan; s[1] > s[0] {
		w.c.head = append(w.c.head[:s[0]], w.c.head[s[1]:]...)
		w.connSpan = [2]int{}
	}
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	_, _ = bw.WriteString("HTTP/1.1 ")
	if text := http.StatusText(code); text != "" {
		_, _ = bw.Write(strconv.AppendInt(w.c.statusBuf[:0], int64(code), 10))
		_ = bw.WriteByte(' ')
		_, _ = bw.WriteString(text)
		_, _ = bw.WriteString("\r\n")
		return
	}
	_, _ = fmt.Fprintf(bw, "%03d status code %d\r\n", code, code)
}

// finalTrailers are the trailers to send after a chunked body: the
// declared keys the handler set, and the TrailerPrefix ones.
func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailerKeys {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

// appendHeader appends h's lines as net/http writes them (Header.Write:
// sorted keys, invalid names dropped, CR and LF in values turned to
// spaces, values trimmed), less the keys exclude drops and the
// TrailerPrefix ones. connSpan, if set, receives where the Connection
// lines are.
func appendHeader(b []byte, h http.Header, keys *[]string, drop dropped, connSpan *[2]int) []byte {
	ks := (*keys)[:0]
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || drop.drops(k) {
			continue
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	*keys = ks
	if connSpan != nil {
		*connSpan = [2]int{}
	}
	for _, k := range ks {
		if !validName(k) {
			continue
		}
		start := len(b)
		for _, v := range h[k] {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendValue(b, v)
			b = append(b, "\r\n"...)
		}
		if k == "Connection" && connSpan != nil {
			*connSpan = [2]int{start, len(b)}
		}
	}
	return b
}

// appendValue appends v with CR and LF as spaces, trimmed of spaces and
// tabs at both ends (textproto.TrimString, after the replacement).
func appendValue(b []byte, v string) []byte {
	start := len(b)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	end := len(b)
	i := start
	for i < end && isASCIISpace(b[i]) {
		i++
	}
	for end > i && isASCIISpace(b[end-1]) {
		end--
	}
	n := copy(b[start:], b[i:end])
	return b[:start+n]
}

func isASCIISpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// dropped is the set of framing headers an answer's head leaves out.
type dropped uint8

const (
	dropLength   dropped = 1 << iota // Content-Length
	dropEncoding                     // Transfer-Encoding
	dropType                         // Content-Type
)

func (d dropped) drops(k string) bool {
	switch k {
	case "Content-Length":
		return d&dropLength != 0
	case "Transfer-Encoding":
		return d&dropEncoding != 0
	case "Content-Type":
		return d&dropType != 0
	}
	return false
}

// bodyAllowedForStatus is net/http's: no body for 1xx, 204 and 304.
func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == http.StatusNoContent, status == http.StatusNotModified:
		return false
	}
	return true
}

// hasToken reports whether token is one of v's comma-separated elements,
// case-insensitively.
func hasToken(v, token string) bool {
	for part := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// foreachHeaderElement calls fn for each non-empty element of the list v.
func foreachHeaderElement(v string, fn func(string)) {
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.Trim(f, " \t"); f != "" {
			fn(f)
		}
	}
}

// validTrailer is net/http's ValidTrailerHeader: the framing and routing
// headers may not be trailers.
func validTrailer(k string) bool {
	switch k {
	case "Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Range",
		"Content-Type", "Expect", "Host", "Keep-Alive", "Max-Forwards", "Pragma", "Proxy-Authenticate",
		"Proxy-Authorization", "Proxy-Connection", "Range", "Realm", "Te", "Trailer", "Transfer-Encoding", "Www-Authenticate":
		return false
	}
	return true
}

// httpDate is the Date header's value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := date.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var date atomic.Pointer[dateText]
