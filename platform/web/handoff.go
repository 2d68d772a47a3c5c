package web

import (
	"context"
	"sync"
)

// A handler may serve its request past its own return: a watch stream on
// HTTP/1 takes its connection over from net/http and leaves the stream to
// a goroutine of its own (platform/sse). What wraps such a handler and
// acts on the request for as long as it runs (auth's guard cancels the
// context of a request whose token is revoked, and checks it again after
// every change of the auth state) must then go on until the stream ends,
// not stop as the handler returns. It offers the request a Handoff
// (Offer), which the handler claims when it detaches (Detach), and leaves
// to the Handoff what it would have done at the return (AtEnd).

// Handoff is what lets a request outlive its handler's return: the
// cancellation of its context by what wraps the handler (Cancel), which
// reaches a goroutine the handler detached to, and the ends of those
// wrappers, run when the request ends: as the handler returns, or when
// that goroutine has served the request. A request has one at most,
// offered by the outermost wrapper that needs it (Detach claims only the
// innermost); the wrappers inside that one get it from it.
type Handoff struct {
	mu    sync.Mutex
	state handoffState
	// cancel ends the context the handler serves the request under, and
	// detachedCancel the one a detached goroutine serves it under.
	cancel, detachedCancel context.CancelCauseFunc
	ends                   []func() // AtEnd's, while detached
}

type handoffState uint8

const (
	inHandler handoffState = iota // the handler serves the request
	detached                      // a goroutine of the handler's serves it
	ended
)

// Offer returns a context for the handler of the request whose context is
// parent, carrying a Handoff, and the Handoff. The context ends with
// parent (net/http's, which ends when the client leaves or the handler
// returns) or Cancel. A handler that detaches (Detach) goes on under a
// context of its own, which only Cancel ends. The caller calls Return once
// the handler returned.
//
// A request that never detaches costs the Handoff and one context: the
// one a detached goroutine serves under, cut from net/http's, is made by
// Detach.
func Offer(parent context.Context) (context.Context, *Handoff) {
	h := &Handoff{}
	ctx, cancel := context.WithCancelCause(context.WithValue(parent, handoffKey, h))
	h.cancel = cancel
	return ctx, h
}

// Cancel cancels the request's context with cause, whether its handler
// serves it or a goroutine the handler detached to.
func (h *Handoff) Cancel(cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cancel(cause)
	if h.detachedCancel != nil {
		h.detachedCancel(cause)
	}
}

// AtEnd runs f when the request ends: at once, unless the handler
// detached and the goroutine it detached to still serves the request,
// when it runs f as it ends. A wrapper calls it once the handler returned,
// with what it would otherwise do then (forget the request, release what
// it holds for it).
func (h *Handoff) AtEnd(f func()) {
	h.mu.Lock()
	if h.state == detached {
		h.ends = append(h.ends, f)
		h.mu.Unlock()
		return
	}
	h.state = ended
	h.mu.Unlock()
	f()
}

// Return is what the wrapper that offered h calls once the handler
// returned: unless the handler detached, the request ends, its context
// cancelled; else it ends when the detached goroutine has served it.
func (h *Handoff) Return() {
	h.mu.Lock()
	if h.state == detached {
		h.mu.Unlock()
		return
	}
	h.state = ended
	h.mu.Unlock()
	h.cancel(nil)
}

// end is the detached goroutine's end of the request: the wrappers' ends
// run, in the order they would have run as the handler returned, then
// its context is cancelled.
func (h *Handoff) end() {
	h.mu.Lock()
	if h.state != detached {
		h.mu.Unlock()
		return
	}
	h.state = ended
	ends := h.ends
	h.ends = nil
	h.mu.Unlock()
	for _, f := range ends {
		f()
	}
	h.detachedCancel(nil)
	h.cancel(nil)
}

// Detach tells what wraps the handler of ctx's request that a goroutine
// of the handler's serves the request from now on, past the handler's
// return. It returns the context to serve it under and end, which that
// goroutine calls once it has served the request.
//
// When a wrapper offered a Handoff (Offer), the context has ctx's values
// and ends only when a wrapper cancels the request (auth's guard, its
// token revoked; its Cause says why), or was cancelled before the handoff
// (the client left); the wrappers finish with the request at end.
// Without one, nothing around the handler acts on the request past its
// return, and the context never ends: ctx, net/http's, ends as the
// handler returns, and the goroutine must not keep it.
//
// ok is false when the request was detached already: the handler serves
// it to its end under ctx, and calls end too.
func Detach(ctx context.Context) (_ context.Context, end func(), ok bool) {
	h, _ := ctx.Value(handoffKey).(*Handoff)
	if h == nil {
		return context.Background(), func() {}, true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != inHandler {
		return ctx, func() {}, false
	}
	h.state = detached
	dctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	h.detachedCancel = cancel
	// Cancel takes h.mu: a cancellation by a wrapper came before this
	// and is seen here, or comes after and reaches dctx.
	if ctx.Err() != nil {
		cancel(context.Cause(ctx))
	}
	return dctx, h.end, true
}
