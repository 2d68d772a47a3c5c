package hpa_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

// change is one scaling step: at a time, to a count.
type change struct {
	at time.Duration
	to int
}

func (c change) String() string { return fmt.Sprintf("%v→%d", c.at, c.to) }

// replay calls Decide every sync from 0 to until with a service-wide
// rps total (an averageValue metric with target 100, so the metrics
// propose ceil(total/100) whatever the count), carries each decision out
// and returns the changes and the last decision.
func replay(t *testing.T, s hpa.Spec, st hpa.State, replicas int, sync, until time.Duration, total func(at time.Duration) float64) ([]change, hpa.Decision) {
	t.Helper()
	var changes []change
	var d hpa.Decision
	for at := time.Duration(0); at <= until; at += sync {
		d, st = hpa.Decide(s, st, hpa.Input{
			Now: t0.Add(at), CurrentReplicas: replicas, Instances: instances(replicas, 0),
			Metrics: obs("rps", value(total(at))),
		})
		if d.Error != "" {
			t.Fatalf("at %v: %s", at, d.Error)
		}
		if d.Scale() {
			changes = append(changes, change{at, d.DesiredReplicas})
		}
		replicas = d.DesiredReplicas
	}
	return changes, d
}

func constant(v float64) func(time.Duration) float64 { return func(time.Duration) float64 { return v } }

func rps(minR, maxR int, b *hpa.Behavior) hpa.Spec {
	s := spec(minR, maxR, metric("rps", hpa.AverageValue, 100))
	s.Behavior = b
	return s
}

func policies(ps ...hpa.Policy) []hpa.Policy { return ps }

func policy(typ hpa.PolicyType, v int, period time.Duration) hpa.Policy {
	return hpa.Policy{Type: typ, Value: v, Period: wire.Duration(period)}
}

// TestScalingBehavior replays the HPA documentation's "Configurable
// scaling behavior" examples and its default behaviour.
func TestScalingBehavior(t *testing.T) {
	minute := time.Minute
	tests := []struct {
		name     string
		spec     hpa.Spec
		state    hpa.State
		replicas int
		sync     time.Duration
		until    time.Duration
		total    func(time.Duration) float64
		want     []change
	}{
		// "Default Behavior": "4 pods or a 100% of the currently running
		// replicas may at most be added every 15 seconds till the HPA
		// reaches its steady state."
		{name: "default scale-up: 4 pods or 100% per 15s",
			spec: rps(1, 100, nil), state: warm, replicas: 1, sync: 15 * time.Second, until: 2 * minute, total: constant(10_000),
			want: []change{{0, 5}, {15 * time.Second, 10}, {30 * time.Second, 20}, {45 * time.Second, 40}, {60 * time.Second, 80}, {75 * time.Second, 100}}},
		// A policy counts every event of its period, however often the
		// controller runs: at 5 s syncs the 15 s period still allows one
		// step per 15 s.
		{name: "default scale-up at 5s syncs: still one step per 15s",
			spec: rps(1, 100, nil), state: warm, replicas: 1, sync: 5 * time.Second, until: 30 * time.Second, total: constant(10_000),
			want: []change{{0, 5}, {15 * time.Second, 10}, {30 * time.Second, 20}}},
		// "Scaling policies": "The first policy (Pods) allows at most 4
		// replicas to be scaled down in one minute. The second policy
		// (Percent) allows at most 10% of the current replicas to be
		// scaled down in one minute. ... if there are 80 replicas and the
		// target has to be scaled down to 10 replicas then during the
		// first step 8 replicas will be reduced. In the next iteration
		// when the number of replicas is 72, 10% of the pods is 7.2 but
		// the number is rounded up to 8. ... When the number of replicas
		// falls below 40 the first policy (Pods) is applied and 4
		// replicas will be reduced at a time." (Window 0 s, so the
		// policies alone set the pace; syncs every 15 s.)
		{name: "scale down at most 4 pods or 10% per minute",
			spec: rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0),
				Policies: policies(policy(hpa.Pods, 4, minute), policy(hpa.Percent, 10, minute))}}),
			state: warm, replicas: 80, sync: 15 * time.Second, until: 20 * minute, total: constant(1000),
			want: []change{{0, 72}, {1 * minute, 64}, {2 * minute, 57}, {3 * minute, 51}, {4 * minute, 45}, {5 * minute, 40},
				{6 * minute, 36}, {7 * minute, 32}, {8 * minute, 28}, {9 * minute, 24}, {10 * minute, 20}, {11 * minute, 16},
				{12 * minute, 12}, {13 * minute, 10}}},
		// "Example: limit scale down rate": "To ensure that no more than
		// 5 Pods are removed per minute, you can add a second scale-down
		// policy with a fixed size of 5, and set selectPolicy to
		// minimum."
		{name: "selectPolicy Min: 10% or 5 pods, whichever removes fewer",
			spec: rps(1, 200, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0), SelectPolicy: hpa.SelectMin,
				Policies: policies(policy(hpa.Percent, 10, minute), policy(hpa.Pods, 5, minute))}}),
			state: warm, replicas: 100, sync: 15 * time.Second, until: 12 * minute, total: constant(3000),
			// 5 pods a minute while 10% is more than 5, then 10%
			// (truncated: 49 → 44.1 → 44).
			want: []change{{0, 95}, {1 * minute, 90}, {2 * minute, 85}, {3 * minute, 80}, {4 * minute, 75}, {5 * minute, 70},
				{6 * minute, 65}, {7 * minute, 60}, {8 * minute, 55}, {9 * minute, 50}, {10 * minute, 45}, {11 * minute, 40},
				{12 * minute, 36}}},
		// "Example: disable scale down": "selectPolicy: Disabled".
		{name: "selectPolicy Disabled: never scales down",
			spec:  rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0), SelectPolicy: hpa.SelectDisabled}}),
			state: warm, replicas: 10, sync: 15 * time.Second, until: 10 * minute, total: constant(100),
			want: nil},
		{name: "scale-up selectPolicy Disabled: never scales up",
			spec:  rps(1, 100, &hpa.Behavior{ScaleUp: &hpa.Rules{SelectPolicy: hpa.SelectDisabled}}),
			state: warm, replicas: 2, sync: 15 * time.Second, until: 10 * minute, total: constant(10_000),
			want: nil},
		// "Stabilization window": "When the metrics indicate that the
		// target should be scaled down the algorithm looks into
		// previously computed desired states, and uses the highest value
		// from the specified interval." High load until 60 s, then low:
		// the last recommendation of 10 (at 60 s) leaves the 300 s
		// window at 360 s (a recommendation counts while strictly newer
		// than now minus the window), and the default 100% per 15 s
		// policy lets the whole drop through at once.
		{name: "default scale-down: the 300s window holds, then all at once",
			spec: rps(1, 100, nil), state: warm, replicas: 10, sync: 15 * time.Second, until: 10 * minute,
			total: func(at time.Duration) float64 { return map[bool]float64{true: 1000, false: 200}[at <= minute] },
			want:  []change{{360 * time.Second, 2}}},
		// "Example: change downscale stabilization window" to 60 s.
		{name: "a 60s scale-down window",
			spec:  rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(minute)}}),
			state: warm, replicas: 10, sync: 15 * time.Second, until: 5 * minute,
			total: func(at time.Duration) float64 { return map[bool]float64{true: 1000, false: 200}[at <= minute] },
			want:  []change{{120 * time.Second, 2}}},
		// A scale-up window takes the lowest recommendation: a one-sync
		// spike does nothing, a sustained rise waits out the window.
		{name: "a 60s scale-up window ignores a spike",
			spec:  rps(1, 100, &hpa.Behavior{ScaleUp: &hpa.Rules{StabilizationWindow: dur(minute)}}),
			state: warm, replicas: 2, sync: 15 * time.Second, until: 5 * minute,
			total: func(at time.Duration) float64 { return map[bool]float64{true: 800, false: 200}[at == 2*minute] },
			want:  nil},
		{name: "a 60s scale-up window delays a sustained rise",
			spec:  rps(1, 100, &hpa.Behavior{ScaleUp: &hpa.Rules{StabilizationWindow: dur(minute)}}),
			state: warm, replicas: 2, sync: 15 * time.Second, until: 5 * minute,
			total: func(at time.Duration) float64 { return map[bool]float64{true: 800, false: 200}[at >= 2*minute] },
			// The last 2 is at 105 s; from 165 s the window holds only 8s.
			want: []change{{165 * time.Second, 6}, {180 * time.Second, 8}}},
		// HPA's recordInitialRecommendation: a scaler that has just
		// started records the current count, so it waits one scale-down
		// window before its first scale-down.
		{name: "a fresh scaler waits a whole window before scaling down",
			spec: rps(1, 100, nil), state: hpa.State{}, replicas: 10, sync: 15 * time.Second, until: 10 * minute, total: constant(200),
			want: []change{{300 * time.Second, 2}}},
		{name: "scale-down window and policy together",
			spec: rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{
				Policies: policies(policy(hpa.Pods, 1, minute))}}),
			state: hpa.State{}, replicas: 4, sync: 15 * time.Second, until: 10 * minute, total: constant(100),
			want: []change{{300 * time.Second, 3}, {360 * time.Second, 2}, {420 * time.Second, 1}}},
		// With nothing recorded in the window, 100% per 15 s lets the
		// count fall to minReplicas in one step.
		{name: "a warm scaler falls to minReplicas at once",
			spec: rps(3, 5, nil), state: warm, replicas: 4, sync: 15 * time.Second, until: time.Minute, total: constant(0),
			want: []change{{0, 3}}},
		{name: "without a scale-down window, straight to minReplicas",
			spec: rps(2, 10, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0)}}), state: hpa.State{}, replicas: 6,
			sync: 15 * time.Second, until: time.Minute, total: constant(0),
			want: []change{{0, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := replay(t, tt.spec, tt.state, tt.replicas, tt.sync, tt.until, tt.total)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("changes = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBehaviorExplained checks what a decision says when a window or a
// policy changed the count.
func TestBehaviorExplained(t *testing.T) {
	t.Run("scale-down window", func(t *testing.T) {
		_, d := replay(t, rps(1, 100, nil), hpa.State{}, 10, 15*time.Second, time.Minute, constant(200))
		st := d.Stabilization
		if d.DesiredReplicas != 10 || st == nil || st.Window != "scaleDown" || st.WindowLength.Std() != 5*time.Minute ||
			st.Recommendation != 2 || st.Stabilized != 10 || st.ScaleDownBound != 10 {
			t.Fatalf("decision = %s, want held at 10 by the 5m scale-down window", show(d))
		}
		if want := "all metrics below target: proposes 2; held at 10 by the scaleDown stabilization window (5m0s): stays at 10"; d.Reason != want {
			t.Errorf("Reason = %q, want %q", d.Reason, want)
		}
		if c := d.Conditions[1]; c.Type != "AbleToScale" || c.Reason != "ScaleDownStabilized" {
			t.Errorf("condition = %+v, want AbleToScale ScaleDownStabilized", c)
		}
	})
	t.Run("disabled scale-down", func(t *testing.T) {
		s := rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0), SelectPolicy: hpa.SelectDisabled}})
		_, d := replay(t, s, warm, 10, 15*time.Second, 0, constant(100))
		want := hpa.Limit{Reason: "ScaleDownLimit", Policy: "behavior.scaleDown.selectPolicy", Rule: "Disabled", Limit: 10}
		if d.Limit == nil || *d.Limit != want {
			t.Fatalf("Limit = %+v, want %+v", d.Limit, want)
		}
		if !strings.Contains(d.Reason, "capped at 10 by behavior.scaleDown.selectPolicy (Disabled)") {
			t.Errorf("Reason = %q, want it to name the disabled scale-down", d.Reason)
		}
	})
	t.Run("percent policy", func(t *testing.T) {
		s := rps(1, 100, &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0),
			Policies: policies(policy(hpa.Pods, 4, time.Minute), policy(hpa.Percent, 10, time.Minute))}})
		_, d := replay(t, s, warm, 80, 15*time.Second, 0, constant(1000))
		want := hpa.Limit{Reason: "ScaleDownLimit", Policy: "behavior.scaleDown.policies[1]", Rule: "10% per 1m0s", Limit: 72}
		if d.Limit == nil || *d.Limit != want {
			t.Fatalf("Limit = %+v, want %+v", d.Limit, want)
		}
	})
}

// TestStateStaysSmall: a long run keeps only what windows and periods
// can still see.
func TestStateStaysSmall(t *testing.T) {
	s := rps(1, 100, nil)
	var st hpa.State
	replicas := 1
	for i := range 2000 {
		load := float64(100 + (i%40)*50) // a saw: up and down all the time
		var d hpa.Decision
		d, st = hpa.Decide(s, st, hpa.Input{Now: t0.Add(time.Duration(i) * 15 * time.Second), CurrentReplicas: replicas,
			Instances: instances(replicas, 0), Metrics: obs("rps", value(load))})
		replicas = d.DesiredReplicas
	}
	// 300 s window at 15 s syncs: 20 recommendations; 15 s periods: at
	// most one event each way.
	if len(st.Recommendations) > 20 || len(st.ScaleUpEvents) > 1 || len(st.ScaleDownEvents) > 1 {
		t.Fatalf("state holds %d recommendations, %d up and %d down events; want ≤ 20, 1, 1",
			len(st.Recommendations), len(st.ScaleUpEvents), len(st.ScaleDownEvents))
	}
}
