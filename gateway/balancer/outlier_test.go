package balancer

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

func TestOutlierEjection(t *testing.T) {
	type step struct {
		advance time.Duration
		results string // per request to b: 'x' failed, '.' succeeded
		ejected bool   // b.Ejected() after the step
	}
	const base = 10 * time.Second
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"consecutive failures eject", []step{{0, "xx", false}, {0, "x", true}}},
		{"a success resets the count", []step{{0, "xx.xx", false}, {0, "x", true}}},
		{"back after the base time", []step{{0, "xxx", true}, {base - 1, "", true}, {1, "", false}}},
		{"back but failing needs the full count again", []step{{0, "xxx", true}, {base, "xx", false}, {0, "x", true}}},
		{"second ejection lasts twice as long", []step{
			{0, "xxx", true}, {base, "xxx", true}, {2*base - 1, "", true}, {1, "", false}}},
		{"third lasts three times", []step{
			{0, "xxx", true}, {base, "xxx", true}, {2 * base, "xxx", true}, {3*base - 1, "", true}, {1, "", false}}},
		{"capped at the maximum", []step{
			{0, "xxx", true}, {base, "xxx", true}, {2 * base, "xxx", true}, {3 * base, "xxx", true},
			{35*time.Second - 1, "", true}, {1, "", false}}},
		{"healthy for a while: the multiplier comes down", []step{
			{0, "xxx", true}, {base, "xxx", true}, {2 * base, "", false},
			{base, "xxx", true}, {2*base - 1, "", true}, {1, "", false}}},
		{"healthy for long: back to the base time", []step{
			{0, "xxx", true}, {base, "xxx", true}, {2 * base, "", false},
			{time.Hour, "xxx", true}, {base, "", false}}},
		{"failures while ejected do not extend it", []step{{0, "xxx", true}, {base / 2, "xxxxxx", true}, {base / 2, "", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 3, BaseEjection: base, MaxEjection: 35 * time.Second}})
			p.Update(weighted(1, 1, 1, 1))
			b := byID(t, p, "b")
			for i, s := range tc.steps {
				c.Advance(s.advance)
				for _, r := range s.results {
					b.Start()
					b.Done(time.Millisecond, r == 'x')
				}
				if got := b.Ejected(); got != s.ejected {
					t.Fatalf("step %d (+%v, %q): Ejected() = %v, want %v", i, s.advance, s.results, got, s.ejected)
				}
				got := picks(p, Request{}, 200)
				if picked := got["b"] > 0; picked == s.ejected {
					t.Fatalf("step %d: Pick picked b %d times while Ejected() = %v", i, got["b"], s.ejected)
				}
			}
		})
	}
}

func TestOutlierMaxEjectedShare(t *testing.T) {
	for _, tc := range []struct {
		name      string
		instances int
		share     float64
		want      int // ejected when every instance fails
	}{
		{"default half of 4", 4, 0, 2},
		{"half of 5 rounds down", 5, 0.5, 2},
		{"a small share still allows one", 3, 0.1, 1},
		{"a single instance is never ejected", 1, 1, 0},
		{"all of 3", 3, 1, 3},
		{"0.29 of 100", 100, 0.29, 29},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 2, MaxEjectedShare: tc.share}})
			ws := make([]Instance, tc.instances)
			for i := range ws {
				ws[i] = in(string(rune('A'+i/26))+string(rune('a'+i%26)), "", "", 1)
			}
			p.Update(ws)
			for range 3 {
				for _, e := range p.Endpoints() {
					fail(e, 2)
				}
			}
			got := 0
			for _, e := range p.Endpoints() {
				if e.Ejected() {
					got++
				}
			}
			if got != tc.want {
				t.Errorf("%d of %d instances ejected (share %v), want %d", got, tc.instances, tc.share, tc.want)
			}
			// Refused ejections keep counting: once one returns another may go.
			if tc.want > 0 && tc.want < tc.instances {
				c.Advance(30 * time.Second)
				var next *Endpoint
				for _, e := range p.Endpoints() {
					if !e.Ejected() {
						next = e
						break
					}
				}
				for _, e := range p.Endpoints() {
					if e != next && !e.Ejected() {
						e.Start()
						e.Done(time.Millisecond, false)
					}
				}
				fail(next, 1)
				if !next.Ejected() {
					t.Errorf("%s.Ejected() after the ejections expired and one more failure = false, want true", id(next))
				}
			}
		})
	}
}

// Every instance ejected: Envoy's panic mode balances across them anyway.
func TestPanicMode(t *testing.T) {
	for _, policy := range policies {
		t.Run(policy, func(t *testing.T) {
			c := newClock()
			p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 1, MaxEjectedShare: 1}})
			p.Update(weighted(1, 1, 1))
			for _, e := range p.Endpoints() {
				fail(e, 1)
				if !e.Ejected() {
					t.Fatalf("%s.Ejected() = false, want true", id(e))
				}
			}
			got := spread(p, Request{Policy: policy}, 300)
			if got["<nil>"] > 0 {
				t.Fatalf("Pick with every instance ejected = nil %d times, want an instance", got["<nil>"])
			}
			if policy != route.RingHash && len(got) != 3 {
				t.Errorf("Pick in panic mode picked %v, want all three", got)
			}
			a := byID(t, p, "a")
			if e := p.Pick(Request{Policy: policy, HashKey: "k", Exclude: []*Endpoint{a}}); e == a {
				t.Errorf("Pick(exclude a) in panic mode = a, want another")
			}
		})
	}
}

// An excluded instance that is not ejected beats an ejected one.
func TestPickExcludedBeforeEjected(t *testing.T) {
	for _, policy := range policies {
		c := newClock()
		p := NewPool(Options{Now: c.Now, Outlier: Outlier{Consecutive: 1}})
		p.Update(weighted(1, 1))
		a, b := byID(t, p, "a"), byID(t, p, "b")
		fail(a, 1)
		if e := p.Pick(Request{Policy: policy, HashKey: "k", Exclude: []*Endpoint{b}}); e != b {
			t.Errorf("Pick(%s, a ejected, b excluded) = %s, want b", policy, id(e))
		}
	}
}
