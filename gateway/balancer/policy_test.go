package balancer

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

func TestPickSpread(t *testing.T) {
	const picks = 10_000
	for _, tc := range []struct {
		name    string
		policy  string
		weights []int
		// tolerance is the largest allowed gap between an instance's share
		// of the picks and its share of the weight, in percentage points.
		// Random draws: 3 points is 6σ of a share of 10 000 picks.
		tolerance float64
	}{
		{"least-request equal", route.LeastRequest, []int{1, 1, 1, 1}, 3},
		{"least-request weighted", route.LeastRequest, []int{1, 2, 3, 4}, 3},
		{"least-request default policy", "", []int{1, 2, 3, 4}, 3},
		{"least-request zero weight is 1", route.LeastRequest, []int{0, 1}, 3},
		{"round-robin equal", route.RoundRobin, []int{1, 1, 1, 1}, 0},
		{"round-robin weighted", route.RoundRobin, []int{1, 2, 3, 4}, 0},
		// An instance's share of a ring of 100 nodes per instance strays
		// from its weight's by about 1/√100 = 10% (σ): 2.5 points of 25%.
		{"ring-hash equal", route.RingHash, []int{1, 1, 1, 1}, 7.5},
		{"ring-hash weighted", route.RingHash, []int{1, 2, 3, 4}, 7.5},
		{"peak-ewma equal", route.PeakEWMA, []int{1, 1, 1, 1}, 3},
		{"peak-ewma weighted", route.PeakEWMA, []int{1, 2, 3, 4}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(newClock(), weighted(tc.weights...)...)
			got := spread(p, Request{Policy: tc.policy}, picks)
			var total int
			for _, w := range tc.weights {
				total += max(w, 1)
			}
			for i, w := range tc.weights {
				name := string(rune('a' + i))
				share := 100 * float64(got[name]) / picks
				want := 100 * float64(max(w, 1)) / float64(total)
				if math.Abs(share-want) > tc.tolerance {
					t.Errorf("share of %s = %.1f%%, want %.1f%% ± %.0f (picks %v)", name, share, want, tc.tolerance, got)
				}
			}
		})
	}
}

// Under load least-request evens out the requests in flight per unit of
// weight: picks are held open, never done.
func TestLeastRequestBalancesInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		policy  string
		weights []int
	}{
		{"least-request equal", route.LeastRequest, []int{1, 1, 1, 1}},
		{"least-request weighted", route.LeastRequest, []int{1, 3}},
		{"peak-ewma unsampled equal", route.PeakEWMA, []int{1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(newClock(), weighted(tc.weights...)...)
			for range 1000 {
				p.Pick(Request{Policy: tc.policy}).Start()
			}
			var total int
			for _, w := range tc.weights {
				total += w
			}
			for i, e := range p.Endpoints() {
				want := 1000 * float64(tc.weights[i]) / float64(total)
				if got := float64(e.InFlight()); math.Abs(got-want) > 0.05*want {
					t.Errorf("%s.InFlight() = %v, want %.0f ± 5%%", id(e), got, want)
				}
			}
		})
	}
}

func TestRoundRobinSequence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		weights []int
		ejected string
		want    string
	}{
		{"nginx example 5 1 1", []int{5, 1, 1}, "", "aabacaa aabacaa"},
		{"equal", []int{1, 1, 1}, "", "abc abc"},
		{"2 1", []int{2, 1}, "", "aba aba"},
		{"one ejected keeps the others smooth", []int{5, 1, 1}, "a", "bc bc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 1}})
			p.Update(weighted(tc.weights...))
			if tc.ejected != "" {
				fail(byID(t, p, tc.ejected), 1)
			}
			var b strings.Builder
			for _, want := range tc.want {
				if want == ' ' {
					b.WriteRune(' ')
					continue
				}
				b.WriteString(id(p.Pick(Request{Policy: route.RoundRobin})))
			}
			if got := b.String(); got != tc.want {
				t.Errorf("Pick(round-robin) sequence = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRoundRobinUpdateStartsOver(t *testing.T) {
	p := newPool(newClock(), weighted(5, 1, 1)...)
	rr := Request{Policy: route.RoundRobin}
	p.Pick(rr)
	p.Pick(rr)
	p.Update(weighted(5, 1, 1))
	var got string
	for range 7 {
		got += id(p.Pick(rr))
	}
	if want := "aabacaa"; got != want {
		t.Errorf("Pick(round-robin) after Update = %q, want %q", got, want)
	}
}

func TestRingHashSticky(t *testing.T) {
	p := newPool(newClock(), weighted(1, 1, 1, 1, 1)...)
	for k := range 1000 {
		key := fmt.Sprintf("user-%d", k)
		first := p.Pick(Request{Policy: route.RingHash, HashKey: key})
		for range 5 {
			e := p.Pick(Request{Policy: route.RingHash, HashKey: key})
			e.Start()
			e.Done(time.Millisecond, false)
			if e != first {
				t.Fatalf("Pick(ring-hash, %q) = %s, want %s as before", key, id(e), id(first))
			}
		}
	}
}

func TestRingHashMinimalMovement(t *testing.T) {
	const keys = 10_000
	place := func(p *Pool) map[string]string {
		out := map[string]string{}
		for k := range keys {
			key := fmt.Sprintf("session-%d", k)
			out[key] = id(p.Pick(Request{Policy: route.RingHash, HashKey: key}))
		}
		return out
	}
	for _, tc := range []struct {
		name          string
		before, after []Instance
		// moved is the only ID a key may leave (removal) or join (addition).
		removed, added string
	}{
		{"remove one", weighted(1, 1, 1, 1, 1), weighted(1, 1, 1, 1, 1)[:4], "e", ""},
		{"remove one in the middle", weighted(1, 1, 1, 1, 1), append(weighted(1, 1), weighted(1, 1, 1, 1, 1)[3:]...), "c", ""},
		{"add one", weighted(1, 1, 1, 1), weighted(1, 1, 1, 1, 1), "", "e"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPool(newClock(), tc.before...)
			before := place(p)
			p.Update(tc.after)
			after := place(p)
			moved := 0
			for key, was := range before {
				now := after[key]
				if was == now {
					continue
				}
				moved++
				if was != tc.removed && now != tc.added {
					t.Errorf("Pick(ring-hash, %q) = %s, want %s as before the update", key, now, was)
				}
			}
			if moved < keys/10 || moved > keys*3/10 {
				t.Errorf("%d of %d keys moved, want about a fifth", moved, keys)
			}
		})
	}
}

// One hot key, its requests held open: the key's home endpoint fills up to
// the bound and the rest spill clockwise; no endpoint ever carries more than
// ceil(1.25 × total / n).
func TestRingHashBoundedLoad(t *testing.T) {
	p := newPool(newClock(), weighted(1, 1, 1, 1)...)
	hot := Request{Policy: route.RingHash, HashKey: "hot"}
	home := p.Pick(hot)
	var held []*Endpoint
	for total := 1; total <= 200; total++ {
		e := p.Pick(hot)
		e.Start()
		held = append(held, e)
		bound := int64(math.Ceil(1.25 * float64(total) / 4))
		for _, x := range p.Endpoints() {
			if x.InFlight() > bound {
				t.Fatalf("after %d picks %s.InFlight() = %d, want at most ceil(1.25×%d/4) = %d", total, id(x), x.InFlight(), total, bound)
			}
		}
	}
	if got, want := home.InFlight(), int64(63); got != want {
		t.Errorf("home %s.InFlight() = %d, want the bound %d", id(home), got, want)
	}
	for _, e := range held {
		e.Done(time.Millisecond, false)
	}
	if e := p.Pick(hot); e != home {
		t.Errorf("Pick(ring-hash, hot) once idle = %s, want its home %s", id(e), id(home))
	}
}

func TestRingHashWithoutKeyIsLeastRequest(t *testing.T) {
	p := newPool(newClock(), weighted(1, 1)...)
	a := byID(t, p, "a")
	a.Start()
	a.Start()
	for range 100 {
		if e := p.Pick(Request{Policy: route.RingHash}); e != byID(t, p, "b") {
			t.Fatalf("Pick(ring-hash, no key) = %s, want the idle b", id(e))
		}
	}
}

func TestRingHashExcludeWalksOn(t *testing.T) {
	p := newPool(newClock(), weighted(1, 1, 1, 1, 1)...)
	for k := range 100 {
		r := Request{Policy: route.RingHash, HashKey: fmt.Sprint(k)}
		home := p.Pick(r)
		r.Exclude = []*Endpoint{home}
		next := p.Pick(r)
		if next == home || next == nil {
			t.Fatalf("Pick(ring-hash, %q, exclude %s) = %s, want another", r.HashKey, id(home), id(next))
		}
		if again := p.Pick(r); again != next {
			t.Fatalf("Pick(ring-hash, %q, exclude %s) = %s, want %s as before", r.HashKey, id(home), id(again), id(next))
		}
	}
}

func TestPeakEWMA(t *testing.T) {
	c := newClock()
	p := newPool(c, weighted(1, 1)...)
	a, b := byID(t, p, "a"), byID(t, p, "b")
	latency := map[*Endpoint]time.Duration{a: time.Millisecond, b: 100 * time.Millisecond}
	pick := func() *Endpoint {
		e := p.Pick(Request{Policy: route.PeakEWMA})
		e.Start()
		e.Done(latency[e], false)
		return e
	}
	// Both get a first sample, in whatever order.
	for a.EWMA() == 0 || b.EWMA() == 0 {
		pick()
	}

	// Prefers the fast one.
	for range 100 {
		if e := pick(); e != a {
			t.Fatalf("Pick(peak-ewma) = %s, want the fast a (a %v, b %v)", id(e), a.EWMA(), b.EWMA())
		}
	}

	// b gets no samples, so its estimate decays toward 0 while a's, sampled
	// every second, stays near 1ms (e^−0.1ms when compared, a second after
	// its sample): 100ms·e^(−t/10s) < 0.905ms once t > 47.05s.
	var back time.Duration
	for elapsed := time.Second; elapsed <= 60*time.Second; elapsed += time.Second {
		c.Advance(time.Second)
		if pick() == b {
			back = elapsed
			break
		}
	}
	if back != 48*time.Second {
		t.Errorf("b picked again after %v of decay, want 48s", back)
	}
	// Still slow: the estimate jumps back up and a wins again.
	if got, want := b.EWMA(), 100*time.Millisecond; got != want {
		t.Errorf("b.EWMA() after a slow sample = %v, want %v", got, want)
	}
	if e := pick(); e != a {
		t.Errorf("Pick(peak-ewma) = %s, want a", id(e))
	}
}

func TestPeakEWMAEstimate(t *testing.T) {
	type sample struct {
		after   time.Duration // clock advance before the sample
		latency time.Duration
		failed  bool
		want    time.Duration // EWMA() after it
	}
	ms := time.Millisecond
	for _, tc := range []struct {
		name    string
		samples []sample
	}{
		{"first sample is the estimate", []sample{{0, 10 * ms, false, 10 * ms}}},
		{"peak jumps up at once", []sample{{0, ms, false, ms}, {0, 50 * ms, false, 50 * ms}}},
		{"a lower sample at once moves nothing", []sample{{0, 50 * ms, false, 50 * ms}, {0, ms, false, 50 * ms}}},
		// 50·e^−1 + 1·(1 − e^−1) = 19.026ms
		{"a lower sample after τ", []sample{{0, 50 * ms, false, 50 * ms}, {10 * time.Second, ms, false, 19026 * time.Microsecond}}},
		{"decays toward 0 between samples", []sample{{0, 50 * ms, false, 50 * ms}, {10 * time.Second, 0, true, 18394 * time.Microsecond}}},
		{"a fast failure does not lower it", []sample{{0, 50 * ms, false, 50 * ms}, {0, ms, true, 50 * ms}}},
		{"a slow failure raises it", []sample{{0, ms, false, ms}, {0, 2 * time.Second, true, 2 * time.Second}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := newPool(c, weighted(1)...)
			e := p.Endpoints()[0]
			if got := e.EWMA(); got != 0 {
				t.Fatalf("EWMA() before any sample = %v, want 0", got)
			}
			for i, s := range tc.samples {
				c.Advance(s.after)
				e.Start()
				e.Done(s.latency, s.failed)
				// The estimate's clock ticks every 1.05ms: decay over 10s
				// is off by up to 10⁻⁴.
				if got := e.EWMA(); (got - s.want).Abs() > s.want/5000 {
					t.Errorf("after sample %d EWMA() = %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// A new endpoint is tried at once, but gets one request at a time until it
// has answered.
func TestPeakEWMANewEndpoint(t *testing.T) {
	p := newPool(newClock(), weighted(1)...)
	a := byID(t, p, "a")
	a.Start()
	a.Done(time.Millisecond, false)
	p.Update(weighted(1, 1))
	b := byID(t, p, "b")
	r := Request{Policy: route.PeakEWMA}
	if e := p.Pick(r); e != b {
		t.Fatalf("Pick(peak-ewma) = %s, want the new b", id(e))
	}
	b.Start()
	for range 10 {
		if e := p.Pick(r); e != a {
			t.Fatalf("Pick(peak-ewma) with b's first request in flight = %s, want a", id(e))
		}
	}
	b.Done(time.Millisecond/2, false)
	if e := p.Pick(r); e != b {
		t.Errorf("Pick(peak-ewma) once b answered faster = %s, want b", id(e))
	}
}

// The precomputed schedule (every member a candidate) and nginx's loop
// (some member excluded, here one from another pool so that nobody really
// is) give the same sequence, and every member gets exactly its weight per
// period; the last case's period is too long to precompute.
func TestRoundRobinScheduleIsNginxLoop(t *testing.T) {
	stranger := newPool(newClock(), weighted(1)...).Endpoints()
	long := make([]int, 12)
	for i := range long {
		long[i] = 1000 - i
	}
	for _, weights := range [][]int{{1}, {5, 1, 1}, {2, 2, 4}, {3, 7, 11, 13}, {1000, 1, 500}, long} {
		t.Run(fmt.Sprint(weights), func(t *testing.T) {
			fast := newPool(newClock(), weighted(weights...)...)
			slow := newPool(newClock(), weighted(weights...)...)
			var total int
			for _, w := range weights {
				total += w
			}
			got := map[string]int{}
			for k := range 2 * total {
				f := fast.Pick(Request{Policy: route.RoundRobin})
				s := slow.Pick(Request{Policy: route.RoundRobin, Exclude: stranger})
				if id(f) != id(s) {
					t.Fatalf("pick %d: Pick(round-robin) = %s, want %s as nginx's loop", k, id(f), id(s))
				}
				got[id(f)]++
			}
			for i, w := range weights {
				if n := got[string(rune('a'+i))]; n != 2*w {
					t.Errorf("%c picked %d times in two periods, want %d", 'a'+i, n, 2*w)
				}
			}
		})
	}
}

// The estimates' stamps wrap every 2⁵¹ns (26 days); comparisons across the
// wrap still see a 10-second gap.
func TestPeakEWMAAcrossStampWrap(t *testing.T) {
	c := newClock()
	p := newPool(c, weighted(1, 1)...)
	a, b := byID(t, p, "a"), byID(t, p, "b")
	c.Advance(1<<51 - 5*time.Second)
	a.Start()
	a.Done(10*time.Millisecond, false)
	c.Advance(10 * time.Second)
	b.Start()
	b.Done(5*time.Millisecond, false)
	// a: 10ms·e^−1 = 3.7ms now, below b's 5ms.
	if got, want := a.EWMA(), 3679*time.Microsecond; (got - want).Abs() > time.Microsecond*5 {
		t.Errorf("a.EWMA() across the wrap = %v, want %v", got, want)
	}
	for range 10 {
		if e := p.Pick(Request{Policy: route.PeakEWMA}); e != a {
			t.Fatalf("Pick(peak-ewma) across the wrap = %s, want a (a %v, b %v)", id(e), a.EWMA(), b.EWMA())
		}
	}
}
