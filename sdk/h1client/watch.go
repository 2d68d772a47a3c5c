package h1client

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// watchGrace is how long an exchange runs before its context is watched
// by context.AfterFunc.
const watchGrace = 5 * time.Millisecond

// watch ends an exchange when the request's context ends, lazily. The
// connection's deadline is set watchGrace ahead; an exchange that ends
// before it (most do) costs that and nothing else. A read or write that
// reaches the deadline checks the context: ended, the exchange fails as
// if the context had cut it; still live, the deadline is cleared and a
// context.AfterFunc registered, which cuts the connection when the
// context ends, and the read or write goes on. A context that ends within
// watchGrace is noticed at the deadline, at most watchGrace late. (A
// context.AfterFunc for every exchange cost five allocations and a lock of
// the request's context.)
type watch struct {
	nc  net.Conn
	ctx context.Context
	// mu orders again, on the goroutine reading the answer, and stop,
	// which a body's Close may call from another.
	mu       sync.Mutex
	armed    bool        // the connection's deadline is arm's
	stopped  bool        // stop was called: no AfterFunc may follow
	stopFunc func() bool // the AfterFunc's stop, once registered
}

// arm starts watching ctx for an exchange on the connection.
func (w *watch) arm(ctx context.Context) {
	w.ctx, w.stopFunc, w.stopped = ctx, nil, false
	if ctx.Done() == nil {
		w.disarm() // a context that cannot end
		return
	}
	w.armed = true
	_ = w.nc.SetDeadline(time.Now().Add(watchGrace))
}

func (w *watch) disarm() {
	if w.armed {
		w.armed = false
		_ = w.nc.SetDeadline(time.Time{})
	}
}

// again reports whether a read or write that failed with err is to be
// made again: the deadline it reached was arm's, and the context is live.
func (w *watch) again(err error) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || !w.armed || !errors.Is(err, os.ErrDeadlineExceeded) || w.ctx.Err() != nil {
		return false
	}
	// Cleared before the AfterFunc exists: one that runs at once (the
	// context ending meanwhile) sets its deadline after this.
	w.disarm()
	nc := w.nc
	w.stopFunc = context.AfterFunc(w.ctx, func() { _ = nc.SetDeadline(aLongTimeAgo) })
	return true
}

// stop ends the watch. It reports false when the context cut the
// connection (the AfterFunc ran or is running): the connection must not
// be used again. A connection it reports true for has no deadline.
func (w *watch) stop() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	if w.stopFunc != nil {
		return w.stopFunc()
	}
	w.disarm()
	return true
}

// watchedConn reads and writes the connection under its watch.
type watchedConn struct{ c *conn }

func (wc watchedConn) Read(p []byte) (int, error) {
	for {
		n, err := wc.c.nc.Read(p)
		if n > 0 || err == nil || !wc.c.watch.again(err) {
			return n, err
		}
	}
}

func (wc watchedConn) Write(p []byte) (int, error) {
	written := 0
	for {
		n, err := wc.c.nc.Write(p[written:])
		written += n
		if err == nil || !wc.c.watch.again(err) {
			return written, err
		}
	}
}
