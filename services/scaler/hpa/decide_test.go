package hpa_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/scaler/hpa"
)

// TestAlgorithmDetails is the HPA documentation's "Algorithm details"
// section (kubernetes.io/docs/tasks/run-application/horizontal-pod-
// autoscale), case by case, with the numbers checked against the
// controller's replica_calculator.go. Every case starts warm, so the
// final count shows the metric algorithm alone.
func TestAlgorithmDetails(t *testing.T) {
	avg := metric("m", hpa.AverageValue, 100)
	tests := []struct {
		name      string
		spec      hpa.Spec
		current   int
		instances []hpa.Instance
		obs       map[string]hpa.Observation
		want      int  // the proposal from the metrics (HPA's metricDesiredReplicas)
		within    bool // the metric held by tolerance
		reversed  bool // the metric held because rebalancing turned around
		fails     bool // no proposal: the count stays and the decision says why
	}{
		// "if the current metric value is 200m, and the desired value is
		// 100m, the number of replicas will be doubled"
		{name: "200m over a 100m target doubles", spec: spec(1, 10, metric("m", hpa.AverageValue, 0.1)),
			current: 1, instances: instances(1, 0), obs: obs("m", samples(0.2)), want: 2},
		// "If the current value is instead 50m, you'll halve the number
		// of replicas"
		{name: "50m over a 100m target halves", spec: spec(1, 10, metric("m", hpa.AverageValue, 0.1)),
			current: 4, instances: instances(4, 0), obs: obs("m", samples(0.05, 0.05, 0.05, 0.05)), want: 2},
		// "The control plane skips any scaling action if the ratio is
		// sufficiently close to 1.0 (within a configurable tolerance, 0.1
		// by default)"; the bounds are inclusive (Tolerances.isWithin).
		{name: "ratio 1.05 is within tolerance", spec: spec(1, 10, avg),
			current: 4, instances: instances(4, 0), obs: obs("m", samples(105, 105, 105, 105)), want: 4, within: true},
		{name: "ratio 1.1 is on the upper bound and still within", spec: spec(1, 10, avg),
			current: 4, instances: instances(4, 0), obs: obs("m", samples(110, 110, 110, 110)), want: 4, within: true},
		{name: "ratio 1.11 scales up", spec: spec(1, 10, avg),
			current: 4, instances: instances(4, 0), obs: obs("m", samples(111, 111, 111, 111)), want: 5},
		{name: "ratio 0.9 is on the lower bound and still within", spec: spec(1, 20, avg),
			current: 10, instances: instances(10, 0), obs: obs("m", samples(sameValues(10, 90)...)), want: 10, within: true},
		{name: "ratio 0.89 scales down", spec: spec(1, 20, avg),
			current: 10, instances: instances(10, 0), obs: obs("m", samples(sameValues(10, 89)...)), want: 9},
		{name: "tolerance 0 scales on any difference", spec: withTolerance(spec(1, 10, avg), 0),
			current: 4, instances: instances(4, 0), obs: obs("m", samples(101, 101, 101, 101)), want: 5},
		// The tolerance section: "a memory consumption target of 100Mi,
		// and scale-down and scale-up tolerances of 5% and 1%
		// respectively, scaling will be triggered when the actual
		// consumption falls below 95Mi or exceeds 101Mi".
		{name: "scale-down tolerance 5%: 95Mi holds", spec: directionTolerances(spec(1, 40, avg), 0.01, 0.05),
			current: 20, instances: instances(20, 0), obs: obs("m", samples(sameValues(20, 95)...)), want: 20, within: true},
		{name: "scale-down tolerance 5%: 94Mi scales down", spec: directionTolerances(spec(1, 40, avg), 0.01, 0.05),
			current: 20, instances: instances(20, 0), obs: obs("m", samples(sameValues(20, 94)...)), want: 19},
		{name: "scale-up tolerance 1%: 101Mi holds", spec: directionTolerances(spec(1, 40, avg), 0.01, 0.05),
			current: 20, instances: instances(20, 0), obs: obs("m", samples(sameValues(20, 101)...)), want: 20, within: true},
		{name: "scale-up tolerance 1%: 102Mi scales up", spec: directionTolerances(spec(1, 40, avg), 0.01, 0.05),
			current: 20, instances: instances(20, 0), obs: obs("m", samples(sameValues(20, 102)...)), want: 21},
		// "If there were any missing metrics, the control plane recomputes
		// the average more conservatively, assuming those Pods were
		// consuming 100% of the desired value in case of a scale down, and
		// 0% in case of a scale up."
		{name: "missing counts as the target on a scale-down", spec: spec(1, 10, avg),
			// ratio 0.5 would give ceil(0.5×3) = 2; with i4 at 100:
			// (150+100)/4 = 62.5 → ceil(0.625×4) = 3.
			current: 4, instances: instances(4, 0), obs: obs("m", samples(50, 50, 50)), want: 3},
		{name: "missing counts as zero on a scale-up", spec: spec(1, 10, avg),
			// ratio 3; (600+0+0)/4 = 150 → ceil(1.5×4) = 6.
			current: 4, instances: instances(4, 0), obs: obs("m", samples(300, 300)), want: 6},
		// "If the new ratio reverses the scaling direction, or is within
		// the tolerance, the controller doesn't take any scaling action."
		{name: "missing damps a scale-up into tolerance", spec: spec(1, 10, avg),
			// ratio 1.4 would give 5; (420+0)/4 = 105 → within.
			current: 4, instances: instances(4, 0), obs: obs("m", samples(140, 140, 140)), want: 4, within: true},
		{name: "missing turns a scale-up around: no action", spec: spec(1, 10, avg),
			// ratio 1.15; 345/4 = 86.25 → a scale-down now: hold.
			current: 4, instances: instances(4, 0), obs: obs("m", samples(115, 115, 115)), want: 4, reversed: true},
		// "if any not-yet-ready pods were present, and the workload would
		// have scaled up without factoring in missing metrics or
		// not-yet-ready pods, the controller conservatively assumes that
		// the not-yet-ready pods are consuming 0% of the desired metric"
		{name: "unready count as zero on a scale-up", spec: spec(1, 20, avg),
			// ratio 3 on the 3 ready; (900+0)/4 = 225 → ceil(2.25×4) = 9.
			current: 4, instances: instances(3, 1), obs: obs("m", samples(300, 300, 300, 999)), want: 9},
		{name: "unready turn a scale-up around: no action", spec: spec(1, 10, avg),
			// ratio 1.5 on 2 ready would give ceil(1.5×2) = 3, a scale
			// DOWN; with the 2 unready at 0: 300/4 = 75 → hold.
			current: 4, instances: instances(2, 2), obs: obs("m", samples(150, 150)), want: 4, reversed: true},
		{name: "unready are left out of a scale-down", spec: spec(1, 10, avg),
			// ratio 0.5 on the 3 ready → ceil(0.5×3) = 2; i4's sample
			// is not counted.
			current: 4, instances: instances(3, 1), obs: obs("m", samples(50, 50, 50, 500)), want: 2},
		{name: "replicas not yet registered count as unready", spec: spec(1, 10, avg),
			current: 4, instances: instances(2, 0), obs: obs("m", samples(150, 150)), want: 4, reversed: true},
		// Resource utilization: total usage over total requests, a whole
		// percentage (GetResourceUtilizationRatio).
		{name: "utilization is usage over requests", spec: spec(1, 10, metric("cpu", hpa.Utilization, 50)),
			// (0.5+0.3)/(0.5+0.5) = 80% → 1.6 → ceil(3.2) = 4.
			current: 2, instances: instances(2, 0), obs: obs("cpu", usage(0.5, 0.5, 0.3)), want: 4},
		{name: "utilization truncates to a whole percent", spec: spec(1, 10, metric("cpu", hpa.Utilization, 30)),
			// 1/3 = 33.3% is 33%: 33/30 = 1.1 is within tolerance (33.3/30
			// = 1.11 would have scaled to 4).
			current: 3, instances: instances(3, 0), obs: obs("cpu", usage(1, 1.0/3, 1.0/3, 1.0/3)), want: 3, within: true},
		{name: "utilization: missing count as the target when it is above 100%", spec: spec(1, 10, metric("cpu", hpa.Utilization, 150)),
			// 50% → 0.33; the 3 missing at 150% of their request:
			// (0.5+4.5)/4 = 125% → 0.83 → ceil(3.33) = 4 = current. At
			// 100% they would give 87% → 3.
			current: 4, instances: instances(4, 0), obs: obs("cpu", usage(1, 0.5)), want: 4},
		// Object and External metrics.
		{name: "a value is compared whole, times the ready instances", spec: spec(1, 10, metric("queue", hpa.Value, 100)),
			current: 2, instances: instances(2, 0), obs: obs("queue", value(300)), want: 6},
		{name: "a value counts only ready instances", spec: spec(1, 10, metric("queue", hpa.Value, 100)),
			current: 3, instances: instances(2, 1), obs: obs("queue", value(300)), want: 6},
		{name: "an averageValue total is divided by the target", spec: spec(1, 20, metric("rps", hpa.AverageValue, 100)),
			current: 4, instances: instances(4, 0), obs: obs("rps", value(1000)), want: 10},
		// "If multiple metrics are specified ... the largest of the
		// desired replica counts is chosen."
		{name: "the largest proposal wins", spec: spec(1, 10, metric("cpu", hpa.Utilization, 50), metric("rps", hpa.AverageValue, 100)),
			current: 2, instances: instances(2, 0),
			obs: map[string]hpa.Observation{"cpu": usage(1, 0.6, 0.6), "rps": samples(300, 300)}, want: 6},
		// "If any of these metrics cannot be converted into a desired
		// replica count ... and a scale down is suggested by the metrics
		// which can be fetched, scaling is skipped. This means that the
		// HPA is still capable of scaling up"
		{name: "a failed metric does not stop a scale-up", spec: spec(1, 10, metric("cpu", hpa.Utilization, 50), metric("rps", hpa.AverageValue, 100)),
			current: 2, instances: instances(2, 0), obs: obs("rps", samples(300, 300)), want: 6},
		{name: "a failed metric stops a scale-down", spec: spec(1, 10, metric("cpu", hpa.Utilization, 50), metric("rps", hpa.AverageValue, 100)),
			current: 4, instances: instances(4, 0), obs: obs("rps", samples(10, 10, 10, 10)), want: 4, fails: true},
		{name: "no metric at all: no action", spec: spec(1, 10, avg),
			current: 4, instances: instances(4, 0), obs: nil, want: 4, fails: true},
		{name: "no sample from a ready instance: no action", spec: spec(1, 10, avg),
			current: 2, instances: instances(0, 2), obs: obs("m", samples(500, 500)), want: 2, fails: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := hpa.Decide(tt.spec, warm, hpa.Input{Now: t0, CurrentReplicas: tt.current, Instances: tt.instances, Metrics: tt.obs})
			if tt.fails {
				if d.Error == "" || d.DesiredReplicas != tt.want {
					t.Fatalf("Decide() = %s, want an error and %d replicas", show(d), tt.want)
				}
				return
			}
			if d.Error != "" || d.Proposal == nil || *d.Proposal != tt.want {
				t.Fatalf("Decide().Proposal = %v, want %d\n%s", d.Proposal, tt.want, show(d))
			}
			if tt.want <= tt.current && d.DesiredReplicas != tt.want {
				// Starting warm, nothing holds a scale-down back.
				t.Fatalf("Decide().DesiredReplicas = %d, want %d\n%s", d.DesiredReplicas, tt.want, show(d))
			}
			m := d.Metrics[0]
			if tt.within != m.WithinTolerance || tt.reversed != m.Reversed {
				t.Errorf("metric %s: withinTolerance %v reversed %v, want %v %v\n%s", m.Name, m.WithinTolerance, m.Reversed, tt.within, tt.reversed, show(d))
			}
		})
	}
}

func TestMissingAndUnreadyExplained(t *testing.T) {
	d, _ := hpa.Decide(spec(1, 10, metric("m", hpa.AverageValue, 100)), warm, hpa.Input{
		Now: t0, CurrentReplicas: 5, Instances: instances(4, 1), Metrics: obs("m", samples(50, 50, 50)),
	})
	m := d.Metrics[0]
	if m.Usage != 50 || m.Ratio != 0.5 || m.Ready != 3 || m.Missing != 1 || m.Unready != 1 || m.Rebalanced == nil || *m.Rebalanced != 0.625 {
		t.Fatalf("metric = %s, want usage 50 ratio 0.5 ready 3 missing 1 unready 1 rebalanced 0.625", show(m))
	}
	// 4 values counted (3 ready, 1 missing at the target; the unready
	// instance is left out of a scale-down): ceil(0.625×4) = 3.
	if m.Proposal != 3 {
		t.Fatalf("proposal = %d, want 3", m.Proposal)
	}
}

func TestBounds(t *testing.T) {
	avg := metric("m", hpa.AverageValue, 100)
	tests := []struct {
		name       string
		spec       hpa.Spec
		current    int
		values     []float64
		want       int
		limit      string // Limit.Reason, "" for none
		noProposal bool   // decided by the bounds alone
	}{
		{name: "above maxReplicas comes down at once", spec: spec(1, 5, avg), current: 8, values: sameValues(8, 500), want: 5, noProposal: true},
		{name: "below minReplicas comes up at once", spec: spec(3, 5, avg), current: 1, values: []float64{1}, want: 3, noProposal: true},
		{name: "a proposal above maxReplicas is capped", spec: spec(1, 10, avg), current: 8, values: sameValues(8, 200), want: 10, limit: "TooManyReplicas"},
		{name: "a proposal below minReplicas is raised", spec: spec(3, 10, avg), current: 5, values: sameValues(5, 10), want: 3, limit: "TooFewReplicas"},
		{name: "the default scale-up rate caps before maxReplicas", spec: spec(1, 100, avg), current: 8, values: sameValues(8, 1000), want: 16, limit: "ScaleUpLimit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := hpa.Decide(tt.spec, warm, hpa.Input{Now: t0, CurrentReplicas: tt.current, Instances: instances(tt.current, 0), Metrics: obs("m", samples(tt.values...))})
			if d.DesiredReplicas != tt.want {
				t.Fatalf("Decide().DesiredReplicas = %d, want %d\n%s", d.DesiredReplicas, tt.want, show(d))
			}
			got := ""
			if d.Limit != nil {
				got = d.Limit.Reason
			}
			if got != tt.limit {
				t.Errorf("Limit.Reason = %q, want %q\n%s", got, tt.limit, show(d))
			}
			if (d.Proposal == nil) != tt.noProposal {
				t.Errorf("Proposal = %v, want none: %v", d.Proposal, tt.noProposal)
			}
		})
	}
}

// TestScaledToZeroByHand is HPA's "scaling is disabled since the replica
// count of the target is zero": with minReplicas above zero, a count of
// zero is someone's decision and the autoscaler leaves it.
func TestScaledToZeroByHand(t *testing.T) {
	d, st := hpa.Decide(spec(1, 10, metric("m", hpa.AverageValue, 100)), warm, hpa.Input{Now: t0, Metrics: obs("m", value(1000))})
	if d.DesiredReplicas != 0 || d.Scale() || len(st.ScaleUpEvents) != 0 {
		t.Fatalf("Decide() at zero = %s, want no change", show(d))
	}
	if len(d.Conditions) != 1 || d.Conditions[0].Reason != "ScalingDisabled" {
		t.Errorf("conditions = %v, want ScalingDisabled", d.Conditions)
	}
}

// TestOwnedStartsFromZero: a driver that owns its replicas starts at
// zero, which is not a choice anyone made: it is brought up to
// minReplicas.
func TestOwnedStartsFromZero(t *testing.T) {
	d, _ := hpa.Decide(spec(2, 10, metric("m", hpa.AverageValue, 100)), warm, hpa.Input{Now: t0, Owned: true, Metrics: obs("m", value(1000))})
	if d.DesiredReplicas != 2 {
		t.Fatalf("Decide() owned at zero = %s, want minReplicas 2", show(d))
	}
}

// TestScaleToZero is KEDA's activation over HPA: with minReplicas 0, a
// service wakes to one replica when a metric rises above its activation,
// and goes to zero once every metric has stayed at or below its own for
// the scale-down window.
func TestScaleToZero(t *testing.T) {
	queue := metric("queue", hpa.Value, 10)
	queue.Activation = ptr(5.0)
	noWindow := spec(0, 10, queue)
	noWindow.Behavior = &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: dur(0)}}
	tests := []struct {
		name    string
		spec    hpa.Spec
		current int
		obs     map[string]hpa.Observation
		want    int
	}{
		{name: "at zero, below activation: stays", spec: spec(0, 10, queue), current: 0, obs: obs("queue", value(3)), want: 0},
		{name: "at zero, at activation: stays", spec: spec(0, 10, queue), current: 0, obs: obs("queue", value(5)), want: 0},
		{name: "at zero, above activation: wakes to one", spec: spec(0, 10, queue), current: 0, obs: obs("queue", value(500)), want: 1},
		{name: "at zero, no observation: stays", spec: spec(0, 10, queue), current: 0, obs: nil, want: 0},
		{name: "at or below activation: goes to zero", spec: noWindow, current: 3, obs: obs("queue", value(5)), want: 0},
		{name: "above activation: scales by the ratio", spec: noWindow, current: 3, obs: obs("queue", value(6)), want: 2},
		{name: "above activation, nothing ready: keeps one", spec: noWindow, current: 3, obs: obs("queue", value(6)), want: 1},
		{name: "the scale-down window holds zero back", spec: spec(0, 10, queue), current: 3, obs: obs("queue", value(0)), want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := hpa.Input{Now: t0, CurrentReplicas: tt.current, Instances: instances(tt.current, 0), Metrics: tt.obs}
			if strings.Contains(tt.name, "nothing ready") {
				in.Instances = instances(0, tt.current)
			}
			st := warm
			if strings.Contains(tt.name, "window holds") {
				st = hpa.State{} // a fresh scaler records the current count first
			}
			d, _ := hpa.Decide(tt.spec, st, in)
			if d.DesiredReplicas != tt.want {
				t.Fatalf("Decide().DesiredReplicas = %d, want %d\n%s", d.DesiredReplicas, tt.want, show(d))
			}
		})
	}
}

// TestScaleToZeroRoundTrip runs a service from busy to idle to zero and
// back: the scale-down window is KEDA's cooldown.
func TestScaleToZeroRoundTrip(t *testing.T) {
	queue := metric("queue", hpa.Value, 10)
	queue.Activation = ptr(0.0)
	s := spec(0, 10, queue)
	var st hpa.State
	replicas := 0
	step := func(at time.Duration, v float64) {
		t.Helper()
		var d hpa.Decision
		d, st = hpa.Decide(s, st, hpa.Input{Now: t0.Add(at), CurrentReplicas: replicas, Instances: instances(replicas, 0), Metrics: obs("queue", value(v))})
		replicas = d.DesiredReplicas
	}
	step(0, 50)
	if replicas != 1 {
		t.Fatalf("woke to %d, want 1", replicas)
	}
	step(15*time.Second, 50) // 50/10 × 1 ready
	if replicas != 5 {
		t.Fatalf("after waking: %d replicas, want 5", replicas)
	}
	var zeroAt time.Duration
	for at := 30 * time.Second; at <= 15*time.Minute; at += 15 * time.Second {
		step(at, 0)
		if replicas == 0 {
			zeroAt = at
			break
		}
	}
	// The last recommendation of 5 was at 15 s; at 315 s it leaves the
	// 300 s window (strictly newer counts).
	if zeroAt != 315*time.Second {
		t.Fatalf("went to zero at %v, want 315s", zeroAt)
	}
	step(zeroAt+15*time.Second, 0)
	if replicas != 0 {
		t.Fatalf("idle at zero: %d replicas, want 0", replicas)
	}
	step(zeroAt+30*time.Second, 1)
	if replicas != 1 {
		t.Fatalf("woke to %d, want 1", replicas)
	}
}

func TestInvalidInput(t *testing.T) {
	s := spec(1, 10, metric("m", hpa.AverageValue, 100))
	d, st := hpa.Decide(s, warm, hpa.Input{Now: t0, CurrentReplicas: -1})
	if d.Error == "" || d.Scale() || !reflect.DeepEqual(st, warm) {
		t.Fatalf("Decide(currentReplicas -1) = %s, want an error, no change, the state untouched", show(d))
	}
	bad := spec(1, 0, metric("m", hpa.AverageValue, 100))
	d, _ = hpa.Decide(bad, warm, hpa.Input{Now: t0, CurrentReplicas: 3})
	if !strings.Contains(d.Error, "maxReplicas must be positive") || d.Scale() {
		t.Fatalf("Decide(maxReplicas 0) = %s, want the validation error and no change", show(d))
	}
}

// TestDecideIsPure: the same arguments give the same decision and state,
// and the caller's state and spec are not written to.
func TestDecideIsPure(t *testing.T) {
	s := spec(1, 10, metric("m", hpa.AverageValue, 100))
	st := hpa.State{Since: t0.Add(-time.Minute), Recommendations: make([]hpa.Recommendation, 1, 8)}
	st.Recommendations[0] = hpa.Recommendation{At: t0.Add(-time.Minute), Replicas: 2}
	before, _ := json.Marshal(st)
	specBefore, _ := json.Marshal(s)
	in := hpa.Input{Now: t0, CurrentReplicas: 2, Instances: instances(2, 0), Metrics: obs("m", samples(300, 300))}
	d1, st1 := hpa.Decide(s, st, in)
	d2, st2 := hpa.Decide(s, st, in)
	if !reflect.DeepEqual(d1, d2) || !reflect.DeepEqual(st1, st2) {
		t.Fatalf("two calls differ:\n%s\n%s", show(d1), show(d2))
	}
	after, _ := json.Marshal(st)
	specAfter, _ := json.Marshal(s)
	if string(before) != string(after) || string(specBefore) != string(specAfter) {
		t.Fatalf("Decide wrote to its arguments: state %s → %s, spec %s → %s", before, after, specBefore, specAfter)
	}
	// The backing array had room: a careless append would have written
	// the new recommendation into it.
	if full := st.Recommendations[:2]; full[1] != (hpa.Recommendation{}) {
		t.Fatalf("Decide appended into the caller's array: %v", full)
	}
}

func TestDecisionExplains(t *testing.T) {
	s := spec(1, 10, metric("cpu", hpa.Utilization, 50), metric("rps", hpa.AverageValue, 100))
	d, _ := hpa.Decide(s, warm, hpa.Input{Now: t0, CurrentReplicas: 2, Instances: instances(2, 0),
		Metrics: map[string]hpa.Observation{"cpu": usage(1, 0.6, 0.6), "rps": samples(1000, 1000)}})
	// rps proposes ceil(10×2) = 20; the default scale-up policies allow
	// max(2+4, 2×2) = 6.
	if d.DesiredReplicas != 6 || *d.Proposal != 20 || d.ProposedBy != "rps" {
		t.Fatalf("Decide() = %s, want rps proposing 20, capped at 6", show(d))
	}
	want := hpa.Limit{Reason: "ScaleUpLimit", Policy: "behavior.scaleUp.policies[0]", Rule: "4 pods per 15s", Limit: 6}
	if *d.Limit != want {
		t.Errorf("Limit = %+v, want %+v", *d.Limit, want)
	}
	if wantReason := "rps above target (ratio 10): proposes 20; capped at 6 by behavior.scaleUp.policies[0] (4 pods per 15s): scale up 2 → 6"; d.Reason != wantReason {
		t.Errorf("Reason = %q, want %q", d.Reason, wantReason)
	}
	if d.Metrics[0].Usage != 60 || d.Metrics[0].Proposal != 3 {
		t.Errorf("cpu = %s, want usage 60%% proposing 3", show(d.Metrics[0]))
	}
	if _, err := json.Marshal(d); err != nil {
		t.Fatalf("json.Marshal(decision): %v", err)
	}
}

// TestRejectedObservations: a reading Decide cannot use makes its metric
// fail (HPA's failed metric fetch) with the reason, rather than propose.
func TestRejectedObservations(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		typ  hpa.TargetType
		obs  hpa.Observation
		want string
	}{
		{name: "NaN sample", typ: hpa.AverageValue, obs: samples(1, nan), want: `instance "i2": value NaN is not a number at least 0`},
		{name: "negative sample", typ: hpa.AverageValue, obs: samples(-1, 1), want: `instance "i1": value -1 is not a number at least 0`},
		{name: "infinite value", typ: hpa.Value, obs: value(math.Inf(1)), want: "value +Inf is not a number at least 0"},
		{name: "samples for a value target", typ: hpa.Value, obs: samples(1, 1), want: "a value target takes one value, not samples"},
		{name: "a value for utilization", typ: hpa.Utilization, obs: value(1), want: "a utilization target takes per-instance samples, not a value"},
		{name: "samples and a total", typ: hpa.AverageValue, obs: hpa.Observation{Value: ptr(1.0), Samples: samples(1).Samples}, want: "give samples or a value, not both"},
		{name: "utilization without a request", typ: hpa.Utilization, obs: samples(1, 1), want: `instance "i1": request 0 is not a positive number`},
		{name: "only unregistered instances", typ: hpa.AverageValue, obs: hpa.Observation{Samples: []hpa.Sample{{Instance: "x", Value: 1}}}, want: "no samples from ready instances"},
		{name: "a ratio beyond float64", typ: hpa.Value, obs: value(math.MaxFloat64), want: "usage ratio out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(1, 10, metric("m", tt.typ, 0.5))
			d, _ := hpa.Decide(s, warm, hpa.Input{Now: t0, CurrentReplicas: 2, Instances: instances(2, 0), Metrics: obs("m", tt.obs)})
			if d.Metrics[0].Error != tt.want || d.Scale() || d.Error == "" {
				t.Fatalf("Decide() = %s, want metric error %q and no change", show(d), tt.want)
			}
		})
	}
}

func obs(name string, o hpa.Observation) map[string]hpa.Observation {
	return map[string]hpa.Observation{name: o}
}

func withTolerance(s hpa.Spec, tol float64) hpa.Spec {
	s.Tolerance = &tol
	return s
}

func directionTolerances(s hpa.Spec, up, down float64) hpa.Spec {
	s.Behavior = &hpa.Behavior{
		ScaleUp:   &hpa.Rules{Tolerance: &up},
		ScaleDown: &hpa.Rules{Tolerance: &down},
	}
	return s
}

func show(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
