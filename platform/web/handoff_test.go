package web_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web"
)

// offered is a request's context as the handler of Offer's caller sees
// it, the function that cancels its parent (net/http's), and the
// Handoff.
func offered() (ctx context.Context, cancelParent context.CancelFunc, h *web.Handoff) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, h = web.Offer(parent)
	return ctx, cancelParent, h
}

// mustEnd fails unless ctx has ended, or ends soon.
func mustEnd(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the request's context did not end", what)
	}
}

// TestHandoffInHandler: a request its handler serves ends with its
// parent while the handler runs, and as the handler returns; the
// wrappers' ends run then, and a handler cannot detach after.
func TestHandoffInHandler(t *testing.T) {
	ctx, cancelParent, h := offered()
	defer cancelParent()
	var ran []string
	h.AtEnd(func() { ran = append(ran, "end") })
	if len(ran) != 1 {
		t.Fatalf("AtEnd of a request served in its handler ran %v, want at once", ran)
	}
	h.Return()
	if ctx.Err() == nil {
		t.Fatal("Return left the context of a request served in its handler running")
	}
	if _, _, ok := web.Detach(ctx); ok {
		t.Fatal("Detach after the handler returned = ok, want refused")
	}

	ctx, cancelParent, _ = offered()
	cancelParent()
	mustEnd(t, ctx, "the client left while the handler runs")
}

// TestHandoffDetached: a detached request outlives its parent (net/http
// cancels it as the handler returns) and its handler's return, and keeps
// the values of its context; Cancel still ends it with its cause, and
// the wrappers' ends run at end, in the order they were given, not
// before.
func TestHandoffDetached(t *testing.T) {
	type key struct{}
	ctx, cancelParent, h := offered()
	dctx, end, ok := web.Detach(context.WithValue(ctx, key{}, "v"))
	if !ok || dctx.Value(key{}) != "v" {
		t.Fatalf("Detach = %v, %v; want a context with the handler's values, ok", dctx, ok)
	}
	if _, _, again := web.Detach(ctx); again {
		t.Fatal("a second Detach = ok, want refused")
	}
	var ran []string
	h.AtEnd(func() { ran = append(ran, "hold") })
	h.Return()
	cancelParent()
	if len(ran) != 0 || dctx.Err() != nil {
		t.Fatalf("after the handler returned: ends ran %v, context %v; want neither before end", ran, dctx.Err())
	}
	revoked := errors.New("revoked")
	h.Cancel(revoked)
	mustEnd(t, dctx, "Cancel after the handoff")
	if got := context.Cause(dctx); got != revoked {
		t.Fatalf("Cause = %v, want %v", got, revoked)
	}
	end()
	h.AtEnd(func() { ran = append(ran, "late") })
	end()
	if want := []string{"hold", "late"}; !slices.Equal(ran, want) {
		t.Fatalf("ends ran %v, want %v", ran, want)
	}
}

// TestHandoffCancelledBeforeDetach: a request cancelled while its
// handler still served it, by a wrapper or because its client left,
// is over for the goroutine it detaches to as well.
func TestHandoffCancelledBeforeDetach(t *testing.T) {
	revoked := errors.New("revoked")
	for name, cancel := range map[string]func(context.CancelFunc, *web.Handoff){
		"Cancel":       func(_ context.CancelFunc, h *web.Handoff) { h.Cancel(revoked) },
		"parent's end": func(cancelParent context.CancelFunc, _ *web.Handoff) { cancelParent() },
	} {
		ctx, cancelParent, h := offered()
		cancel(cancelParent, h)
		dctx, end, ok := web.Detach(ctx)
		if !ok {
			t.Fatalf("%s: Detach refused", name)
		}
		mustEnd(t, dctx, name+" before Detach")
		if name == "Cancel" && context.Cause(dctx) != revoked {
			t.Errorf("%s: Cause = %v, want %v", name, context.Cause(dctx), revoked)
		}
		h.Return()
		end()
		cancelParent()
	}
}

// TestDetachWithoutHandoff: with nothing around the handler, the
// detached goroutine gets a context that never ends, not net/http's.
func TestDetachWithoutHandoff(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	cancel()
	ctx, end, ok := web.Detach(parent)
	if !ok || ctx.Done() != nil {
		t.Fatalf("Detach without a Handoff = done %v, ok %v; want a context that never ends, ok", ctx.Done(), ok)
	}
	end()
}
