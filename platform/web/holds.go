package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"

	"github.com/stewardhq/steward/platform/fault"
)

// Hold takes one of the client's slots for a long-lived request (a watch
// stream, a blocking query, a candidate waiting in line) and returns the
// function that gives it back when the request ends. Each such request
// costs the server a goroutine, a connection and a watcher woken by every
// change, for minutes: a client that already holds Limits.WatchesPerClient
// on this server is refused with 429 (fault.TooManyRequests), which Error
// answers with Retry-After. Outside a server run by Serve, Hold takes
// nothing.
func Hold(r *http.Request) (release func(), err error) {
	st, _ := r.Context().Value(servingKey).(*serving)
	if st == nil {
		return func() {}, nil
	}
	key := ClientKey(r)
	if !st.holds.take(key) {
		return nil, fault.New(fault.TooManyRequests,
			"%s holds %d watches and blocking queries on this server, the most one client may; end one first", key, st.holds.max).
			With("limit", st.holds.max)
	}
	return sync.OnceFunc(func() { st.holds.give(key) }), nil
}

// ClientKey names the client a request counts against: its address or,
// when the request came through trusted proxies (Limits.TrustedProxies),
// the address they say it came from, the rightmost X-Forwarded-For entry
// that is not itself a trusted proxy. Once requests carry credentials,
// the credential's subject is the key to use instead.
func ClientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	st, _ := r.Context().Value(servingKey).(*serving)
	if st == nil || len(st.trusted) == 0 {
		return host
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !st.trusted.contains(peer) {
		return host
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				// What a trusted hop said cannot be read: count the
				// request against that hop.
				return host
			}
			host = a.Unmap().String()
			if !st.trusted.contains(a) {
				return host
			}
		}
	}
	return host
}

// Proxies are addresses and CIDR prefixes, written comma-separated, e.g.
// "10.0.0.0/8, 192.0.2.7".
type Proxies []netip.Prefix

// UnmarshalText reads the comma-separated form.
func (p *Proxies) UnmarshalText(b []byte) error {
	var out Proxies
	for part := range strings.SplitSeq(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if prefix, err := netip.ParsePrefix(part); err == nil {
			out = append(out, prefix.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return fmt.Errorf("%q is neither an address nor a CIDR prefix", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	*p = out
	return nil
}

func (p Proxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, prefix := range p {
		if prefix.Contains(a) {
			return true
		}
	}
	return false
}

// holds counts the long-lived requests each client holds on one server.
// A client is in the map only while it holds one, so the map is never
// larger than the requests being served.
type holds struct {
	max int
	mu  sync.Mutex
	n   map[string]int
	// total counts every slot taken; none is closed when it falls back to
	// 0, so that Serve can wait for streams that took their connections
	// over (sse on HTTP/1), which http.Server.Shutdown no longer sees.
	total int
	none  chan struct{}
}

func newHolds(max int) *holds { return &holds{max: max, n: map[string]int{}} }

func (h *holds) take(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n[key] >= h.max {
		return false
	}
	h.n[key]++
	if h.total++; h.total == 1 {
		h.none = make(chan struct{})
	}
	return true
}

func (h *holds) give(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n[key]--; h.n[key] <= 0 {
		delete(h.n, key)
	}
	if h.total--; h.total == 0 {
		close(h.none)
	}
}

// wait returns when no slot is taken, or with ctx's error when ctx ends
// first.
func (h *holds) wait(ctx context.Context) error {
	h.mu.Lock()
	none := h.none
	if h.total == 0 {
		none = nil
	}
	h.mu.Unlock()
	if none == nil {
		return nil
	}
	select {
	case <-none:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
