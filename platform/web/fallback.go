package web

import (
	"net"
	"sync"
)

// fallbackListener is the listener net/http's server serves when
// h1server is in front: its connections are the ones h1server handed
// off, each from the first request it did not take.
type fallbackListener struct {
	addr  net.Addr
	conns chan net.Conn
	once  sync.Once
	done  chan struct{}
}

func newFallbackListener(addr net.Addr) *fallbackListener {
	return &fallbackListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to net/http; after Close, it closes c instead.
func (l *fallbackListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *fallbackListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *fallbackListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *fallbackListener) Addr() net.Addr { return l.addr }
