package balancer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

var policies = []string{route.LeastRequest, route.RoundRobin, route.RingHash, route.PeakEWMA}

// fakeClock is the injected clock: tests move it by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// in is an instance with a made-up address.
func in(id, zone, version string, weight int) Instance {
	return Instance{ID: id, Address: "10.0.0." + id, Port: 8080, Zone: zone, Version: version, Weight: weight}
}

// weighted returns instances a, b, c, ... with the given weights.
func weighted(weights ...int) []Instance {
	out := make([]Instance, len(weights))
	for i, w := range weights {
		out[i] = in(string(rune('a'+i)), "", "", w)
	}
	return out
}

func newPool(c *fakeClock, ins ...Instance) *Pool {
	p := NewPool(Options{Now: c.Now})
	p.Update(ins)
	return p
}

// byID returns the pool's endpoint with id.
func byID(t testing.TB, p *Pool, id string) *Endpoint {
	t.Helper()
	for _, e := range p.Endpoints() {
		if e.Instance().ID == id {
			return e
		}
	}
	t.Fatalf("no endpoint %q in the pool", id)
	return nil
}

func id(e *Endpoint) string {
	if e == nil {
		return "<nil>"
	}
	return e.Instance().ID
}

func ids(eps []*Endpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = id(e)
	}
	return out
}

// spread picks n times, each request done at once (so nothing stays in
// flight), and counts the picks by ID. Ring-hash requests get distinct keys
// unless the request names one.
func spread(p *Pool, r Request, n int) map[string]int {
	got := map[string]int{}
	for i := range n {
		rr := r
		if rr.Policy == route.RingHash && rr.HashKey == "" {
			rr.HashKey = fmt.Sprintf("key-%d", i)
		}
		e := p.Pick(rr)
		got[id(e)]++
		if e != nil {
			e.Start()
			e.Done(time.Millisecond, false)
		}
	}
	return got
}

// picks counts n picks by ID, starting no request.
func picks(p *Pool, r Request, n int) map[string]int {
	got := map[string]int{}
	for range n {
		got[id(p.Pick(r))]++
	}
	return got
}

// only reports the IDs of got that are not in want.
func only(got map[string]int, want ...string) string {
	var extra []string
	for k := range got {
		if !slices.Contains(want, k) {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	return strings.Join(extra, ",")
}

// fail makes e fail n requests in a row.
func fail(e *Endpoint, n int) {
	for range n {
		e.Start()
		e.Done(time.Millisecond, true)
	}
}
