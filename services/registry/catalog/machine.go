package catalog

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// Machine is the catalog's state. Apply mutates it; the query methods must
// be called inside qlog.Log.Read, which excludes Apply.
type Machine struct {
	services map[string]*service
	leases   map[int64]*lease
	// deadlines holds every deterministic timer, keyed by kind:
	//   ttl/<service>/<id>   a TTL check's heartbeat deadline
	//   reap/<service>/<id>  deregisterAfter of a critical instance
	//   lease/<id>           a lease's expiry
	deadlines *qlog.Expiries
	// lastChange is the revision of the last event of any service: the
	// index of the service list, and of a service that has no instances
	// (it may have just lost its last one).
	lastChange int64
	rev        int64     // revision of the entry being applied
	now        time.Time // its log time
	by         string    // its command's token id (Command.By)
}

type service struct {
	name      string
	instances map[string]*Instance
	modRev    int64
	protected bool
	// guard is the policy in force while protected: lifting it is decided
	// by commands (heartbeats, deregistrations) that carry none.
	guard Guard
	// flips are the instances that recently turned critical, for the
	// guard's count and so that a mass failure can be undone.
	flips map[string]flip
}

// flip records an instance turning critical and what it was before.
type flip struct {
	At        time.Time `json:"at"`
	Window    Duration  `json:"window"`
	Prev      Status    `json:"prev"`
	PrevOut   string    `json:"prevOutput,omitempty"`
	PrevSince time.Time `json:"prevSince"`
}

type lease struct {
	ID        int64
	TTL       Duration
	ExpiresAt time.Time
	Instances map[string]struct{} // "service/id"
}

// New returns an empty catalog.
func New() *Machine {
	return &Machine{services: map[string]*service{}, leases: map[int64]*lease{}, deadlines: qlog.NewExpiries()}
}

func ttlKey(svc, id string) string  { return "ttl/" + svc + "/" + id }
func reapKey(svc, id string) string { return "reap/" + svc + "/" + id }

// weightOf is a registration's weight. Normalize fills it in before a
// register command is proposed, so the log holds none without it; 1
// keeps Apply total all the same.
func weightOf(r *Registration) int {
	if r.Weight == nil {
		return 1
	}
	return *r.Weight
}

func leaseKey(id int64) string { return "lease/" + strconv.FormatInt(id, 10) }

// Apply implements qlog.StateMachine.
func (s *Machine) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	s.rev, s.now, s.by = e.Revision, e.Time.UTC(), ""
	var ev events
	out := envelope.Apply(e.Cmd, func(c *Command) Result { s.by = c.By; return s.apply(c, &ev) },
		func(p envelope.Problem) Result { return Result{Outcome: Invalid, Problem: p} })
	if len(ev.list) > 0 {
		s.lastChange = s.rev
	}
	return out, ev.list
}

// events collects a command's events and stamps the services they touch.
type events struct{ list []qlog.Event }

func (ev *events) add(typ, svc string, data any) {
	b, _ := json.Marshal(data)
	ev.list = append(ev.list, qlog.Event{Type: typ, Key: svc, Data: b})
}

func (s *Machine) apply(c *Command, ev *events) Result {
	switch c.Op {
	case "register":
		return s.register(c, ev)
	case "deregister":
		svc, inst := s.lookup(c.Service, c.ID)
		if inst == nil {
			return Result{Outcome: NotFound, Problem: envelope.Refuse(fault.NotFound, "instance %s/%s is not registered", c.Service, c.ID)}
		}
		gone := *inst
		s.remove(svc, inst, ev)
		return Result{Outcome: OK, Instance: &gone}
	case "heartbeat":
		return s.heartbeat(c, ev)
	case "report":
		return s.report(c, ev)
	case "expire":
		return s.expire(c, ev)
	case "reap":
		return s.reap(c, ev)
	case "clear":
		svc := s.services[c.Service]
		if svc == nil {
			return Result{Outcome: NotFound, Problem: envelope.Refuse(fault.NotFound, "service %q has no instances", c.Service)}
		}
		s.lift(svc, ev)
		return Result{Outcome: OK}
	case "grant":
		if c.TTL <= 0 {
			return Result{Outcome: Invalid, Problem: envelope.Refuse(fault.Invalid, "lease TTL must be positive")}
		}
		l := &lease{ID: s.rev, TTL: c.TTL, ExpiresAt: s.now.Add(c.TTL.Std()), Instances: map[string]struct{}{}}
		s.leases[l.ID] = l
		s.deadlines.Set(leaseKey(l.ID), l.ExpiresAt, s.rev)
		return Result{Outcome: OK, Lease: l.view()}
	case "keepalive":
		l := s.leases[c.Lease]
		if l == nil {
			return Result{Outcome: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.Lease)}
		}
		l.ExpiresAt = s.now.Add(l.TTL.Std())
		s.deadlines.Set(leaseKey(l.ID), l.ExpiresAt, s.rev)
		return Result{Outcome: OK, Lease: l.view()}
	case "revoke", "expireLease":
		l := s.leases[c.Lease]
		if l == nil {
			return Result{Outcome: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.Lease)}
		}
		if c.Op == "expireLease" && !s.deadlines.Expired(leaseKey(l.ID), c.Since, s.now) {
			return Result{Outcome: NotDue, Problem: envelope.Refuse(fault.PreconditionFailed, "lease was renewed or is not yet due")}
		}
		view := l.view()
		s.revoke(l, ev)
		return Result{Outcome: OK, Lease: view, Applied: len(view.Instances)}
	default:
		return Result{Outcome: Invalid, Problem: envelope.Refuse(fault.Invalid, "unknown op %q", c.Op)}
	}
}

func (s *Machine) lookup(svcName, id string) (*service, *Instance) {
	svc := s.services[svcName]
	if svc == nil {
		return nil, nil
	}
	return svc, svc.instances[id]
}

func (s *Machine) register(c *Command, ev *events) Result {
	r := c.Register
	if r == nil || c.Service == "" || c.ID == "" {
		return Result{Outcome: Invalid, Problem: envelope.Refuse(fault.Invalid, "register needs service, id and registration")}
	}
	if c.Lease != 0 && s.leases[c.Lease] == nil {
		return Result{Outcome: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.Lease)}
	}
	svc := s.services[c.Service]
	if svc == nil {
		svc = &service{name: c.Service, instances: map[string]*Instance{}, flips: map[string]flip{}}
		s.services[c.Service] = svc
	}
	prev := svc.instances[c.ID]
	inst := &Instance{
		Service: c.Service, ID: c.ID, Address: r.Address, Port: r.Port,
		Tags: slices.Clone(r.Tags), Metadata: maps.Clone(r.Metadata), Zone: r.Zone, Version: r.Version,
		Weight: weightOf(r), Check: r.Check, Lease: c.Lease,
		CreateRevision: s.rev, ModRevision: s.rev,
	}
	if inst.Tags == nil {
		inst.Tags = []string{}
	}
	if inst.Metadata == nil {
		inst.Metadata = map[string]string{}
	}
	if prev != nil && sameCheck(prev.Check, r.Check) {
		// Re-registering with the same check keeps the health it earned.
		inst.CreateRevision = prev.CreateRevision
		inst.Status, inst.Output, inst.StatusSince, inst.Held = prev.Status, prev.Output, prev.StatusSince, prev.Held
		inst.CheckRevision = prev.CheckRevision
	} else {
		if prev != nil {
			inst.CreateRevision = prev.CreateRevision
			delete(svc.flips, c.ID)
		}
		inst.StatusSince = s.now
		switch {
		case r.Check.Active():
			// Not routable until a probe passed, as a Kubernetes
			// readiness probe.
			inst.Status, inst.Output = Critical, AwaitingFirstCheck
			inst.CheckRevision = s.rev
		default:
			// No check, or a TTL check: registering is the first
			// heartbeat.
			inst.Status = Passing
		}
	}
	if prev != nil && prev.Lease != 0 && prev.Lease != c.Lease {
		if l := s.leases[prev.Lease]; l != nil {
			delete(l.Instances, c.Service+"/"+c.ID)
		}
	}
	if c.Lease != 0 {
		s.leases[c.Lease].Instances[c.Service+"/"+c.ID] = struct{}{}
	}
	svc.instances[c.ID] = inst
	if r.Check != nil && r.Check.TTL > 0 && inst.Held == nil {
		s.deadlines.Set(ttlKey(c.Service, c.ID), s.now.Add(r.Check.TTL.Std()+Grace(r.Check.TTL.Std())), s.rev)
	} else {
		s.deadlines.Remove(ttlKey(c.Service, c.ID))
	}
	s.armReap(inst)
	s.changed(svc, inst, ev)
	s.reconsider(svc, ev)
	out := *inst
	return Result{Outcome: OK, Instance: &out}
}

// Grace is how late a heartbeat may be and still count: a twentieth of
// the TTL, between 100 ms and 500 ms. A client that heartbeats once per
// TTL (as many do) sends on time, but its heartbeat reaches the log a
// few milliseconds later or earlier than the last one did; without the
// grace an expiry proposed in that gap would flip a healthy instance
// critical and back (measured: 284 of 10,000 instances in a minute at
// 2,000 heartbeats/s). An instance is critical once no heartbeat was
// applied for TTL + Grace of log time.
func Grace(ttl time.Duration) time.Duration {
	return min(max(ttl/20, 100*time.Millisecond), 500*time.Millisecond)
}

// sameCheck reports whether two check definitions are identical.
func sameCheck(a, b *Check) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (s *Machine) heartbeat(c *Command, ev *events) Result {
	svc, inst := s.lookup(c.Service, c.ID)
	if inst == nil {
		return Result{Outcome: NotFound, Problem: envelope.Refuse(fault.NotFound, "instance %s/%s is not registered", c.Service, c.ID)}
	}
	if inst.Check == nil || inst.Check.TTL <= 0 {
		return Result{Outcome: Conflict, Problem: envelope.Refuse(fault.Conflict, "instance %s/%s has no TTL check to heartbeat", c.Service, c.ID)}
	}
	rep := Report{Status: Passing}
	if c.Report != nil {
		rep = *c.Report
		if rep.Status == "" {
			rep.Status = Passing
		}
	}
	if !rep.Status.Valid() {
		return Result{Outcome: Invalid, Problem: envelope.Refuse(fault.Invalid, "status %q: want passing, warning or critical", rep.Status)}
	}
	s.deadlines.Set(ttlKey(c.Service, c.ID), s.now.Add(inst.Check.TTL.Std()+Grace(inst.Check.TTL.Std())), s.rev)
	// The instance's own word is not second-guessed by the guard: it
	// proves the instance is reachable, which is what the guard doubts.
	if s.setStatus(inst, rep) {
		s.changed(svc, inst, ev)
		s.reconsider(svc, ev)
	}
	out := *inst
	return Result{Outcome: OK, Instance: &out}
}

// setStatus applies a report at once and clears a held result. It reports
// whether anything visible changed.
func (s *Machine) setStatus(inst *Instance, rep Report) bool {
	changed := inst.Held != nil || inst.Status != rep.Status || inst.Output != rep.Output
	inst.Held = nil
	if inst.Status != rep.Status {
		inst.Status, inst.StatusSince = rep.Status, s.now
	}
	inst.Output = rep.Output
	if rep.Status != Critical {
		delete(s.services[inst.Service].flips, inst.ID)
	}
	s.armReap(inst)
	return changed
}

// armReap starts or stops the deregisterAfter timer: it runs while the
// instance is critical, from the moment it turned critical.
func (s *Machine) armReap(inst *Instance) {
	key := reapKey(inst.Service, inst.ID)
	if inst.Status != Critical || inst.Check == nil || inst.Check.DeregisterAfter <= 0 {
		s.deadlines.Remove(key)
		return
	}
	at := inst.StatusSince.Add(inst.Check.DeregisterAfter.Std())
	s.deadlines.Set(key, at, inst.StatusSince.UnixNano())
}

// changed stamps inst and its service with this revision and the token
// that wrote it, and emits the instance's event.
func (s *Machine) changed(svc *service, inst *Instance, ev *events) {
	inst.ModRevision, inst.By, svc.modRev = s.rev, s.by, s.rev
	ev.add(EventInstance, svc.name, inst)
}

// remove deregisters inst.
func (s *Machine) remove(svc *service, inst *Instance, ev *events) {
	delete(svc.instances, inst.ID)
	delete(svc.flips, inst.ID)
	s.deadlines.Remove(ttlKey(svc.name, inst.ID))
	s.deadlines.Remove(reapKey(svc.name, inst.ID))
	if inst.Lease != 0 {
		if l := s.leases[inst.Lease]; l != nil {
			delete(l.Instances, svc.name+"/"+inst.ID)
		}
	}
	svc.modRev = s.rev
	gone := *inst
	gone.By = s.by
	ev.add(EventDeregister, svc.name, &gone)
	if len(svc.instances) == 0 {
		if svc.protected {
			svc.protected = false
			ev.add(EventService, svc.name, ServiceState{Service: svc.name, By: s.by})
		}
		delete(s.services, svc.name)
		return
	}
	s.reconsider(svc, ev)
}

// revoke deregisters a lease's instances, in sorted order, and forgets it.
func (s *Machine) revoke(l *lease, ev *events) {
	for _, key := range slices.Sorted(maps.Keys(l.Instances)) {
		name, id, _ := strings.Cut(key, "/")
		if svc, inst := s.lookup(name, id); inst != nil {
			s.remove(svc, inst, ev)
		}
	}
	delete(s.leases, l.ID)
	s.deadlines.Remove(leaseKey(l.ID))
}

func (l *lease) view() *Lease {
	// [] rather than null for a lease without instances, as lists are
	// everywhere else in the API.
	ids := append([]string{}, slices.Sorted(maps.Keys(l.Instances))...)
	return &Lease{ID: l.ID, TTL: l.TTL, ExpiresAt: l.ExpiresAt, Instances: ids}
}

// report applies probe results from the replica that runs the checks.
func (s *Machine) report(c *Command, ev *events) Result {
	critical := map[string][]Item{}
	applied := 0
	for _, it := range c.Items {
		svc, inst := s.lookup(it.Service, it.ID)
		if inst == nil || !inst.Check.Active() || inst.CheckRevision != it.Since || it.Report == nil || !it.Report.Status.Valid() {
			continue // deregistered, redefined, or malformed: stale news
		}
		if it.Report.Status == Critical && inst.Status != Critical {
			critical[it.Service] = append(critical[it.Service], it)
			continue
		}
		if s.setStatus(inst, *it.Report) {
			s.changed(svc, inst, ev)
			applied++
		}
	}
	applied += s.turnCritical(critical, c.Guard, ev)
	for _, name := range slices.Sorted(maps.Keys(s.touched(c.Items))) {
		if svc := s.services[name]; svc != nil {
			s.reconsider(svc, ev)
		}
	}
	return Result{Outcome: OK, Applied: applied}
}

// touched returns the services a batch names.
func (s *Machine) touched(items []Item) map[string]bool {
	out := map[string]bool{}
	for _, it := range items {
		out[it.Service] = true
	}
	return out
}

// expire turns instances whose TTL ran out critical.
func (s *Machine) expire(c *Command, ev *events) Result {
	critical := map[string][]Item{}
	for _, it := range c.Items {
		_, inst := s.lookup(it.Service, it.ID)
		key := ttlKey(it.Service, it.ID)
		if inst == nil || !s.deadlines.Expired(key, it.Since, s.now) {
			continue
		}
		s.deadlines.Remove(key)
		if inst.Status == Critical {
			continue
		}
		it.Report = &Report{Status: Critical, Output: fmt.Sprintf("TTL %s expired: no heartbeat since %s",
			inst.Check.TTL.Std(), s.now.Add(-inst.Check.TTL.Std()-Grace(inst.Check.TTL.Std())).Format(time.RFC3339Nano))}
		critical[it.Service] = append(critical[it.Service], it)
	}
	return Result{Outcome: OK, Applied: s.turnCritical(critical, c.Guard, ev)}
}

// reap deregisters instances that stayed critical for deregisterAfter.
func (s *Machine) reap(c *Command, ev *events) Result {
	n := 0
	for _, it := range c.Items {
		svc, inst := s.lookup(it.Service, it.ID)
		if inst == nil || inst.Status != Critical || !s.deadlines.Expired(reapKey(it.Service, it.ID), it.Since, s.now) {
			continue
		}
		s.remove(svc, inst, ev)
		n++
	}
	return Result{Outcome: OK, Applied: n}
}
