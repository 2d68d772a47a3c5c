package catalog

import (
	"maps"
	"slices"
)

// turnCritical applies critical results, service by service, through the
// guard against mass deregistration, and returns how many took effect.
//
// The guard counts, per service, the instances that would be critical
// through recent failures: those in this batch, those that turned critical
// within their own check window (flips), and those already held. When that
// is more than Share of the instances (and the service has at least
// MinInstances), the failure looks like the checker's or the network's
// rather than the instances': every one of them keeps (or gets back) its
// previous status, the result is held on the instance for all to see, and
// the service is marked protected. Single failures, and failures spread
// over longer than a window, pass through.
func (s *Machine) turnCritical(byService map[string][]Item, g *Guard, ev *events) int {
	n := 0
	for _, name := range slices.Sorted(maps.Keys(byService)) {
		svc := s.services[name]
		items := byService[name]
		if g != nil && s.overwhelmed(svc, items, *g) {
			s.protect(svc, items, *g, ev)
			continue
		}
		for _, it := range items {
			inst := svc.instances[it.ID]
			svc.flips[it.ID] = flip{At: s.now, Window: Duration(inst.Check.Window()),
				Prev: inst.Status, PrevOut: inst.Output, PrevSince: inst.StatusSince}
			s.setStatus(inst, *it.Report)
			s.changed(svc, inst, ev)
			n++
		}
	}
	return n
}

// overwhelmed reports whether turning items critical would make more than
// the guard's share of svc's instances fail within a window.
func (s *Machine) overwhelmed(svc *service, items []Item, g Guard) bool {
	total := len(svc.instances)
	if g.MinInstances <= 0 || total < g.MinInstances {
		return false
	}
	failing := map[string]bool{}
	for _, it := range items {
		failing[it.ID] = true
	}
	for id, f := range svc.flips {
		if f.At.Add(f.Window.Std()).After(s.now) {
			failing[id] = true
		}
	}
	for id, inst := range svc.instances {
		if inst.Held != nil {
			failing[id] = true
		}
	}
	return float64(len(failing)) > g.Share*float64(total)
}

// protect holds items' results and undoes the recent flips.
func (s *Machine) protect(svc *service, items []Item, g Guard, ev *events) {
	for _, it := range items {
		inst := svc.instances[it.ID]
		rep := *it.Report
		inst.Held = &rep
		s.changed(svc, inst, ev)
	}
	for _, id := range slices.Sorted(maps.Keys(svc.flips)) {
		f := svc.flips[id]
		inst := svc.instances[id]
		delete(svc.flips, id)
		if inst == nil || inst.Status != Critical || !f.At.Add(f.Window.Std()).After(s.now) {
			continue
		}
		held := Report{Status: inst.Status, Output: inst.Output}
		inst.Status, inst.Output, inst.StatusSince = f.Prev, f.PrevOut, f.PrevSince
		inst.Held = &held
		s.armReap(inst)
		s.changed(svc, inst, ev)
	}
	svc.guard = g
	if !svc.protected {
		svc.protected = true
		ev.add(EventService, svc.name, s.state(svc))
	}
}

// reconsider lifts a service's protection once the share of held
// instances falls back to what the guard allows.
func (s *Machine) reconsider(svc *service, ev *events) {
	if !svc.protected {
		return
	}
	held := 0
	for _, inst := range svc.instances {
		if inst.Held != nil {
			held++
		}
	}
	total := len(svc.instances)
	if held > 0 && total >= svc.guard.MinInstances && float64(held) > svc.guard.Share*float64(total) {
		return
	}
	s.lift(svc, ev)
}

// lift applies every held result and ends the protection.
func (s *Machine) lift(svc *service, ev *events) {
	for _, id := range slices.Sorted(maps.Keys(svc.instances)) {
		inst := svc.instances[id]
		if inst.Held == nil {
			continue
		}
		s.setStatus(inst, *inst.Held)
		s.changed(svc, inst, ev)
	}
	if svc.protected {
		svc.protected = false
		ev.add(EventService, svc.name, s.state(svc))
	}
}

func (s *Machine) state(svc *service) ServiceState {
	st := ServiceState{Service: svc.name, Protected: svc.protected, Instances: len(svc.instances), By: s.by}
	for _, inst := range svc.instances {
		if inst.Held != nil {
			st.Held++
		}
	}
	return st
}
