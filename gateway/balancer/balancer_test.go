package balancer

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

func TestPickZone(t *testing.T) {
	instances := []Instance{
		in("a1", "zone-a", "", 1), in("a2", "zone-a", "", 1),
		in("b1", "zone-b", "", 1), in("n1", "", "", 1),
	}
	for _, tc := range []struct {
		name       string
		poolZone   string
		zone       string
		ejected    []string // with share 1, so all of them are
		excludeIDs []string
		want       []string // the only IDs picked
	}{
		{"pool zone", "zone-a", "", nil, nil, []string{"a1", "a2"}},
		{"request zone over pool zone", "zone-a", "zone-b", nil, nil, []string{"b1"}},
		{"request zone without pool zone", "", "zone-b", nil, nil, []string{"b1"}},
		{"no zone: all", "", "", nil, nil, []string{"a1", "a2", "b1", "n1"}},
		{"zone with no instance: all", "", "zone-x", nil, nil, []string{"a1", "a2", "b1", "n1"}},
		{"zone all ejected: other zones", "zone-a", "", []string{"a1", "a2"}, nil, []string{"b1", "n1"}},
		{"zone one ejected: the rest of it", "zone-a", "", []string{"a1"}, nil, []string{"a2"}},
		{"zone all excluded: other zones", "zone-a", "", nil, []string{"a1", "a2"}, []string{"b1", "n1"}},
		{"everything excluded: still the zone", "zone-b", "", nil, []string{"a1", "a2", "b1", "n1"}, []string{"b1"}},
	} {
		for _, policy := range policies {
			t.Run(tc.name+"/"+policy, func(t *testing.T) {
				p := NewPool(Options{Zone: tc.poolZone, Now: newClock().Now,
					Outlier: Outlier{Consecutive: 1, MaxEjectedShare: 1}})
				p.Update(instances)
				for _, x := range tc.ejected {
					fail(byID(t, p, x), 1)
				}
				var exclude []*Endpoint
				for _, x := range tc.excludeIDs {
					exclude = append(exclude, byID(t, p, x))
				}
				got := spread(p, Request{Policy: policy, Zone: tc.zone, Exclude: exclude}, 1000)
				if extra := only(got, tc.want...); extra != "" {
					t.Errorf("Pick(zone %q) picked %s, want only %v (picks %v)", tc.zone, extra, tc.want, got)
				}
				if len(tc.want) > 1 && policy != route.RingHash {
					for _, w := range tc.want {
						if got[w] == 0 {
							t.Errorf("Pick(zone %q) never picked %s (picks %v)", tc.zone, w, got)
						}
					}
				}
			})
		}
	}
}

func TestPickVersion(t *testing.T) {
	instances := []Instance{
		in("a", "zone-a", "v1", 1), in("b", "zone-b", "v1", 1),
		in("c", "zone-a", "v2", 1), in("d", "zone-b", "v2", 1), in("e", "zone-b", "", 1),
	}
	for _, tc := range []struct {
		name, version, zone string
		want                []string
	}{
		{"any", "", "", []string{"a", "b", "c", "d", "e"}},
		{"v1", "v1", "", []string{"a", "b"}},
		{"v2", "v2", "", []string{"c", "d"}},
		{"v2 in zone-b", "v2", "zone-b", []string{"d"}},
		{"v1 in a zone without v1", "v1", "zone-x", []string{"a", "b"}},
		{"unknown version", "v3", "", []string{"<nil>"}},
	} {
		for _, policy := range policies {
			t.Run(tc.name+"/"+policy, func(t *testing.T) {
				p := newPool(newClock(), instances...)
				got := spread(p, Request{Policy: policy, Version: tc.version, Zone: tc.zone}, 500)
				if extra := only(got, tc.want...); extra != "" {
					t.Errorf("Pick(version %q, zone %q) picked %s, want only %v", tc.version, tc.zone, extra, tc.want)
				}
			})
		}
	}
	p := newPool(newClock(), instances...)
	if got, want := p.Versions(), []string{"v1", "v2"}; !slices.Equal(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
	for v, want := range map[string]bool{"v1": true, "v2": true, "v3": false, "": false} {
		if got := p.HasVersion(v); got != want {
			t.Errorf("HasVersion(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestPickExclude(t *testing.T) {
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			p := newPool(newClock(), weighted(1, 1, 1)...)
			a, b, c := byID(t, p, "a"), byID(t, p, "b"), byID(t, p, "c")
			for k := range 300 {
				r := Request{Policy: policy, HashKey: fmt.Sprint(k), Exclude: []*Endpoint{a}}
				if e := p.Pick(r); e == a {
					t.Fatalf("Pick(exclude a) = a, want b or c")
				}
				r.Exclude = []*Endpoint{a, c}
				if e := p.Pick(r); e != b {
					t.Fatalf("Pick(exclude a, c) = %s, want b", id(e))
				}
			}
			// All tried: the least loaded one is tried again.
			a.Start()
			a.Start()
			c.Start()
			r := Request{Policy: policy, HashKey: "k", Exclude: []*Endpoint{a, b, c}}
			if e := p.Pick(r); e != b {
				t.Errorf("Pick(exclude all; in flight a 2, b 0, c 1) = %s, want b", id(e))
			}
		})
	}
}

func TestPickEmpty(t *testing.T) {
	p := NewPool(Options{})
	for _, policy := range policies {
		if e := p.Pick(Request{Policy: policy, HashKey: "k"}); e != nil {
			t.Errorf("Pick(%s) on an empty pool = %s, want nil", policy, id(e))
		}
	}
	if p.Len() != 0 || len(p.Endpoints()) != 0 || len(p.Versions()) != 0 {
		t.Errorf("empty pool: Len() = %d, Endpoints() = %v, Versions() = %v, want nothing", p.Len(), ids(p.Endpoints()), p.Versions())
	}
	p.Update(weighted(1))
	p.Update(nil)
	if e := p.Pick(Request{}); e != nil {
		t.Errorf("Pick() after Update(nil) = %s, want nil", id(e))
	}
}

func TestUpdate(t *testing.T) {
	c := newClock()
	p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 1, MaxEjectedShare: 1}})
	p.Update([]Instance{in("c", "", "", 1), in("a", "", "", 1), in("b", "", "", 1)})
	if got, want := ids(p.Endpoints()), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Endpoints() = %v, want %v sorted by ID", got, want)
	}
	a, b, c0 := byID(t, p, "a"), byID(t, p, "b"), byID(t, p, "c")
	a.Start()
	a.Start()
	a.Done(20*time.Millisecond, false)
	fail(b, 1)
	c0.Start()

	moved := in("a", "zone-x", "v2", 7)
	moved.Address, moved.Port = "::1", 9090
	p.Update([]Instance{moved, in("b", "", "", 1), in("d", "", "", 1)})

	if got := byID(t, p, "a"); got != a {
		t.Fatalf("a after Update is a new *Endpoint, want the same one")
	}
	if got, want := a.InFlight(), int64(1); got != want {
		t.Errorf("a.InFlight() after Update = %d, want %d", got, want)
	}
	if got, want := a.EWMA(), 20*time.Millisecond; got != want {
		t.Errorf("a.EWMA() after Update = %v, want %v", got, want)
	}
	if got, want := a.HostPort(), "[::1]:9090"; got != want {
		t.Errorf("a.HostPort() after Update = %q, want %q", got, want)
	}
	if got, want := a.Instance(), moved; got != want {
		t.Errorf("a.Instance() after Update = %+v, want %+v", got, want)
	}
	if !byID(t, p, "b").Ejected() {
		t.Errorf("b.Ejected() after Update = false, want the ejection kept")
	}
	if got, want := ids(p.Endpoints()), []string{"a", "b", "d"}; !slices.Equal(got, want) {
		t.Errorf("Endpoints() = %v, want %v", got, want)
	}
	if got, want := p.Versions(), []string{"v2"}; !slices.Equal(got, want) {
		t.Errorf("Versions() = %v, want %v", got, want)
	}
	if e := p.Pick(Request{Version: "v2"}); e != a {
		t.Errorf("Pick(version v2) = %s, want a with its new version", id(e))
	}

	// c left and comes back: a fresh endpoint. Its old one may still see
	// Done from a request in flight, harmlessly.
	p.Update([]Instance{in("a", "", "", 1), in("c", "", "", 1)})
	if got := byID(t, p, "c"); got == c0 || got.InFlight() != 0 {
		t.Errorf("c back after removal: same endpoint %v, InFlight() = %d, want a fresh one", got == c0, got.InFlight())
	}
	c0.Done(time.Second, true)
	if c0.Ejected() {
		t.Errorf("removed c.Ejected() after a failure = true, want removed endpoints left alone")
	}
	// b left while ejected: nothing remains ejected, so Pick is back on its
	// fast path.
	if n := p.ejected.Load(); n != 0 {
		t.Errorf("pool counts %d ejected endpoints, want 0", n)
	}
}

func TestUpdateNormalizes(t *testing.T) {
	p := newPool(newClock(),
		Instance{Address: "10.0.0.1", Port: 80, Weight: 0},
		Instance{Address: "10.0.0.2", Port: 80, Weight: 5000},
		Instance{ID: "x", Address: "10.0.0.3", Port: 80, Weight: 2},
		Instance{ID: "x", Address: "10.0.0.4", Port: 80, Weight: -3},
	)
	var got []string
	for _, e := range p.Endpoints() {
		got = append(got, fmt.Sprintf("%s %s %d", e.Instance().ID, e.HostPort(), e.Instance().Weight))
	}
	want := []string{" 10.0.0.1:80 1", " 10.0.0.2:80 1000", "x 10.0.0.4:80 1"}
	if !slices.Equal(got, want) {
		t.Errorf("Endpoints() = %q, want %q", got, want)
	}
}

func TestPickAllocs(t *testing.T) {
	p := newPool(newClock(), weighted(1, 2, 3, 4, 5, 6, 7, 8)...)
	a := byID(t, p, "a")
	for _, r := range []Request{
		{Policy: route.LeastRequest},
		{Policy: route.RoundRobin},
		{Policy: route.PeakEWMA},
		{Policy: route.RingHash, HashKey: "user-42"},
		{Policy: route.LeastRequest, Exclude: []*Endpoint{a}},
		{Policy: route.RoundRobin, Exclude: []*Endpoint{a}},
		{Policy: route.PeakEWMA, Exclude: []*Endpoint{a}},
		{Policy: route.RingHash, HashKey: "user-42", Exclude: []*Endpoint{a}},
		{Policy: route.LeastRequest, Version: "none"},
	} {
		p.Pick(r) // builds the ring
		if n := testing.AllocsPerRun(1000, func() { p.Pick(r) }); n != 0 {
			t.Errorf("Pick(%s, exclude %d) allocates %v times, want 0", r.Policy, len(r.Exclude), n)
		}
	}
	if n := testing.AllocsPerRun(1000, func() { _ = a.HostPort() }); n != 0 {
		t.Errorf("HostPort() allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { a.Start(); a.Done(time.Millisecond, false) }); n != 0 {
		t.Errorf("Start, Done allocate %v times, want 0", n)
	}
}

// Many goroutines pick, start and finish requests, some failing, while the
// instance set changes under them; run with -race. At the end every request
// is done, so nothing is left in flight anywhere.
func TestConcurrent(t *testing.T) {
	c := newClock()
	p := NewPool(Options{Now: c.Now, Zone: "z1", Outlier: Outlier{Consecutive: 3, BaseEjection: time.Second}})
	sets := [][]Instance{
		{in("a", "z1", "v1", 1), in("b", "z2", "v1", 2), in("c", "z1", "v2", 3)},
		{in("a", "z1", "v1", 1), in("c", "z2", "v2", 1), in("d", "z1", "v1", 5), in("e", "", "", 1)},
		{in("b", "z1", "v2", 1)},
	}
	p.Update(sets[0])

	var (
		mu   sync.Mutex
		seen = map[*Endpoint]bool{}
	)
	var workers, updater sync.WaitGroup
	stop := make(chan struct{})
	updater.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p.Update(sets[i%len(sets)])
			c.Advance(100 * time.Millisecond)
			for _, e := range p.Endpoints() {
				e.Ejected()
				e.EWMA()
			}
			p.Versions()
			runtime.Gosched()
		}
	})
	for g := range 8 {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			local := map[*Endpoint]bool{}
			var held []*Endpoint
			for i := range 5000 {
				r := Request{Policy: policies[i%len(policies)], HashKey: fmt.Sprint(i % 50)}
				if i%3 == 0 {
					r.Version = "v1"
				}
				if len(held) > 0 && i%5 == 0 {
					r.Exclude = held[len(held)-1:]
				}
				e := p.Pick(r)
				if e == nil {
					continue
				}
				local[e] = true
				e.Start()
				_ = e.HostPort()
				held = append(held, e)
				if len(held) > 4 {
					e, held = held[0], held[1:]
					e.Done(time.Duration(rng.IntN(20))*time.Millisecond, rng.IntN(10) == 0)
				}
			}
			for _, e := range held {
				e.Done(time.Millisecond, false)
			}
			mu.Lock()
			for e := range local {
				seen[e] = true
			}
			mu.Unlock()
		})
	}
	workers.Wait()
	close(stop)
	updater.Wait()

	if len(seen) < 5 {
		t.Errorf("picked %d distinct endpoints, want every one of the 5 instances at least", len(seen))
	}
	for e := range seen {
		if n := e.InFlight(); n != 0 {
			t.Errorf("%s.InFlight() = %d after every request is done, want 0", id(e), n)
		}
	}
}
