package scalerbench

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/scaler/hpa"
)

func TestTimelineStats(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }
	point := func(sec, load float64) hpa.Point {
		return hpa.Point{At: at(sec), Metrics: map[string]float64{scalerMetric: load}}
	}
	rep := &seriesReport{start: at(0), end: at(10), target: 10, tol: 0.1,
		points: []hpa.Point{point(-1, 20), point(4, 25), point(5, 20)}}
	var need, tl timeline
	need.set(at(0), 2)
	need.set(at(4), 5)
	need.set(at(8), 2)
	tl.set(at(-1), 2) // before the window: not a change in it
	tl.set(at(0), 2)  // no change: not recorded
	tl.set(at(5), 6)
	tl.set(at(9), 3)
	tl.set(at(12), 1) // after the window
	r := seriesRow{tl: tl}
	r.stats(rep, need)
	// 2 over [0,5), 6 over [5,9), 3 over [9,10): 10 + 24 + 3.
	// Under [4,5): 2 replicas where 5 are needed, and 25 is more than
	// 2 × 10 × 1.1.
	if r.changes != 2 || r.maxReplicas != 6 || r.replicaSeconds != 37 || r.under != time.Second || r.overTolerance != time.Second {
		t.Errorf("stats = %d changes, max %d, %g replica·s, under %v, beyond tolerance %v; want 2, 6, 37, 1s, 1s",
			r.changes, r.maxReplicas, r.replicaSeconds, r.under, r.overTolerance)
	}
	for _, tc := range []struct {
		sec  float64
		want int
	}{{-5, 2}, {0, 2}, {4.99, 2}, {5, 6}, {9, 3}, {20, 1}} {
		if got := tl.value(at(tc.sec)); got != tc.want {
			t.Errorf("value(%gs) = %d, want %d", tc.sec, got, tc.want)
		}
	}
}

func TestAgreement(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	grid := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	var ref, late timeline
	ref.set(grid[0], 2)
	ref.set(grid[1], 4)
	late.set(grid[0], 2)
	late.set(grid[2], 4) // the same change one sync later
	exact, near := agreement(grid, late, ref, time.Second)
	if exact != 0.75 || near != 1 {
		t.Errorf("agreement = %v exact, %v within a sync; want 0.75, 1", exact, near)
	}
}

func TestSeriesLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		sec    float64
		lo, hi float64
	}{{0, 19, 21}, {75, 42.7, 47.3}, {160, 119, 161}, {200, 59.5, 80.5}, {315, 42.7, 47.3}, {599, 19, 21}} {
		for range 100 {
			if v := seriesLoad(tc.sec, rng); v < tc.lo || v > tc.hi {
				t.Fatalf("seriesLoad(%g) = %g, want within [%g, %g]", tc.sec, v, tc.lo, tc.hi)
			}
		}
	}
}
