package scalerbench

import (
	"testing"
	"time"
)

// hpaDefaults is the HPA's default behaviour (autoscaling/v2): scale up
// at once by 4 pods or 100 % per 15 s, whichever is more; scale down by
// up to 100 % per 15 s after a 300 s window.
func hpaDefaults(minR, maxR int, target float64) hpaSpec {
	return hpaSpec{minReplicas: minR, maxReplicas: maxR, target: target, tolerance: 0.1,
		up: hpaRules{selectPolicy: "Max", policies: []hpaPolicy{
			{value: 4, period: 15 * time.Second}, {percent: true, value: 100, period: 15 * time.Second}}},
		down: hpaRules{window: 300 * time.Second, selectPolicy: "Max", policies: []hpaPolicy{
			{percent: true, value: 100, period: 15 * time.Second}}}}
}

// TestHPARef pins the reference to the examples of the Kubernetes HPA
// documentation (concepts/workloads/autoscaling/horizontal-pod-autoscale):
// each step is one sync, `after` the start, whose result the next step
// starts from.
func TestHPARef(t *testing.T) {
	type step struct {
		after time.Duration
		total float64
		want  int
	}
	noDownWindow := func(s hpaSpec) hpaSpec { s.down.window = 0; return s }
	for _, tc := range []struct {
		name    string
		spec    hpaSpec
		current int
		steps   []step
	}{
		// "if the current metric value is 200m, and the desired value is
		// 100m, the number of replicas will be doubled, since 200.0 /
		// 100.0 == 2.0"
		{"ratio 2.0 doubles", hpaDefaults(1, 10, 0.1), 1, []step{{0, 0.2, 2}}},
		// "If the current value is instead 50m, you'll halve the number
		// of replicas, since 50.0 / 100.0 == 0.5" (with no scale-down
		// window, so that it happens at once)
		{"ratio 0.5 halves", noDownWindow(hpaDefaults(1, 10, 0.1)), 4, []step{{0, 4 * 0.05, 2}}},
		// "The control plane skips any scaling action if the ratio is
		// sufficiently close to 1.0 (within a configurable tolerance, 0.1
		// by default)"
		{"ratio 1.05 is within tolerance", hpaDefaults(1, 10, 10), 4, []step{{0, 42, 4}}},
		// The default scale-up: "4 pods or a 100% of the currently
		// running replicas may at most be added every 15 seconds".
		{"default scale-up: 4 pods or 100% per 15s", hpaDefaults(1, 20, 10), 1, []step{
			{0, 100, 5},                 // max(1+4, 2×1)
			{5 * time.Second, 100, 5},   // the period started at 1: no more yet
			{16 * time.Second, 100, 10}, // a new period from 5: max(9, 10)
		}},
		// The scale-down policy example: 4 pods or 10 % per 60 s; "if there
		// are 80 replicas and the target has to be scaled down to 10
		// replicas then during the first step 8 replicas will be reduced.
		// In the next iteration when the number of replicas is 72, 10% of
		// the pods is 7.2 but the number is rounded up to 8."
		{"scale-down policies: 80 → 72 → 64", func() hpaSpec {
			s := noDownWindow(hpaDefaults(1, 100, 10))
			s.down.policies = []hpaPolicy{{value: 4, period: 60 * time.Second}, {percent: true, value: 10, period: 60 * time.Second}}
			return s
		}(), 80, []step{{0, 100, 72}, {61 * time.Second, 100, 64}}},
		// The default 300 s scale-down window: "the highest recommendation
		// of the last 5 minutes" holds the count.
		{"scale-down window holds for 300s", hpaDefaults(1, 10, 10), 10, []step{
			{0, 100, 10},
			{60 * time.Second, 20, 10},
			{299 * time.Second, 20, 10}, // the 10 recorded at 0s still counts
			{301 * time.Second, 20, 2},  // it is out; only the 2s of 60s and 299s count
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			h := &hpaRef{spec: tc.spec}
			cur := tc.current
			for i, s := range tc.steps {
				got := h.sync(start.Add(s.after), cur, s.total)
				if got != s.want {
					t.Fatalf("step %d: sync(+%v, current %d, total %g) = %d, want %d", i, s.after, cur, s.total, got, s.want)
				}
				cur = got
			}
		})
	}
}

func TestNaiveController(t *testing.T) {
	s := hpaDefaults(1, 10, 10)
	for _, tc := range []struct {
		total float64
		want  int
	}{{0, 1}, {10, 1}, {10.1, 2}, {55, 6}, {500, 10}} {
		if got := naiveController(s, tc.total); got != tc.want {
			t.Errorf("naiveController(total %g) = %d, want %d", tc.total, got, tc.want)
		}
	}
}
