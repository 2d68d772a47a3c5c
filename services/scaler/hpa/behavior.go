package hpa

import (
	"fmt"
	"math"
	"time"
)

// stabilize is HPA's stabilizeRecommendationWithBehaviors. The
// recommendation starts at the current count; a scale-up goes no higher
// than the lowest recommendation of the scale-up window, a scale-down no
// lower than the highest of the scale-down window. A recommendation
// counts when it is strictly newer than now minus the window, as in HPA
// (time.After), so a window of 0 s sees none.
func stabilize(s *Spec, recs []Recommendation, now time.Time, current, desired int) Stabilization {
	upW := s.Behavior.ScaleUp.StabilizationWindow.Std()
	downW := s.Behavior.ScaleDown.StabilizationWindow.Std()
	upCutoff, downCutoff := now.Add(-upW), now.Add(-downW)
	up, down := desired, desired
	for _, r := range recs {
		if r.At.After(upCutoff) {
			up = min(up, r.Replicas)
		}
		if r.At.After(downCutoff) {
			down = max(down, r.Replicas)
		}
	}
	st := Stabilization{Recommendation: desired, Stabilized: current, ScaleUpBound: up, ScaleDownBound: down}
	if st.Stabilized < up {
		st.Stabilized = up
	}
	if st.Stabilized > down {
		st.Stabilized = down
	}
	if st.Stabilized != desired {
		// HPA names the direction by the recommendation against the
		// current count.
		if desired >= current {
			st.Window, st.WindowLength = "scaleUp", *s.Behavior.ScaleUp.StabilizationWindow
		} else {
			st.Window, st.WindowLength = "scaleDown", *s.Behavior.ScaleDown.StabilizationWindow
		}
	}
	return st
}

// limitRate is HPA's convertDesiredReplicasWithBehaviorRate: the
// direction's policies over the scale events of their periods, then
// maxReplicas or the floor (minReplicas, or 1 while a scale-to-zero
// service is active). Only the direction of travel is bounded: a count
// that does not move was already within [min, max].
func limitRate(s *Spec, st *State, now time.Time, current, desired, floor int) (int, *Limit) {
	switch {
	case desired > current:
		limit, l := rateLimit(true, s.Behavior.ScaleUp, st, now, current)
		if limit < current {
			// The period already used its allowance; wait for events
			// to age out rather than scale down.
			limit = current
		}
		allowed := &Limit{Reason: "TooManyReplicas", Policy: "maxReplicas", Limit: s.MaxReplicas}
		if s.MaxReplicas > limit {
			l.Limit = limit
			allowed = l
		}
		if desired > allowed.Limit {
			return allowed.Limit, allowed
		}
	case desired < current:
		limit, l := rateLimit(false, s.Behavior.ScaleDown, st, now, current)
		if limit > current {
			limit = current
		}
		allowed := &Limit{Reason: "TooFewReplicas", Policy: "minReplicas", Limit: floor}
		if floor > s.minReplicas() {
			allowed.Rule = "1 while a metric is above its activation"
		}
		if floor < limit {
			l.Limit = limit
			allowed = l
		}
		if desired < allowed.Limit {
			return allowed.Limit, allowed
		}
	}
	return desired, nil
}

// rateLimit is calculateScaleUpLimitWithScalingRules and
// calculateScaleDownLimitWithBehaviors: each policy allows a count
// measured from the count at the start of its period (the current count
// less what was added and plus what was removed within it); Max takes the
// policy that allows the largest change, Min the smallest, Disabled none.
func rateLimit(up bool, r *Rules, st *State, now time.Time, current int) (int, *Limit) {
	field, reason := "behavior.scaleDown", "ScaleDownLimit"
	if up {
		field, reason = "behavior.scaleUp", "ScaleUpLimit"
	}
	if r.SelectPolicy == SelectDisabled {
		return current, &Limit{Reason: reason, Policy: field + ".selectPolicy", Rule: "Disabled"}
	}
	// The largest change is the highest count going up and the lowest
	// going down.
	higher := up == (r.SelectPolicy != SelectMin)
	best, at := 0, -1
	for i, p := range r.Policies {
		c := allowedBy(up, p, periodStart(st, now, current, p.Period.Std()))
		if at < 0 || (higher && c > best) || (!higher && c < best) {
			best, at = c, i
		}
	}
	return best, &Limit{Reason: reason, Policy: fmt.Sprintf("%s.policies[%d]", field, at), Rule: r.Policies[at].String()}
}

// allowedBy is the count one policy allows from the period's start.
func allowedBy(up bool, p Policy, start int) int {
	switch {
	case up && p.Type == Pods:
		return start + p.Value
	case up:
		// Rounded up, or a small count could never grow.
		return saturate(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
	case p.Type == Pods:
		return start - p.Value
	default:
		// Truncated, as HPA's int32 conversion: 10 % of 72 removes 8.
		return saturate(math.Trunc(float64(start) * (1 - float64(p.Value)/100)))
	}
}

// periodStart is the replica count at the start of a policy's period:
// getReplicasChangePerPeriod over both directions' events, counting those
// strictly newer than now minus the period.
func periodStart(st *State, now time.Time, current int, period time.Duration) int {
	cutoff := now.Add(-period)
	start := current
	for _, e := range st.ScaleUpEvents {
		if e.At.After(cutoff) {
			start -= e.Change
		}
	}
	for _, e := range st.ScaleDownEvents {
		if e.At.After(cutoff) {
			start += e.Change
		}
	}
	return start
}

// saturate converts a whole float to int, holding it within ±2^53 so
// that a State with absurd events cannot turn a limit into a wrapped int.
func saturate(f float64) int {
	const lim = 1 << 53
	return int(max(-lim, min(lim, f)))
}
