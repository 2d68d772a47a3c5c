package hpa

import (
	"fmt"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/wire"
)

// Input is what the service observed at one sync.
type Input struct {
	// Now is the time of the decision; windows and policy periods are
	// measured back from it. It must not go backwards between calls.
	Now time.Time `json:"now"`
	// CurrentReplicas is the replica count the driver reports (HPA's
	// scale.spec.replicas).
	CurrentReplicas int `json:"currentReplicas"`
	// Instances are the service's registered instances; Ready is the
	// registry's passing. When fewer are registered than CurrentReplicas,
	// the rest count as not yet ready, as HPA counts pending pods.
	Instances []Instance `json:"instances"`
	// Metrics holds one observation per spec metric, by name. A metric
	// without one cannot propose (HPA's failed metric fetch).
	Metrics map[string]Observation `json:"metrics"`
	// Owned says the driver owns the replicas (the process driver): nobody
	// else sets the count, so a count of zero with minReplicas above zero
	// is where the driver starts, not someone having scaled the service
	// to zero by hand, and it is brought up to minReplicas.
	Owned bool `json:"owned,omitempty"`
}

// Instance is one running copy of the service.
type Instance struct {
	ID    string `json:"id"`
	Ready bool   `json:"ready"`
}

// Observation is a metric's reading: per-instance samples (averageValue,
// utilization) or one value (value, and averageValue measured for the
// whole service, such as the gateway's request rate).
type Observation struct {
	Value   *float64 `json:"value,omitempty"`
	Samples []Sample `json:"samples,omitempty"`
}

// Sample is one instance's reading of a metric.
type Sample struct {
	Instance string  `json:"instance"`
	Value    float64 `json:"value"`
	// Request is the instance's request of the resource, which
	// utilization divides usage by.
	Request float64 `json:"request,omitempty"`
}

// State is what decisions remember between calls: HPA's recorded
// recommendations (for the stabilization windows) and scale events (for
// the rate policies). Decide never changes the State it is given, and
// drops entries no window or period can reach any more, so a State stays
// as small as the longest window divided by the sync period.
type State struct {
	// Since is the time of the first decision. The first decision records
	// the current count as a recommendation, as HPA's
	// recordInitialRecommendation does, so a freshly started scaler does
	// not scale down before a whole scale-down window has passed.
	Since           time.Time        `json:"since,omitzero"`
	Recommendations []Recommendation `json:"recommendations,omitempty"`
	ScaleUpEvents   []ScaleEvent     `json:"scaleUpEvents,omitempty"`
	ScaleDownEvents []ScaleEvent     `json:"scaleDownEvents,omitempty"`
}

// Recommendation is a proposal as it was before stabilization.
type Recommendation struct {
	At       time.Time `json:"at"`
	Replicas int       `json:"replicas"`
}

// ScaleEvent is one change of the replica count; Change is its size,
// never negative (the list says the direction).
type ScaleEvent struct {
	At     time.Time `json:"at"`
	Change int       `json:"change"`
}

// Decision is one decision and everything that led to it.
type Decision struct {
	At              time.Time `json:"at"`
	CurrentReplicas int       `json:"currentReplicas"`
	ReadyReplicas   int       `json:"readyReplicas"`
	// Metrics explains each spec metric, in spec order.
	Metrics []MetricDecision `json:"metrics,omitempty"`
	// Proposal is the largest per-metric proposal (HPA's
	// metricDesiredReplicas), 0 when every metric is at or below its
	// activation; ProposedBy names the metric it came from. Both are
	// absent when the bounds alone decided.
	Proposal      *int           `json:"proposal,omitempty"`
	ProposedBy    string         `json:"proposedBy,omitempty"`
	Stabilization *Stabilization `json:"stabilization,omitempty"`
	// Limit is the policy or bound that capped the stabilized
	// recommendation, absent when none did.
	Limit           *Limit `json:"limit,omitempty"`
	DesiredReplicas int    `json:"desiredReplicas"`
	// Reason says in one line why DesiredReplicas is what it is.
	Reason string `json:"reason"`
	// Error is set when no decision could be made (invalid spec or input,
	// metrics that could not be computed); DesiredReplicas is then the
	// current count.
	Error      string      `json:"error,omitempty"`
	Conditions []Condition `json:"conditions,omitempty"`
}

// Scale reports whether the decision changes the replica count.
func (d Decision) Scale() bool { return d.DesiredReplicas != d.CurrentReplicas }

// MetricDecision explains one metric's proposal.
type MetricDecision struct {
	Name   string     `json:"name"`
	Type   TargetType `json:"type"`
	Target float64    `json:"target"`
	// Usage is the observed value as HPA reports it: the mean over ready
	// instances (averageValue), the whole percentage (utilization), the
	// value (value); before missing and unready instances are accounted.
	Usage float64 `json:"usage"`
	// Ratio is Usage / Target.
	Ratio float64 `json:"ratio"`
	// Rebalanced is the ratio recomputed with missing instances at the
	// target on a scale-down or at zero on a scale-up, and instances not
	// yet ready at zero on a scale-up; absent when there were none.
	Rebalanced *float64 `json:"rebalanced,omitempty"`
	Ready      int      `json:"ready"`
	Missing    int      `json:"missing,omitempty"`
	Unready    int      `json:"unready,omitempty"`
	// WithinTolerance: the (rebalanced) ratio was within tolerance of 1.0,
	// so the proposal is the current count.
	WithinTolerance bool `json:"withinTolerance"`
	// Reversed: rebalancing turned the direction around, so the proposal
	// is the current count (HPA never lets missing or unready instances
	// flip a scale-up into a scale-down or back).
	Reversed bool `json:"reversed,omitempty"`
	Proposal int  `json:"proposal"`
	// Active is set with minReplicas 0: the metric is above its
	// activation.
	Active *bool `json:"active,omitempty"`
	// Error says why the metric could not propose.
	Error string `json:"error,omitempty"`
}

// Stabilization is what the windows did to the proposal.
type Stabilization struct {
	// Recommendation is the proposal as recorded for later windows.
	Recommendation int `json:"recommendation"`
	Stabilized     int `json:"stabilized"`
	// Window is scaleUp or scaleDown when that window changed the
	// recommendation, with its length.
	Window       string        `json:"window,omitempty"`
	WindowLength wire.Duration `json:"windowLength,omitempty"`
	// ScaleUpBound is the lowest recommendation in the scale-up window,
	// ScaleDownBound the highest in the scale-down window, both counting
	// this one.
	ScaleUpBound   int `json:"scaleUpBound"`
	ScaleDownBound int `json:"scaleDownBound"`
}

// Limit is the bound that capped a decision.
type Limit struct {
	// Reason is HPA's: ScaleUpLimit or ScaleDownLimit (a rate policy),
	// TooManyReplicas or TooFewReplicas (maxReplicas, minReplicas).
	Reason string `json:"reason"`
	// Policy names the field that set the limit
	// ("behavior.scaleDown.policies[1]", "behavior.scaleUp.selectPolicy",
	// "maxReplicas") and Rule says what it allows.
	Policy string `json:"policy"`
	Rule   string `json:"rule,omitempty"`
	Limit  int    `json:"limit"`
}

// Condition is one of HPA's status conditions as this decision sets it:
// ScalingActive, AbleToScale, ScalingLimited.
type Condition struct {
	Type    string `json:"type"`
	Status  bool   `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Decide makes one decision. The returned State assumes the decision is
// carried out: it records the recommendation and, when DesiredReplicas
// differs from CurrentReplicas, the scale event the rate policies count.
// Decide is deterministic: the same arguments give the same results.
func Decide(spec Spec, st State, in Input) (Decision, State) {
	s := spec.clone()
	s.Defaults()
	cur := in.CurrentReplicas
	d := Decision{At: in.Now, CurrentReplicas: cur, DesiredReplicas: cur}
	if err := s.Validate(); err != nil {
		d.Error = "invalid spec: " + err.Error()
		d.Reason = d.Error
		return d, st
	}
	if cur < 0 || cur > MaxReplicas {
		d.Error = fmt.Sprintf("invalid input: currentReplicas %d is outside 0..%d", cur, MaxReplicas)
		d.Reason = d.Error
		return d, st
	}
	next := st.clone()
	if next.Since.IsZero() {
		next.Since = in.Now
		next.Recommendations = append(next.Recommendations, Recommendation{At: in.Now, Replicas: cur})
	}
	v := newView(in)
	d.ReadyReplicas = v.readyCount
	minR, maxR := s.minReplicas(), s.MaxReplicas
	switch {
	case cur == 0 && minR != 0 && !in.Owned:
		d.Reason = "scaling is disabled since the replica count is zero (scaled to zero by hand)"
		d.Conditions = []Condition{{Type: "ScalingActive", Status: false, Reason: "ScalingDisabled", Message: d.Reason}}
	case cur > maxR:
		d.DesiredReplicas = maxR
		d.Reason = fmt.Sprintf("current replicas %d above maxReplicas %d", cur, maxR)
	case cur < minR:
		d.DesiredReplicas = minR
		d.Reason = fmt.Sprintf("current replicas %d below minReplicas %d", cur, minR)
	case cur == 0:
		wake(&d, &s, v, in)
	default:
		decideFromMetrics(&d, &s, &next, v, in)
	}
	if d.Scale() {
		e := ScaleEvent{At: in.Now, Change: d.DesiredReplicas - cur}
		if e.Change > 0 {
			next.ScaleUpEvents = append(next.ScaleUpEvents, e)
		} else {
			e.Change = -e.Change
			next.ScaleDownEvents = append(next.ScaleDownEvents, e)
		}
	}
	next.prune(&s, in.Now)
	return d, next
}

// wake decides for a service at zero replicas with minReplicas 0: KEDA's
// activation, which sets the count to one and leaves the rest to the
// algorithm from the next sync on.
func wake(d *Decision, s *Spec, v view, in Input) {
	var woke []string
	for _, m := range s.Metrics {
		md := MetricDecision{Name: m.Name, Type: m.Target.Type, Target: m.Target.Value}
		q, err := activationQuantity(m, in.Metrics, v)
		if err != nil {
			md.Error = err.Error()
		} else {
			md.Usage = q
			active := q > *m.Activation
			md.Active = &active
			if active {
				woke = append(woke, fmt.Sprintf("%s %g above activation %g", m.Name, q, *m.Activation))
			}
		}
		d.Metrics = append(d.Metrics, md)
	}
	if len(woke) == 0 {
		d.Reason = "at zero replicas: no metric above its activation"
		return
	}
	d.DesiredReplicas = 1
	d.Reason = "waking from zero: " + strings.Join(woke, ", ")
}

// decideFromMetrics is HPA's reconcileAutoscaler from
// computeReplicasForMetrics on, for a count within [min, max].
func decideFromMetrics(d *Decision, s *Spec, next *State, v view, in Input) {
	cur := in.CurrentReplicas
	tol := s.tolerances()
	proposal, by, invalid := 0, "", 0
	var firstErr string
	for _, m := range s.Metrics {
		md := propose(m, in.Metrics, v, tol, cur)
		if md.Error != "" {
			if invalid == 0 {
				firstErr = m.Name + ": " + md.Error
			}
			invalid++
		} else if proposal == 0 || md.Proposal > proposal {
			proposal, by = md.Proposal, m.Name
		}
		d.Metrics = append(d.Metrics, md)
	}
	// computeReplicasForMetrics: with some metrics failing, the others may
	// scale up but not down, since the failing one might have held the
	// count up.
	if invalid == len(s.Metrics) || (invalid > 0 && proposal < cur) {
		d.Error = fmt.Sprintf("invalid metrics (%d invalid out of %d), first error is: %s", invalid, len(s.Metrics), firstErr)
		d.Reason = "no change: " + d.Error
		if invalid < len(s.Metrics) {
			d.Proposal, d.ProposedBy = &proposal, by
		}
		d.Conditions = []Condition{{Type: "ScalingActive", Status: false, Reason: "FailedGetMetrics", Message: d.Error}}
		return
	}
	active := Condition{Type: "ScalingActive", Status: true, Reason: "ValidMetricFound",
		Message: "the autoscaler was able to successfully calculate a replica count from " + by}

	// Scaling to zero: below every activation the demand is nil whatever
	// the ratios say; above any, the service keeps at least one replica.
	floor := s.minReplicas()
	inactive := false
	if floor == 0 {
		inactive = true
		for i, m := range s.Metrics {
			md := &d.Metrics[i]
			q, err := activationQuantity(m, in.Metrics, v)
			if err != nil {
				inactive = false
				continue
			}
			a := q > *m.Activation
			md.Active = &a
			inactive = inactive && !a
		}
		if inactive {
			proposal, by = 0, ""
			active.Message = "every metric is at or below its activation"
		} else {
			floor = 1
		}
	}
	d.Proposal, d.ProposedBy = &proposal, by

	stab := stabilize(s, next.Recommendations, in.Now, cur, proposal)
	next.Recommendations = append(next.Recommendations, Recommendation{At: in.Now, Replicas: proposal})
	d.Stabilization = &stab
	able := Condition{Type: "AbleToScale", Status: true, Reason: "ReadyForNewScale", Message: "recommended size matches current size"}
	switch stab.Window {
	case "scaleUp":
		able.Reason, able.Message = "ScaleUpStabilized", "recent recommendations were lower than current one, applying the lowest recent recommendation"
	case "scaleDown":
		able.Reason, able.Message = "ScaleDownStabilized", "recent recommendations were higher than current one, applying the highest recent recommendation"
	}

	desired, limit := limitRate(s, next, in.Now, cur, stab.Stabilized, floor)
	d.DesiredReplicas = desired
	limited := Condition{Type: "ScalingLimited", Status: false, Reason: "DesiredWithinRange", Message: "the desired count is within the acceptable range"}
	if limit != nil {
		d.Limit = limit
		limited = Condition{Type: "ScalingLimited", Status: true, Reason: limit.Reason, Message: limitMessage[limit.Reason]}
	}
	d.Conditions = []Condition{active, able, limited}
	d.Reason = reason(d, s, inactive)
}

var limitMessage = map[string]string{
	"ScaleUpLimit":    "the desired replica count is increasing faster than the maximum scale rate",
	"ScaleDownLimit":  "the desired replica count is decreasing faster than the maximum scale rate",
	"TooManyReplicas": "the desired replica count is more than the maximum replica count",
	"TooFewReplicas":  "the desired replica count is less than the minimum replica count",
}

// reason writes the decision's one line: what the metrics proposed, then
// what stabilization and limits made of it.
func reason(d *Decision, s *Spec, inactive bool) string {
	cur, p := d.CurrentReplicas, *d.Proposal
	var b strings.Builder
	switch {
	case inactive:
		fmt.Fprintf(&b, "every metric at or below its activation: proposes 0")
	case p > cur:
		md := d.metric(d.ProposedBy)
		fmt.Fprintf(&b, "%s above target (ratio %.3g): proposes %d", d.ProposedBy, md.Ratio, p)
	case p < cur:
		fmt.Fprintf(&b, "all metrics below target: proposes %d", p)
	default:
		b.WriteString("no metric proposes a change")
	}
	if st := d.Stabilization; st.Window != "" {
		fmt.Fprintf(&b, "; held at %d by the %s stabilization window (%v)", st.Stabilized, st.Window, st.WindowLength.Std())
	}
	if l := d.Limit; l != nil {
		if l.Rule != "" {
			fmt.Fprintf(&b, "; capped at %d by %s (%s)", l.Limit, l.Policy, l.Rule)
		} else {
			fmt.Fprintf(&b, "; capped at %d by %s", l.Limit, l.Policy)
		}
	}
	switch {
	case d.DesiredReplicas > cur:
		fmt.Fprintf(&b, ": scale up %d → %d", cur, d.DesiredReplicas)
	case d.DesiredReplicas < cur:
		fmt.Fprintf(&b, ": scale down %d → %d", cur, d.DesiredReplicas)
	default:
		fmt.Fprintf(&b, ": stays at %d", cur)
	}
	return b.String()
}

func (d *Decision) metric(name string) MetricDecision {
	for _, m := range d.Metrics {
		if m.Name == name {
			return m
		}
	}
	return MetricDecision{}
}

// clone copies the state's lists so that appending to the copy cannot
// write into the caller's arrays.
func (st State) clone() State {
	st.Recommendations = append([]Recommendation(nil), st.Recommendations...)
	st.ScaleUpEvents = append([]ScaleEvent(nil), st.ScaleUpEvents...)
	st.ScaleDownEvents = append([]ScaleEvent(nil), st.ScaleDownEvents...)
	return st
}

// prune drops what no later decision can see: recommendations older than
// both windows, events older than their direction's longest policy
// period. (HPA keeps them and overwrites them later; the decisions are
// the same, and this keeps the State small enough to log.)
func (st *State) prune(s *Spec, now time.Time) {
	window := max(s.Behavior.ScaleUp.StabilizationWindow.Std(), s.Behavior.ScaleDown.StabilizationWindow.Std())
	st.Recommendations = keepAfter(st.Recommendations, now.Add(-window), func(r Recommendation) time.Time { return r.At })
	st.ScaleUpEvents = keepAfter(st.ScaleUpEvents, now.Add(-longestPeriod(s.Behavior.ScaleUp)), eventTime)
	st.ScaleDownEvents = keepAfter(st.ScaleDownEvents, now.Add(-longestPeriod(s.Behavior.ScaleDown)), eventTime)
}

func eventTime(e ScaleEvent) time.Time { return e.At }

func keepAfter[T any](list []T, cutoff time.Time, at func(T) time.Time) []T {
	var out []T
	for _, x := range list {
		if at(x).After(cutoff) {
			out = append(out, x)
		}
	}
	return out
}

func longestPeriod(r *Rules) time.Duration {
	var p time.Duration
	for _, pol := range r.Policies {
		p = max(p, pol.Period.Std())
	}
	return p
}
