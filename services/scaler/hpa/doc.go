// Package hpa is the scaler's algorithm: Kubernetes' Horizontal Pod
// Autoscaler (autoscaling/v2) as one pure function, Decide, with KEDA's
// activation threshold for scaling to and from zero.
//
// Decide takes a Spec, the State that earlier decisions left and an Input
// (replica count, instances, metric observations and the time), and
// returns a Decision and the next State. It does no I/O and reads no
// clock, so a decision replays exactly from what it was given: the
// service keeps State in its log, and Simulate replays a metric series
// through the same function.
//
// # The algorithm, step by step (as the HPA controller does it)
//
//  1. Bounds first: a replica count above maxReplicas or below
//     minReplicas is brought inside at once, without looking at metrics
//     or behaviour; a count of zero with minReplicas above zero means
//     someone scaled the service to zero by hand, and scaling is disabled
//     until they scale it up again.
//  2. Per metric, a proposal: the usage ratio (usage ÷ target) times the
//     ready instances, rounded up; within the tolerance of 1.0 the
//     proposal is the current count. Ready instances without a sample
//     (missing) and instances not yet ready are then accounted for as HPA
//     does: see proposeSamples.
//  3. The largest proposal wins. When some metric could not be computed,
//     the others still scale up but never down.
//  4. Stabilization over the recorded recommendations: a scale-up goes no
//     higher than the lowest recommendation in the scale-up window, a
//     scale-down no lower than the highest one in the scale-down window.
//  5. Rate policies over the recorded scale events of each policy's
//     period, chosen by selectPolicy, then the min and max bounds.
//
// # Scaling to zero
//
// HPA never goes below one replica on its own; KEDA adds zero on top of
// it, and so does this package. With minReplicas 0 every metric carries an
// activation. At zero replicas the metrics are only compared with their
// activations: any above wakes the service to one replica. Above zero the
// algorithm runs as usual with a floor of one, except that when every
// metric is at or below its activation the proposal is 0, which the
// scale-down window and policies then let through in their own time (the
// window plays KEDA's cooldownPeriod, 300 s by default in both).
//
// # Where this differs from HPA, and why
//
//   - One notion of readiness (the registry's passing) for every metric;
//     HPA checks pod readiness only for CPU and counts other metrics from
//     any running pod.
//   - Values are float64, not milli-quantities: HPA truncates an average
//     to a whole milli-unit, this does not. Utilization is truncated to a
//     whole percent, as HPA's int32 utilization is.
//   - An instance without a sample has no request to read; it is given the
//     mean request of the instances that reported (HPA reads the pod
//     spec). Instances of one service share a request in practice.
//
// The HPA source this follows is kubernetes/pkg/controller/podautoscaler
// (horizontal.go, replica_calculator.go); comments name the function a
// step mirrors where the correspondence is not obvious.
package hpa
