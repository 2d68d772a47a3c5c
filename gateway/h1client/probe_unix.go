//go:build unix

package h1client

import (
	"errors"
	"syscall"
)

// alive reports whether an idle connection is still open with nothing
// unread: one non-blocking peek, which must find no data yet.
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var one [1]byte
	var n int
	var perr error
	if err := rc.Read(func(fd uintptr) bool {
		n, _, perr = syscall.Recvfrom(int(fd), one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return false
	}
	// EAGAIN: open and quiet. 0 bytes without an error: closed. Data: an
	// answer nobody asked for.
	return n < 0 && (errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK))
}
