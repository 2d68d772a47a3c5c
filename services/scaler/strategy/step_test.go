package strategy_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stewardhq/steward/services/scaler/strategy"
)

// set builds instances: o old available, u old unavailable, n new
// available, m new unavailable, d draining; ids say which.
func set(o, u, n, m, d int) []strategy.Instance {
	var in []strategy.Instance
	add := func(k int, prefix string, isNew, avail, drain bool) {
		for i := range k {
			in = append(in, strategy.Instance{ID: fmt.Sprintf("%s%d", prefix, i), New: isNew, Available: avail, Draining: drain})
		}
	}
	add(d, "d", false, false, true)
	add(o, "o", false, true, false)
	add(u, "u", false, false, false)
	add(n, "n", true, true, false)
	add(m, "m", true, false, false)
	return in
}

func TestStep(t *testing.T) {
	b := func(r, s, u int) strategy.Bounds { return strategy.Bounds{Replicas: r, MaxSurge: s, MaxUnavailable: u} }
	for _, tt := range []struct {
		name   string
		bounds strategy.Bounds
		in     []strategy.Instance
		want   strategy.Plan
	}{
		{"start: surge one, take one old", b(4, 1, 1), set(4, 0, 0, 0, 0), strategy.Plan{Start: 1, Stop: []string{"o0"}}},
		{"wait for the new one to be available", b(4, 1, 1), set(3, 0, 0, 1, 1), strategy.Plan{}},
		{"the new one is available", b(4, 1, 1), set(3, 0, 1, 0, 0), strategy.Plan{Start: 1, Stop: []string{"o0"}}},
		{"no unavailability: surge first", b(1, 1, 0), set(1, 0, 0, 0, 0), strategy.Plan{Start: 1}},
		{"no unavailability: then stop", b(1, 1, 0), set(1, 0, 1, 0, 0), strategy.Plan{Stop: []string{"o0"}}},
		{"no surge: stop first", b(3, 0, 1), set(3, 0, 0, 0, 0), strategy.Plan{Stop: []string{"o0"}}},
		{"no surge: start into the room", b(3, 0, 1), set(2, 0, 0, 0, 1), strategy.Plan{}},
		{"no surge: started after the stop", b(3, 0, 1), set(2, 0, 0, 0, 0), strategy.Plan{Start: 1}},
		{"defaults for 10", b(10, 3, 2), set(10, 0, 0, 0, 0), strategy.Plan{Start: 3, Stop: []string{"o0", "o1"}}},
		{"unavailable old go first", b(4, 1, 1), set(2, 2, 0, 0, 0), strategy.Plan{Start: 1, Stop: []string{"u0"}}},
		{"done", b(2, 1, 0), set(0, 0, 2, 0, 0), strategy.Plan{Done: true}},
		{"not done while draining", b(2, 1, 0), set(0, 0, 2, 0, 1), strategy.Plan{}},
		{"scaled down mid-rollout", b(2, 1, 0), set(1, 0, 3, 0, 0), strategy.Plan{Stop: []string{"o0", "n2"}}},
		{"excess new not available go", b(2, 1, 0), set(0, 0, 2, 2, 0), strategy.Plan{Stop: []string{"m1", "m0"}}},
		{"scaled to zero", b(0, 0, 1), set(2, 0, 0, 0, 0), strategy.Plan{Stop: []string{"o0", "o1"}}},
		{"nothing running", b(3, 1, 0), nil, strategy.Plan{Start: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strategy.Step(tt.bounds, tt.in)
			if got.Start != tt.want.Start || got.Done != tt.want.Done || !slices.Equal(got.Stop, tt.want.Stop) {
				t.Errorf("Step(%+v) = %+v, want %+v", tt.bounds, got, tt.want)
			}
		})
	}
}

// TestStepHoldsBounds runs whole rolling updates, one step at a time,
// with new instances becoming available one step after they start and
// stopped ones gone one step after they drain: at no point may more than
// Replicas+MaxSurge run or fewer than Replicas−MaxUnavailable be
// available, and every update must finish.
func TestStepHoldsBounds(t *testing.T) {
	for r := 0; r <= 12; r++ {
		for _, sb := range [][2]string{{"25%", "25%"}, {"1", "0"}, {"0", "1"}, {"100%", "0%"}, {"0%", "50%"}, {"3", "3"}} {
			var s strategy.Spec
			spec := fmt.Sprintf(`{"rollingUpdate":{"maxSurge":%s,"maxUnavailable":%s}}`, quote(sb[0]), quote(sb[1]))
			if err := unmarshal(spec, &s); err != nil {
				t.Fatal(err)
			}
			b := s.Resolve(r)
			in := set(r, 0, 0, 0, 0)
			seq := 0
			for step := 0; ; step++ {
				if step > 10*r+10 {
					t.Fatalf("%s, %d replicas: not done after %d steps: %+v", spec, r, step, in)
				}
				p := strategy.Step(b, in)
				if p.Done {
					break
				}
				// Draining ones stop; not-available new ones become
				// available; the plan's stops drain, its starts start.
				next := in[:0:0]
				for _, i := range in {
					switch {
					case i.Draining:
						continue
					case slices.Contains(p.Stop, i.ID):
						i.Draining, i.Available = true, false
					case i.New:
						i.Available = true
					}
					next = append(next, i)
				}
				for range p.Start {
					seq++
					next = append(next, strategy.Instance{ID: fmt.Sprintf("x%d", seq), New: true})
				}
				avail := 0
				for _, i := range next {
					if i.Available {
						avail++
					}
				}
				if len(next) > r+b.MaxSurge {
					t.Fatalf("%s, %d replicas, step %d: %d running, over %d+%d", spec, r, step, len(next), r, b.MaxSurge)
				}
				if avail < r-b.MaxUnavailable {
					t.Fatalf("%s, %d replicas, step %d: %d available, under %d-%d", spec, r, step, avail, r, b.MaxUnavailable)
				}
				in = next
			}
		}
	}
}
