package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The gateway workload: three small HTTP upstreams the suite runs (on the
// bridge address) are registered as chaos-web with TTL checks the suite
// heartbeats while they live; one at a time dies and comes back. Clients
// GET through both gateways. Checked: no idempotent request fails, whatever
// dies (an upstream, or a Steward replica under the nemesis).
const (
	webService     = "chaos-web"
	webInstances   = 3
	gatewayClients = 4
	webTTL         = 3 * time.Second
	upstreamEvery  = 12 * time.Second // an upstream dies this often ...
	upstreamDown   = 6 * time.Second  // ... for this long
)

// upstream is one instance of chaos-web.
type upstream struct {
	id   string
	addr string // host:port, kept across restarts

	mu    sync.Mutex
	srv   *http.Server
	alive bool
}

func (u *upstream) start() error {
	ln, err := net.Listen("tcp", u.addr)
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.addr = ln.Addr().String()
	u.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s %s\n", u.id, r.URL.Path)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	u.alive = true
	go func() { _ = u.srv.Serve(ln) }()
	return nil
}

// kill closes the listener and every connection at once.
func (u *upstream) kill() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		_ = u.srv.Close()
	}
	u.alive = false
}

func (u *upstream) isAlive() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.alive
}

type gatewayWorkload struct {
	s         *suite
	upstreams []*upstream

	mu     sync.Mutex
	counts counts
	deaths int
	errs   map[string]*errGroup // client-visible errors, grouped
}

// errGroup counts alike client-visible errors: same gateway, same answer,
// same fault kind under way.
type errGroup struct {
	n           int
	first, last time.Time
	during      string
}

func newGatewayWorkload(s *suite) (*gatewayWorkload, error) {
	w := &gatewayWorkload{s: s, errs: map[string]*errGroup{}}
	for i := range webInstances {
		u := &upstream{id: fmt.Sprintf("web-%d", i), addr: s.c.net.bridgeIP.String() + ":0"}
		if err := u.start(); err != nil {
			return nil, err
		}
		w.upstreams = append(w.upstreams, u)
	}
	return w, nil
}

func (w *gatewayWorkload) close() {
	for _, u := range w.upstreams {
		u.kill()
	}
}

// register registers every upstream (retrying up to 30 s) and waits until
// both gateways route to chaos-web.
func (w *gatewayWorkload) register(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x3eb))
	for _, u := range w.upstreams {
		host, port, _ := net.SplitHostPort(u.addr)
		body := fmt.Sprintf(`{"address":%q,"port":%s,"check":{"ttl":%q,"deregisterAfter":"1h"}}`, host, port, webTTL)
		r := w.s.eventually(ctx, 30*time.Second, func() reply {
			return w.s.do(ctx, http.MethodPut, w.s.c.url("registry", rng.IntN(w.s.c.nodes()))+"/v1/services/"+webService+"/instances/"+u.id, nil, []byte(body), opTimeout)
		})
		if r.err != nil || r.status != http.StatusOK {
			return fmt.Errorf("register %s: %d %s %v", u.id, r.status, r.body, r.err)
		}
	}
	for i := range gatewayNodes {
		r := w.s.eventually(ctx, 30*time.Second, func() reply {
			return w.s.do(ctx, http.MethodGet, w.s.c.url(gatewayRole, i)+"/s/"+webService+"/ready", nil, nil, opTimeout)
		})
		if r.err != nil || r.status != http.StatusOK {
			return fmt.Errorf("gateway-%d does not route to %s: %d %s %v", i, webService, r.status, r.body, r.err)
		}
	}
	return nil
}

func (w *gatewayWorkload) run(ctx context.Context, wg *sync.WaitGroup) {
	for id := range gatewayClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, id)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		w.heartbeats(ctx)
	}()
	go func() {
		defer wg.Done()
		w.killer(ctx)
	}()
}

// client GETs through a random gateway; anything but a 200 is an error a
// user would have seen.
func (w *gatewayWorkload) client(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x6a7e+uint64(id)))
	for n := 0; ctx.Err() == nil; n++ {
		gw := rng.IntN(gatewayNodes)
		r := w.s.do(ctx, http.MethodGet, fmt.Sprintf("%s/s/%s/c%d/%d", w.s.c.url(gatewayRole, gw), webService, id, n), nil, nil, 15*time.Second)
		if ctx.Err() != nil && r.err != nil {
			return // the run ended under it
		}
		ok := r.err == nil && r.status == http.StatusOK && strings.HasPrefix(string(r.body), "web-")
		w.mu.Lock()
		w.counts.tally(r, ok)
		if !ok {
			w.addError(gw, r)
		}
		w.mu.Unlock()
		if !ok {
			w.s.logf("gateway: client-visible error: %d %s %v", r.status, strings.TrimSpace(string(r.body)), r.err)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// addError groups a client-visible error; the caller holds w.mu.
func (w *gatewayWorkload) addError(gw int, r reply) {
	what := fmt.Sprintf("gateway-%d: %d %s", gw, r.status, problemDetail(r.body))
	if r.err != nil {
		what = fmt.Sprintf("gateway-%d: %s", gw, lastCause(r.err))
	}
	now := time.Now()
	during := w.s.faultAt(now)
	kind, _, _ := strings.Cut(during, " on ")
	key := what + " | " + kind
	g := w.errs[key]
	if g == nil {
		g = &errGroup{first: now, during: during}
		w.errs[key] = g
	}
	g.n++
	g.last = now
}

// problemDetail is a problem document's detail, or the body.
func problemDetail(body []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	return strings.TrimSpace(string(body))
}

// lastCause is the innermost part of an error's text.
func lastCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

// heartbeats keeps every live upstream's TTL check passing, one agent
// per upstream.
func (w *gatewayWorkload) heartbeats(ctx context.Context) {
	var wg sync.WaitGroup
	for i, u := range w.upstreams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x6b+uint64(i)))
			for sleepCtx(ctx, time.Second) {
				if u.isAlive() {
					w.s.heartbeat(ctx, rng, webService, u.id, func(reply, bool, int, time.Time) {})
				}
			}
		}()
	}
	wg.Wait()
}

// killer kills one live upstream every upstreamEvery (never the last two)
// and starts it again upstreamDown later.
func (w *gatewayWorkload) killer(ctx context.Context) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x4111))
	for sleepCtx(ctx, upstreamEvery) {
		u := w.upstreams[rng.IntN(len(w.upstreams))]
		u.kill()
		w.mu.Lock()
		w.deaths++
		w.mu.Unlock()
		sleepCtx(ctx, upstreamDown)
		if err := u.start(); err != nil && !errors.Is(err, net.ErrClosed) {
			w.s.logf("gateway: restart %s on %s: %v", u.id, u.addr, err)
		}
	}
}

func (w *gatewayWorkload) check() counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts
	for _, key := range slices.Sorted(mapKeys(w.errs)) {
		g := w.errs[key]
		what, _, _ := strings.Cut(key, " | ")
		c.Violations += g.n
		c.Notes = append(c.Notes, fmt.Sprintf("%d× %s, from %s to %s (the first %s)", g.n, what, g.first.Format("15:04:05.000"), g.last.Format("15:04:05.000"), g.during))
	}
	c.Notes = append(c.Notes, fmt.Sprintf("%d upstream deaths of %s during the run", w.deaths, upstreamDown))
	return c
}
