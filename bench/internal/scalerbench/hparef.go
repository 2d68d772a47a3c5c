package scalerbench

import (
	"math"
	"time"
)

// hpaRef is the scaler section's yardstick: the Kubernetes HPA
// controller's decision for one External metric with an AverageValue
// target (a service-wide total such as the gateway's request rate),
// transcribed from kubernetes/pkg/controller/podautoscaler apart from
// Steward's own autoscale package, so that the two can disagree. It
// follows
//
//   - replica_calculator.go GetExternalPerPodMetricReplicas: usageRatio =
//     total / (target × current); within the tolerance the count stays,
//     otherwise it is ceil(total / target);
//   - horizontal.go reconcileAutoscaler: a count outside [min, max] is
//     brought inside without looking at the metric; a count of zero with
//     min above zero disables scaling;
//   - normalizeDesiredReplicasWithBehaviors: maybeInitScaleDownStabilization
//     Window records the current count once, stabilizeRecommendationWith
//     Behaviors bounds the proposal by the lowest recommendation of the
//     scale-up window and the highest of the scale-down window (strictly
//     newer than now − window, time.After) and records it unstabilized,
//     convertDesiredReplicasWithBehaviorRate limits the change by the
//     policies over the scale events of their periods (both directions'
//     events move the period's start count) chosen by selectPolicy, then
//     max or min.
//
// Quantities are float64 where HPA has milli-quantities; the series this
// replays has one decimal, which both represent exactly. The controller's
// clock is the now of each call.
type hpaRef struct {
	spec                 hpaSpec
	recs                 []hpaRec
	upEvents, downEvents []hpaEvent
	started              bool
}

type hpaSpec struct {
	minReplicas, maxReplicas int
	target                   float64 // per replica
	tolerance                float64 // both directions
	up, down                 hpaRules
}

// hpaRules is HPAScalingRules.
type hpaRules struct {
	window       time.Duration
	selectPolicy string // Max, Min or Disabled
	policies     []hpaPolicy
}

type hpaPolicy struct {
	percent bool // Percent, else Pods
	value   int
	period  time.Duration
}

// hpaRec is a timestampedRecommendation, hpaEvent a timestampedScaleEvent.
type hpaRec struct {
	at       time.Time
	replicas int
}

type hpaEvent struct {
	at     time.Time
	change int // never negative: the list says the direction
}

// sync is one reconcileAutoscaler at now: the count the controller sets.
func (h *hpaRef) sync(now time.Time, current int, total float64) int {
	s := h.spec
	desired := current
	switch {
	case current == 0 && s.minReplicas != 0: // ScalingDisabled
		return current
	case current > s.maxReplicas:
		desired = s.maxReplicas
	case current < s.minReplicas:
		desired = s.minReplicas
	default:
		if !h.started && s.down.window > 0 { // recordInitialRecommendation
			h.recs = append(h.recs, hpaRec{now, current})
		}
		h.started = true
		proposal := current
		if ratio := total / (s.target * float64(current)); ratio < 1-s.tolerance || ratio > 1+s.tolerance {
			proposal = int(math.Ceil(total / s.target))
		}
		desired = h.limitRate(now, current, h.stabilize(now, current, proposal))
	}
	if desired > current {
		h.upEvents = append(h.upEvents, hpaEvent{now, desired - current})
	} else if desired < current {
		h.downEvents = append(h.downEvents, hpaEvent{now, current - desired})
	}
	return desired
}

func (h *hpaRef) stabilize(now time.Time, current, proposal int) int {
	upCut, downCut := now.Add(-h.spec.up.window), now.Add(-h.spec.down.window)
	up, down := proposal, proposal
	kept := h.recs[:0]
	for _, r := range h.recs {
		if r.at.After(upCut) {
			up = min(up, r.replicas)
		}
		if r.at.After(downCut) {
			down = max(down, r.replicas)
		}
		// HPA overwrites one sample older than both windows; dropping
		// them all is the same, since none can count again.
		if !(r.at.Before(upCut) && r.at.Before(downCut)) {
			kept = append(kept, r)
		}
	}
	h.recs = append(kept, hpaRec{now, proposal})
	return min(max(current, up), down)
}

func (h *hpaRef) limitRate(now time.Time, current, desired int) int {
	s := h.spec
	switch {
	case desired > current:
		limit := h.policyLimit(now, current, s.up, true)
		limit = max(limit, current) // no further up until events age out
		return min(desired, s.maxReplicas, limit)
	case desired < current:
		limit := h.policyLimit(now, current, s.down, false)
		limit = min(limit, current)
		return max(desired, s.minReplicas, limit)
	}
	return desired
}

// policyLimit is calculateScaleUpLimitWithScalingRules (up) and
// calculateScaleDownLimitWithBehaviors.
func (h *hpaRef) policyLimit(now time.Time, current int, r hpaRules, up bool) int {
	if r.selectPolicy == "Disabled" {
		return current
	}
	// Max picks the largest change: the highest count up, the lowest down.
	pickHigh := (r.selectPolicy != "Min") == up
	result := math.MinInt
	if !pickHigh {
		result = math.MaxInt
	}
	for _, p := range r.policies {
		start := current - changeSince(h.upEvents, now.Add(-p.period)) + changeSince(h.downEvents, now.Add(-p.period))
		var proposed int
		switch {
		case up && p.percent:
			proposed = int(math.Ceil(float64(start) * (1 + float64(p.value)/100)))
		case up:
			proposed = start + p.value
		case p.percent:
			proposed = int(float64(start) * (1 - float64(p.value)/100)) // truncated, as int32()
		default:
			proposed = start - p.value
		}
		if pickHigh {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// changeSince is getReplicasChangePerPeriod.
func changeSince(events []hpaEvent, cutoff time.Time) int {
	n := 0
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.change
		}
	}
	return n
}

// naiveController has neither tolerance, stabilization nor policies: each
// sync sets ceil(total / target), within [min, max].
func naiveController(s hpaSpec, total float64) int {
	return min(max(int(math.Ceil(total/s.target)), s.minReplicas), s.maxReplicas)
}
