package web

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/stewardhq/steward/platform/fault"
)

// A request with both Content-Length and Transfer-Encoding has two
// framings, and a proxy and a server that pick different ones see
// different requests in the same bytes (request smuggling). RFC 9112
// §6.3 lets a server reject such a request and requires it to close the
// connection after answering. net/http takes the chunked framing and
// deletes Content-Length before any handler sees the request, so no
// handler can tell; framedConn reads the header blocks as they come off
// the connection, and refuseAmbiguousFraming answers the first request
// that had both headers 400 and closes the connection.

// framedListener wraps every accepted connection in a framedConn.
type framedListener struct{ net.Listener }

func (l framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c}, nil
}

// framedConn follows the HTTP/1.1 framing of what is read from it.
type framedConn struct {
	net.Conn
	f framer // used only by Read, which net/http never calls concurrently
	// bad is 1 + the number of the first request on the connection that
	// carried both headers, 0 while there is none; served counts the
	// requests the handler was given.
	bad    atomic.Uint64
	served atomic.Uint64
}

func (c *framedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.bad.Load() == 0 {
		c.f.feed(p[:n])
		c.bad.Store(c.f.bad)
	}
	return n, err
}

// CloseWrite half-closes the connection, which net/http does before
// closing one whose request body it left unread, so that the client reads
// the answer instead of a reset; net/http looks for it on the connection
// it serves, which is this one.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil // then net/http only waits before closing, as without the method
}

// refuseAmbiguousFraming answers a request that carried both
// Content-Length and Transfer-Encoding with 400 and closes its
// connection. The server serves a connection's requests one at a time and
// in order, each only after its header block was read, so the n-th
// request the handler is given is the n-th header block framedConn saw.
func refuseAmbiguousFraming(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey).(*framedConn); ok {
			n := c.served.Add(1)
			if bad := c.bad.Load(); bad != 0 && n >= bad {
				w.Header().Set("Connection", "close")
				WriteProblem(w, ProblemFor(r, fault.New(fault.Invalid,
					"the request's length is ambiguous: it has both Content-Length and Transfer-Encoding, or a Content-Length of over %d bytes (RFC 9112 §6.3)", lineKept)))
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// framer is a small HTTP/1.1 request-framing state machine: header blocks
// line by line, then the body by Content-Length or by chunks, as net/http
// reads them. It keeps only the start of each line (enough for a header
// name and a length) and the end of a request line (its version). Where
// its reading and net/http's could part, on malformed input, net/http
// refuses the request and closes the connection, so nothing is served
// from the bytes that follow; a Content-Length line too long to read is
// refused like an ambiguous one, so that the two never part.
type framer struct {
	state     framerState
	line      [lineKept]byte
	lineLen   int
	long      bool // the line did not fit in line
	tail      [16]byte
	tailLen   int
	inRequest bool // the block's request line was read
	http10    bool // HTTP/1.0, where Transfer-Encoding is ignored
	hasCL     bool
	hasTE     bool
	unread    bool   // a Content-Length too long to read
	length    int64  // the Content-Length read
	remaining uint64 // body or chunk bytes still to pass
	blocks    uint64 // header blocks read
	bad       uint64 // 1 + the number of the first ambiguous block; 0: none
}

type framerState uint8

const (
	inHeaders   framerState = iota
	inBody                  // Content-Length bytes
	inChunkSize             // a chunk-size line
	inChunkData             // a chunk's bytes
	inChunkEnd              // the CRLF after a chunk's bytes
	inTrailers              // trailer lines, up to an empty one
)

// lineKept is how much of a line the framer reads: "Transfer-Encoding:"
// or "Content-Length:" and a length fit with room to spare.
const lineKept = 128

func (f *framer) feed(p []byte) {
	for len(p) > 0 {
		if f.state == inBody || f.state == inChunkData {
			k := min(uint64(len(p)), f.remaining)
			p = p[k:]
			if f.remaining -= k; f.remaining == 0 {
				if f.state == inBody {
					f.state = inHeaders
				} else {
					f.state = inChunkEnd
				}
			}
			continue
		}
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		n := copy(f.line[f.lineLen:], part)
		f.lineLen += n
		f.long = f.long || n < len(part)
		if f.state == inHeaders && !f.inRequest {
			f.keepTail(part)
		}
		if i < 0 {
			return
		}
		p = p[i+1:]
		line := bytes.TrimSuffix(f.line[:f.lineLen], []byte{'\r'})
		f.endLine(line)
		f.lineLen, f.long, f.tailLen = 0, false, 0
	}
}

// keepTail keeps the last bytes of the line read so far.
func (f *framer) keepTail(part []byte) {
	if len(part) >= len(f.tail) {
		f.tailLen = copy(f.tail[:], part[len(part)-len(f.tail):])
		return
	}
	keep := min(f.tailLen, len(f.tail)-len(part))
	copy(f.tail[:], f.tail[f.tailLen-keep:f.tailLen])
	f.tailLen = keep + copy(f.tail[keep:], part)
}

func (f *framer) endLine(line []byte) {
	switch f.state {
	case inHeaders:
		switch {
		case !f.inRequest:
			f.inRequest = len(line) > 0
			end := line
			if f.long {
				end = bytes.TrimSuffix(f.tail[:f.tailLen], []byte{'\r'})
			}
			f.http10 = bytes.HasSuffix(end, []byte("HTTP/1.0"))
		case len(line) == 0:
			f.endBlock()
		default:
			name, value, _ := bytes.Cut(line, []byte{':'})
			switch {
			case bytes.EqualFold(name, []byte("Content-Length")):
				f.hasCL, f.unread = true, f.unread || f.long
				f.length, _ = strconv.ParseInt(string(bytes.TrimSpace(value)), 10, 64)
			case bytes.EqualFold(name, []byte("Transfer-Encoding")):
				f.hasTE = true
			}
		}
	case inChunkSize:
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseUint(string(bytes.TrimRight(size, " \t")), 16, 64)
		switch {
		case err != nil:
			f.state = inHeaders // net/http fails the body and closes
		case n == 0:
			f.state = inTrailers
		default:
			f.state, f.remaining = inChunkData, n
		}
	case inChunkEnd:
		f.state = inChunkSize
	case inTrailers:
		if len(line) == 0 {
			f.state = inHeaders
		}
	}
}

// endBlock ends a header block and sets up its body's framing as net/http
// does: chunked if Transfer-Encoding is present (HTTP/1.1), else
// Content-Length bytes.
func (f *framer) endBlock() {
	f.blocks++
	if (f.hasCL && f.hasTE || f.unread) && f.bad == 0 {
		f.bad = f.blocks
	}
	switch {
	case f.hasTE && !f.http10:
		f.state = inChunkSize
	case f.hasCL && f.length > 0:
		f.state, f.remaining = inBody, uint64(f.length)
	}
	f.inRequest, f.http10, f.hasCL, f.hasTE, f.unread, f.length = false, false, false, false, false, 0
}
