package strategy

// Instance is one running instance as a rolling update's step sees it.
type Instance struct {
	ID string
	// New: it runs the template the rollout goes to.
	New bool
	// Available: passing in the registry (for a new instance, for
	// minReadySeconds). A draining instance is never available.
	Available bool
	// Draining: it left the registry and waits to be stopped; it still
	// runs, so it counts against the surge.
	Draining bool
}

// Plan is what one step does: start Start new instances, stop (drain
// first) the instances Stop names. Done: every replica runs the new
// template and is available, and nothing else runs.
type Plan struct {
	Start int
	Stop  []string
	Done  bool
}

// Step is one step of a rolling update, Kubernetes' rolling algorithm
// (deployment/rolling.go) for one set of instances instead of
// ReplicaSets: start new instances while fewer than Replicas+MaxSurge
// run (never more new than Replicas); stop old unavailable instances
// that cannot count, then old available ones while more than
// Replicas−MaxUnavailable stay available; new instances beyond Replicas
// (the autoscaler lowered the count) go the same way. in is in the order
// instances should go, oldest first. Step is pure: the caller observes,
// records the plan and carries it out.
func Step(b Bounds, in []Instance) Plan {
	var running, newN, availNew, availOld int
	var oldUnavail, oldAvail, newUnavail, newAvail []string
	draining := 0
	for _, i := range in {
		running++
		switch {
		case i.Draining:
			draining++
		case i.New && i.Available:
			newN++
			availNew++
			newAvail = append(newAvail, i.ID)
		case i.New:
			newN++
			newUnavail = append(newUnavail, i.ID)
		case i.Available:
			availOld++
			oldAvail = append(oldAvail, i.ID)
		default:
			oldUnavail = append(oldUnavail, i.ID)
		}
	}
	R := b.Replicas
	p := Plan{Done: newN == R && availNew == R && len(oldAvail)+len(oldUnavail)+draining == 0}
	if p.Done {
		return p
	}
	p.Start = max(0, min(R+b.MaxSurge-running, R-newN))
	minAvailable := R - b.MaxUnavailable
	// Old instances that are not available cost nothing to stop, but may
	// be about to become available: as Kubernetes' cleanupUnhealthy-
	// Replicas, stop only as many as leave minAvailable possible with
	// the new ones that are not available yet.
	clean := min(len(oldUnavail), max(0, running-draining-minAvailable-len(newUnavail)))
	p.Stop = append(p.Stop, oldUnavail[:clean]...)
	budget := max(0, availNew+availOld-minAvailable)
	n := min(len(oldAvail), budget)
	p.Stop = append(p.Stop, oldAvail[:n]...)
	budget -= n
	// New instances beyond Replicas: the ones not available first,
	// newest first, then available ones within the budget.
	if excess := newN - R; excess > 0 {
		for i := len(newUnavail) - 1; i >= 0 && excess > 0; i-- {
			p.Stop = append(p.Stop, newUnavail[i])
			excess--
		}
		for i := len(newAvail) - 1; i >= 0 && excess > 0 && budget > 0; i-- {
			p.Stop = append(p.Stop, newAvail[i])
			excess--
			budget--
		}
	}
	return p
}
