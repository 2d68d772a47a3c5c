//go:build unix

package h1client

import (
	"syscall"
)

// probe is a connection's liveness peek, set up once so that checking a
// pooled connection before each request allocates nothing.
type probe struct {
	rc   syscall.RawConn
	peek func(fd uintptr) bool
	one  [1]byte
	n    int
	err  error
}

// alive reports whether an idle connection is still open with nothing
// unread: one non-blocking peek, which must find no data yet.
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	p := &c.probe
	if p.rc == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return true
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		p.rc = rc
		p.peek = func(fd uintptr) bool {
			p.n, _, p.err = syscall.Recvfrom(int(fd), p.one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true
		}
	}
	if err := p.rc.Read(p.peek); err != nil {
		return false
	}
	// EAGAIN: open and quiet. 0 bytes without an error: closed. Data: an
	// answer nobody asked for.
	return p.n < 0 && (p.err == syscall.EAGAIN || p.err == syscall.EWOULDBLOCK)
}
