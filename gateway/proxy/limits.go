package proxy

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/stewardhq/steward/gateway/route"
)

// maxKeys bounds the per-client buckets of one route; past it, idle
// buckets are dropped (a dropped client starts again with a full bucket).
const maxKeys = 100_000

// limiters holds the token buckets, per route and optionally per client.
type limiters struct {
	mu      sync.Mutex
	byRoute map[string]*routeLimits
}

type routeLimits struct {
	spec    route.RateLimit
	shared  *rate.Limiter
	clients map[string]*client
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters() *limiters { return &limiters{byRoute: map[string]*routeLimits{}} }

// allow takes a token for r from its route's bucket.
func (l *limiters) allow(rt *route.Route, r *http.Request) bool {
	spec := *rt.RateLimit
	l.mu.Lock()
	defer l.mu.Unlock()
	rl := l.byRoute[rt.Name]
	if rl == nil || rl.spec != spec {
		// New, or the route's document changed: start afresh.
		rl = &routeLimits{spec: spec, clients: map[string]*client{}}
		l.byRoute[rt.Name] = rl
	}
	if spec.Key == "" {
		if rl.shared == nil {
			rl.shared = rate.NewLimiter(rate.Limit(spec.RPS), spec.Burst)
		}
		return rl.shared.Allow()
	}
	key := clientKey(spec.Key, r)
	c := rl.clients[key]
	now := time.Now()
	if c == nil {
		if len(rl.clients) >= maxKeys {
			rl.sweep(now)
		}
		c = &client{lim: rate.NewLimiter(rate.Limit(spec.RPS), spec.Burst)}
		rl.clients[key] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
}

// sweep drops buckets idle long enough to have refilled: forgetting them
// changes nothing.
func (rl *routeLimits) sweep(now time.Time) {
	full := time.Duration(float64(rl.spec.Burst)/rl.spec.RPS*float64(time.Second)) + time.Second
	for k, c := range rl.clients {
		if now.Sub(c.seen) > full {
			delete(rl.clients, k)
		}
	}
}

func clientKey(spec string, r *http.Request) string {
	if name, ok := strings.CutPrefix(spec, "header:"); ok {
		return r.Header.Get(name)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
