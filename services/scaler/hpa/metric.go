package hpa

import (
	"errors"
	"fmt"
	"math"
)

// view is the input's instances, deduplicated (the first entry of an ID
// wins) and in input order, so that every sum below adds the same floats
// in the same order on every replica.
type view struct {
	ids        []string
	ready      map[string]bool
	readyCount int
	// pending is how many replicas have not registered yet
	// (CurrentReplicas beyond the registered instances): HPA's pending
	// pods, which count as not yet ready.
	pending int
}

func newView(in Input) view {
	v := view{ready: make(map[string]bool, len(in.Instances))}
	for _, inst := range in.Instances {
		if _, dup := v.ready[inst.ID]; dup {
			continue
		}
		v.ids = append(v.ids, inst.ID)
		v.ready[inst.ID] = inst.Ready
		if inst.Ready {
			v.readyCount++
		}
	}
	v.pending = max(0, in.CurrentReplicas-len(v.ids))
	return v
}

// propose computes one metric's proposal: HPA's computeReplicasForMetric
// and the ReplicaCalculator method for the metric's kind.
func propose(m Metric, obs map[string]Observation, v view, tol tolerances, current int) MetricDecision {
	md := MetricDecision{Name: m.Name, Type: m.Target.Type, Target: m.Target.Value}
	o, ok := obs[m.Name]
	var err error
	switch {
	case !ok:
		err = errors.New("no observation")
	case m.Target.Type == Value:
		err = proposeValue(&md, o, v, tol, current)
	case m.Target.Type == AverageValue && o.Value != nil:
		err = proposeTotal(&md, o, tol, current)
	default:
		err = proposeSamples(&md, o, v, tol, current)
	}
	if err != nil {
		return MetricDecision{Name: md.Name, Type: md.Type, Target: md.Target, Error: err.Error()}
	}
	return md
}

// proposeValue is GetObjectMetricReplicas / GetExternalMetricReplicas
// (getUsageRatioReplicaCount): the ratio of one value to its target,
// times the ready instances. HPA multiplies by the ready pods here, not
// the replica count, so while no instance is ready a value metric
// proposes 0 and the other metrics or minReplicas decide.
func proposeValue(md *MetricDecision, o Observation, v view, tol tolerances, current int) error {
	if o.Value == nil || len(o.Samples) > 0 {
		return errors.New("a value target takes one value, not samples")
	}
	if !finite(*o.Value) || *o.Value < 0 {
		return fmt.Errorf("value %g is not a number at least 0", *o.Value)
	}
	md.Usage = *o.Value
	md.Ratio = md.Usage / md.Target
	md.Ready = v.readyCount
	if !finite(md.Ratio) {
		return errors.New("usage ratio out of range")
	}
	// (HPA's count from zero, ceil(ratio), has no place here: at zero
	// replicas the activation decides, see wake.)
	if tol.within(md.Ratio) {
		md.WithinTolerance, md.Proposal = true, current
		return nil
	}
	md.Proposal = ceilReplicas(md.Ratio * float64(v.readyCount))
	return nil
}

// proposeTotal is GetExternalPerPodMetricReplicas: a service-wide total
// against a per-instance target, over the replica count.
func proposeTotal(md *MetricDecision, o Observation, tol tolerances, current int) error {
	if len(o.Samples) > 0 {
		return errors.New("give samples or a value, not both")
	}
	total := *o.Value
	if !finite(total) || total < 0 {
		return fmt.Errorf("value %g is not a number at least 0", total)
	}
	md.Usage = total
	if current > 0 {
		md.Usage = total / float64(current)
	}
	md.Ratio = md.Usage / md.Target
	md.Ready = current
	if !finite(md.Ratio) {
		return errors.New("usage ratio out of range")
	}
	if current > 0 && tol.within(md.Ratio) {
		md.WithinTolerance, md.Proposal = true, current
		return nil
	}
	md.Proposal = ceilReplicas(total / md.Target)
	return nil
}

// proposeSamples is calcPlainMetricReplicas (averageValue) and
// GetResourceReplicas (utilization): the per-instance samples of ready
// instances against the target, then, when some ready instances sent no
// sample or some are not ready, the careful recount the HPA docs
// describe under "Algorithm details".
func proposeSamples(md *MetricDecision, o Observation, v view, tol tolerances, current int) error {
	if o.Value != nil {
		return errors.New("a utilization target takes per-instance samples, not a value")
	}
	util := md.Type == Utilization
	byID := make(map[string]Sample, len(o.Samples))
	for _, s := range o.Samples {
		if !finite(s.Value) || s.Value < 0 {
			return fmt.Errorf("instance %q: value %g is not a number at least 0", s.Instance, s.Value)
		}
		if util && (!finite(s.Request) || s.Request <= 0) {
			return fmt.Errorf("instance %q: request %g is not a positive number", s.Instance, s.Request)
		}
		byID[s.Instance] = s // a later sample of the same instance wins
	}
	// groupPods: ready with a sample, ready without one (missing), not
	// ready (unready, their samples dropped). Samples of instances that
	// are not registered are ignored.
	var ready, missing, unready []string
	var reqSum float64
	var reqN int
	for _, id := range v.ids {
		s, has := byID[id]
		if has {
			reqSum += s.Request
			reqN++
		}
		switch {
		case !v.ready[id]:
			unready = append(unready, id)
		case !has:
			missing = append(missing, id)
		default:
			ready = append(ready, id)
		}
	}
	unreadyN := len(unready) + v.pending
	md.Ready, md.Missing, md.Unready = len(ready), len(missing), unreadyN
	if len(ready) == 0 {
		return errors.New("no samples from ready instances")
	}
	// An instance without a sample has no request to read; the instances
	// of one service share a request in practice (pods of one template),
	// so the mean of the known ones stands in for it.
	meanReq := reqSum / float64(reqN)
	request := func(id string) float64 {
		if s, ok := byID[id]; ok {
			return s.Request
		}
		return meanReq
	}

	// ratio over a set of (value, request) pairs, as
	// GetResourceUtilizationRatio and GetMetricUsageRatio compute it.
	var sumV, sumR float64
	var n int
	add := func(value, req float64) { sumV += value; sumR += req; n++ }
	ratio := func() (usage, r float64) {
		if util {
			// Utilization is a whole percentage in HPA (int32, truncated);
			// the 1e-9 keeps float noise from costing a percent
			// (0.29 × 100 is 28.999999999999996).
			usage = math.Floor(100*sumV/sumR + 1e-9)
		} else {
			usage = sumV / float64(n)
		}
		return usage, usage / md.Target
	}
	for _, id := range ready {
		add(byID[id].Value, request(id))
	}
	md.Usage, md.Ratio = ratio()
	if !finite(md.Ratio) {
		return errors.New("usage ratio out of range")
	}
	scaleUpWithUnready := unreadyN > 0 && md.Ratio > 1
	if !scaleUpWithUnready && len(missing) == 0 {
		if tol.within(md.Ratio) {
			md.WithinTolerance, md.Proposal = true, current
			return nil
		}
		md.Proposal = ceilReplicas(md.Ratio * float64(len(ready)))
		return nil
	}

	if len(missing) > 0 {
		switch {
		case md.Ratio < 1:
			// On a scale-down, a missing instance counts as using the
			// target (utilization: its request, or the target when that
			// is above 100 %), so that it holds the count up.
			for _, id := range missing {
				if util {
					add(request(id)*max(100, md.Target)/100, request(id))
				} else {
					add(md.Target, 0)
				}
			}
		case md.Ratio > 1:
			// On a scale-up, as using nothing, so that it damps it.
			for _, id := range missing {
				add(0, request(id))
			}
		}
	}
	if scaleUpWithUnready {
		for _, id := range unready {
			add(0, request(id))
		}
		for range v.pending {
			add(0, meanReq)
		}
	}
	_, newRatio := ratio()
	if !finite(newRatio) {
		return errors.New("usage ratio out of range")
	}
	md.Rebalanced = &newRatio
	if tol.within(newRatio) {
		md.WithinTolerance, md.Proposal = true, current
		return nil
	}
	if (md.Ratio < 1 && newRatio > 1) || (md.Ratio > 1 && newRatio < 1) {
		md.Reversed, md.Proposal = true, current
		return nil
	}
	proposal := ceilReplicas(newRatio * float64(n))
	if (newRatio < 1 && proposal > current) || (newRatio > 1 && proposal < current) {
		// Counting more instances than the ratio was measured on can turn
		// the direction around too.
		md.Reversed, md.Proposal = true, current
		return nil
	}
	md.Proposal = proposal
	return nil
}

// activationQuantity is what a metric's activation compares: the value,
// or the service-wide total of an averageValue metric (the sum of the
// ready instances' samples, or the total it came as).
func activationQuantity(m Metric, obs map[string]Observation, v view) (float64, error) {
	o, ok := obs[m.Name]
	if !ok {
		return 0, errors.New("no observation")
	}
	if o.Value != nil {
		if !finite(*o.Value) || *o.Value < 0 {
			return 0, fmt.Errorf("value %g is not a number at least 0", *o.Value)
		}
		return *o.Value, nil
	}
	if m.Target.Type == Value {
		return 0, errors.New("a value target takes one value, not samples")
	}
	byID := make(map[string]float64, len(o.Samples))
	for _, s := range o.Samples {
		if !finite(s.Value) || s.Value < 0 {
			return 0, fmt.Errorf("instance %q: value %g is not a number at least 0", s.Instance, s.Value)
		}
		byID[s.Instance] = s.Value
	}
	var total float64
	for _, id := range v.ids {
		if x, ok := byID[id]; ok && v.ready[id] {
			total += x
		}
	}
	if !finite(total) {
		return 0, errors.New("total out of range")
	}
	return total, nil
}

// ceilReplicas rounds a replica count up, saturating at MaxReplicas (HPA
// clamps to MaxInt32 the same way) so that no float becomes a wild int.
// A count a few ulps above a whole number is that number: a usage split
// over instances and summed back (130 over 3 is 43.333… each) comes back
// as 13.000000000000002, which a plain ceil would make 14 where HPA's
// milli-unit arithmetic, and the exact value, say 13.
func ceilReplicas(x float64) int {
	if !(x < MaxReplicas) { // also catches NaN
		if math.IsNaN(x) {
			return 0
		}
		return MaxReplicas
	}
	if x <= 0 {
		return 0
	}
	return int(math.Ceil(x - x*floatNoise))
}

// floatNoise is the relative error ceilReplicas forgives: thousands of
// ulps, far below any difference a metric can mean.
const floatNoise = 1e-12
