package sse

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"
)

// An HTTP/1 stream is served on its connection, taken over from net/http
// (Hijack), by a goroutine of its own. Thousands of watchers are held for
// minutes: net/http would keep, for each, its connection's goroutine with
// the handler's deep stack parked in it, a second goroutine reading in the
// background, and buffers for reading and writing. Taken over, a stream
// is one goroutine with a shallow stack, the connection, and a write
// buffer borrowed from a pool only while it writes. The response has no
// length and no chunks: it ends when the connection closes
// (Connection: close), as HTTP/1.1 allows.

// hijack takes r's connection over from net/http and returns it with the
// response's head written to it (not yet sent), or nil, with nothing
// written, for an HTTP/2 request or a writer that cannot be taken over.
func (s Stream) hijack(w http.ResponseWriter, r *http.Request) *connSink {
	if r.ProtoMajor != 1 {
		return nil
	}
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil
	}
	// What net/http buffered is dropped with its reader: a client that
	// sent more than its GET gets nothing for it, the connection closes
	// with the stream.
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	out := &connSink{c: c, timeout: s.WriteTimeout}
	_, _ = out.Write(head.Bytes())
	return out
}

// connSink writes a stream to a connection taken over from net/http.
type connSink struct {
	c        net.Conn
	timeout  time.Duration
	deadline time.Time       // the connection's write deadline
	buf      *[]byte         // from writeBuffers, held from a write to the flush
	one      [1]byte         // the heartbeat's read probe
	ended    <-chan struct{} // closed when the request is ended from outside (web.Detach)

	// raw, for a stream served by a Hub, is the connection's socket, for
	// writes and reads that do not wait; the Hub decides when to send,
	// and Write only buffers.
	raw syscall.RawConn
}

// writeBuffers lends streams their write buffers: each stream holds one
// only from its first write to its flush, so thousands of idle streams
// hold none, and the few writing at a time share them. Buffers grown past
// maxPooledBuffer (a large revision) are left to the collector.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledBuffer = 64 << 10

// Write buffers p, and sends what is buffered once it passes
// maxPooledBuffer: a stream far behind sends its backlog in pieces rather
// than gathering all of it.
func (s *connSink) Write(p []byte) (int, error) {
	if s.buf == nil {
		s.buf = writeBuffers.Get().(*[]byte)
	}
	*s.buf = append(*s.buf, p...)
	if len(*s.buf) >= maxPooledBuffer && s.raw == nil {
		if err := s.flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// flush sends everything written since the last flush, in one write if
// the client takes it. It fails once a write has waited between half the
// write timeout and all of it with nothing taken: a client that reads
// slowly is not cut while it reads.
func (s *connSink) flush() error {
	b := s.buf
	if b == nil {
		return nil
	}
	s.buf = nil
	p := *b
	var err error
	for len(p) > 0 {
		// Setting a deadline costs as much as a tenth of the write: one
		// that leaves at least half the timeout is kept.
		if now := time.Now(); s.deadline.Sub(now) < s.timeout/2 {
			s.deadline = now.Add(s.timeout)
			if err = s.c.SetWriteDeadline(s.deadline); err != nil {
				break
			}
		}
		var n int
		n, err = s.c.Write(p)
		p = p[n:]
		if n == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		// Some was taken before the deadline: give the rest another
		// (a TLS connection fails every write after one timed out).
		s.deadline = time.Time{}
	}
	giveBack(b)
	return err
}

// buffered is how much was written since the last flush.
func (s *connSink) buffered() int {
	if s.buf == nil {
		return 0
	}
	return len(*s.buf)
}

// release drops what is buffered and gives the buffer back.
func (s *connSink) release() {
	if s.buf != nil {
		giveBack(s.buf)
		s.buf = nil
	}
}

func giveBack(b *[]byte) {
	if cap(*b) <= maxPooledBuffer*2 {
		*b = (*b)[:0]
		writeBuffers.Put(b)
	}
}

// gone is closed when what wraps the stream's handler ends the request
// (auth's guard, its token revoked; see web.Detach). A connection tells
// that its client left only when read (probe) or written to.
func (s *connSink) gone() <-chan struct{} { return s.ended }

// probe reads from the connection for a moment: a client that left
// answers at once with end of file or a reset, one still there with
// nothing (a stream's client sends nothing after its request). A reader
// goroutine per stream would notice sooner, at the cost of a second
// goroutine and its stack for every watcher.
func (s *connSink) probe() error {
	if err := s.c.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		return err
	}
	_, err := s.c.Read(s.one[:])
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}
