package ledger

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

// KeepDecisions is how many decisions of each scaler the replicas hold;
// older ones are read from the history archive.
const KeepDecisions = 100

// Machine is the state of every scaler. Apply mutates it; the query
// methods must be called inside qlog.Log.Read, which excludes Apply.
type Machine struct {
	scalers map[string]*record
	fence   Fence
	keep    int
}

// record is one scaler with what only the control loop reads.
type record struct {
	Scaler Scaler    `json:"scaler"`
	State  hpa.State `json:"state"`
	// Recent holds the newest decisions, oldest first.
	Recent []Decision `json:"recent,omitempty"`
	// Rollout is the newest rollout, in progress or finished; History
	// the finished ones (KeepRollouts), oldest first; FromTemplate what
	// an abort goes back to; Seq numbers the instances rollouts start.
	Rollout      *Rollout        `json:"rollout,omitempty"`
	History      []Rollout       `json:"history,omitempty"`
	FromTemplate driver.Template `json:"fromTemplate,omitzero"`
	Seq          int64           `json:"seq,omitempty"`
}

// New returns an empty state that holds the newest keep decisions of
// each scaler (KeepDecisions if keep < 1). Every replica must use the
// same keep: it shapes the state.
func New(keep int) *Machine {
	if keep < 1 {
		keep = KeepDecisions
	}
	return &Machine{scalers: map[string]*record{}, keep: keep}
}

type applying struct {
	rev    int64
	now    time.Time
	events []qlog.Event
}

func (a *applying) emit(typ, key string, v any) {
	var data []byte
	if v != nil {
		data, _ = json.Marshal(v)
	}
	a.events = append(a.events, qlog.Event{Type: typ, Key: key, Data: data})
}

// Apply implements qlog.StateMachine.
func (m *Machine) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	a := &applying{rev: e.Revision, now: e.Time.UTC()}
	out := envelope.Apply(e.Cmd, func(c *Command) Result { return m.apply(a, c) },
		func(p envelope.Problem) Result { return Result{Status: Invalid, Problem: p} })
	return out, a.events
}

func (m *Machine) apply(a *applying, c *Command) Result {
	switch c.Op {
	case OpPut, OpDelete:
		if res, ok := m.preconditions(c); !ok {
			return res
		}
	}
	switch c.Op {
	case OpPut:
		return m.put(a, c)
	case OpDelete:
		r := m.scalers[c.Name]
		if r == nil {
			return Result{Status: NotFound, Problem: envelope.Refuse(fault.NotFound, "no scaler %s", c.Name)}
		}
		delete(m.scalers, c.Name)
		var data any
		if c.By != "" {
			data = DeletedEvent{Name: c.Name, By: c.By}
		}
		a.emit(EventDeleted, c.Name, data)
		return Result{Status: Deleted, Scaler: r.view()}
	case OpLead:
		prev := m.fence.Token
		if res, ok := m.admit(c); !ok {
			return res
		}
		if c.Token > prev {
			m.abandon(a, c)
		}
		return Result{Status: Led, Fence: &Fence{Token: m.fence.Token, Replica: m.fence.Replica}}
	case OpDecide:
		if res, ok := m.admit(c); !ok {
			return res
		}
		return m.decide(a, c)
	case OpActuate:
		if res, ok := m.admit(c); !ok {
			return res
		}
		return m.actuate(a, c)
	case OpRolloutIntend, OpRolloutDone, OpRolloutReport, OpRolloutCanary:
		if res, ok := m.admit(c); !ok {
			return res
		}
		return m.rolloutStep(a, c)
	case OpRolloutPause, OpRolloutResume, OpRolloutAbort, OpRolloutPromote:
		return m.rolloutControl(a, c)
	}
	return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "unknown op %q", c.Op)}
}

// preconditions checks a put's or delete's If-Match and If-None-Match
// against the scaler as it is at apply time.
func (m *Machine) preconditions(c *Command) (Result, bool) {
	r := m.scalers[c.Name]
	var cur *Scaler
	if r != nil {
		cur = r.view()
	}
	switch {
	case c.IfNoneMatch && r != nil:
		return Result{Status: PreconditionFailed, Scaler: cur, Problem: envelope.Refuse(fault.PreconditionFailed, "scaler %s exists (modRevision %d)", c.Name, r.Scaler.ModRevision)}, false
	case c.IfMatch != nil && r == nil:
		return Result{Status: PreconditionFailed, Problem: envelope.Refuse(fault.PreconditionFailed, "scaler %s does not exist", c.Name)}, false
	case c.IfMatch != nil && *c.IfMatch != r.Scaler.ModRevision:
		return Result{Status: PreconditionFailed, Scaler: cur, Problem: envelope.Refuse(fault.PreconditionFailed, "scaler %s is at modRevision %d, not %d", c.Name, r.Scaler.ModRevision, *c.IfMatch)}, false
	}
	return Result{}, true
}

// admit checks a leader's command against the fence and raises it. A
// token equal to the fence passes: a leader sends many commands under
// one term. Tokens come from one election, so they never repeat across
// leaders.
func (m *Machine) admit(c *Command) (Result, bool) {
	if c.Token < 1 || c.Replica == "" {
		return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "a leader's command needs its replica and a positive token")}, false
	}
	if c.Token < m.fence.Token {
		return Result{Status: Fenced, Fence: &Fence{Token: m.fence.Token, Replica: m.fence.Replica},
			Problem: envelope.Refuse(fault.Conflict, "token %d is older than the newest leader's %d (%s)", c.Token, m.fence.Token, m.fence.Replica)}, false
	}
	m.fence = Fence{Token: c.Token, Replica: c.Replica}
	return Result{}, true
}

func (m *Machine) put(a *applying, c *Command) Result {
	if c.Spec == nil {
		return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "put without a spec")}
	}
	r := m.scalers[c.Name]
	status := Updated
	if r == nil {
		status = Created
		r = &record{Scaler: Scaler{Name: c.Name, CreateRevision: a.rev,
			Status: Status{Conditions: []hpa.Condition{}}}}
		m.scalers[c.Name] = r
	}
	prev := r.Scaler.Spec.Driver.Workload()
	r.Scaler.Spec = *c.Spec
	r.Scaler.Generation++
	r.Scaler.ModRevision = a.rev
	a.emit(EventPut, c.Name, PutEvent{Scaler: r.view(), By: c.By})
	if status == Updated && prev.Hash() != c.Spec.Driver.Workload().Hash() {
		m.startRollout(a, c, r, prev)
	}
	return Result{Status: status, Scaler: r.view()}
}

func (m *Machine) decide(a *applying, c *Command) Result {
	r := m.scalers[c.Name]
	if r == nil {
		return Result{Status: NotFound, Problem: envelope.Refuse(fault.NotFound, "no scaler %s", c.Name)}
	}
	if c.Decision == nil || c.State == nil {
		return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "decide without a decision and a state")}
	}
	if c.Generation != r.Scaler.Generation || c.SpecRevision != r.Scaler.ModRevision {
		return Result{Status: Stale, Problem: envelope.Refuse(fault.Conflict, "decided under generation %d (revision %d), the spec is at %d (revision %d)",
			c.Generation, c.SpecRevision, r.Scaler.Generation, r.Scaler.ModRevision)}
	}
	d := *c.Decision
	d.Revision, d.Generation, d.Leader, d.Token, d.By, d.Actuation = a.rev, c.Generation, c.Replica, c.Token, c.By, nil
	r.State = *c.State
	r.Recent = append(r.Recent, d)
	if over := len(r.Recent) - m.keep; over > 0 {
		r.Recent = slices.Delete(r.Recent, 0, over)
	}
	st := &r.Scaler.Status
	st.CurrentReplicas = d.CurrentReplicas
	st.DesiredReplicas = d.DesiredReplicas
	st.ObservedGeneration = c.Generation
	st.Conditions = slices.Clone(d.Conditions)
	if st.Conditions == nil {
		st.Conditions = []hpa.Condition{}
	}
	if st.DriverError != "" {
		// The failure stands until an actuation succeeds.
		setCondition(&st.Conditions, hpa.Condition{Type: "AbleToScale", Status: false, Reason: "FailedUpdateScale", Message: st.DriverError})
	}
	st.LastDecision = &d
	a.emit(EventDecision, c.Name, d)
	return Result{Status: Recorded, Scaler: r.view()}
}

func (m *Machine) actuate(a *applying, c *Command) Result {
	r := m.scalers[c.Name]
	if r == nil {
		return Result{Status: NotFound, Problem: envelope.Refuse(fault.NotFound, "no scaler %s", c.Name)}
	}
	if c.Actuation == nil {
		return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "actuate without an actuation")}
	}
	i := slices.IndexFunc(r.Recent, func(d Decision) bool { return d.Revision == c.DecisionRevision })
	if i < 0 {
		return Result{Status: Stale, Problem: envelope.Refuse(fault.Conflict, "no decision at revision %d", c.DecisionRevision)}
	}
	act := *c.Actuation
	act.Revision, act.At, act.By = a.rev, a.now, c.By
	d := &r.Recent[i]
	d.Actuation = &act
	st := &r.Scaler.Status
	if act.Error != "" {
		st.DriverError = act.Error
		setCondition(&st.Conditions, hpa.Condition{Type: "AbleToScale", Status: false, Reason: "FailedUpdateScale", Message: act.Error})
		// HPA records a scale event only after the update succeeded;
		// Decide recorded it assuming success, so it is taken back.
		r.State = withoutEventsAt(r.State, d.At)
	} else {
		st.DriverError = ""
		setCondition(&st.Conditions, hpa.Condition{Type: "AbleToScale", Status: true, Reason: "SucceededRescale",
			Message: fmt.Sprintf("the driver set the replica count to %d", act.Replicas)})
		if act.Result != nil {
			if act.Result.Previous != act.Result.Replicas {
				t := a.now
				st.LastScaleTime = &t
			}
			st.CurrentReplicas = act.Result.Replicas
		}
	}
	if st.LastDecision != nil && st.LastDecision.Revision == d.Revision {
		last := *d
		st.LastDecision = &last
	}
	a.emit(EventActuation, c.Name, ActuationEvent{DecisionRevision: c.DecisionRevision, Actuation: act})
	return Result{Status: Recorded, Scaler: r.view()}
}

// abandon settles, at the start of a new term, every scaling decision of
// an earlier term that has no recorded actuation: its leader was deposed
// before it recorded what the driver did, and the log will refuse it if
// it still tries. Decide recorded the scale event assuming success; left
// there, the event would hold the new leader back by the rate policies
// for a scale that most likely never happened (and if it did, the new
// leader reads the count from the driver anyway).
func (m *Machine) abandon(a *applying, c *Command) {
	for _, name := range m.Names() {
		r := m.scalers[name]
		st := &r.Scaler.Status
		if st.LastDecision == nil || st.LastDecision.Actuation != nil || !st.LastDecision.Scale() || st.LastDecision.Token >= c.Token {
			continue
		}
		i := slices.IndexFunc(r.Recent, func(d Decision) bool { return d.Revision == st.LastDecision.Revision })
		act := Actuation{Revision: a.rev, At: a.now, Replicas: st.LastDecision.DesiredReplicas,
			Error: fmt.Sprintf("abandoned: leader %s (token %d) was deposed before it recorded the driver's answer", st.LastDecision.Leader, st.LastDecision.Token),
			By:    c.By}
		r.State = withoutEventsAt(r.State, st.LastDecision.At)
		last := *st.LastDecision
		last.Actuation = &act
		st.LastDecision = &last
		if i >= 0 {
			r.Recent[i].Actuation = &act
		}
		a.emit(EventActuation, name, ActuationEvent{DecisionRevision: last.Revision, Actuation: act})
	}
}

// withoutEventsAt drops the scale events recorded at t.
func withoutEventsAt(st hpa.State, t time.Time) hpa.State {
	drop := func(evs []hpa.ScaleEvent) []hpa.ScaleEvent {
		return slices.DeleteFunc(slices.Clone(evs), func(e hpa.ScaleEvent) bool { return e.At.Equal(t) })
	}
	st.ScaleUpEvents, st.ScaleDownEvents = drop(st.ScaleUpEvents), drop(st.ScaleDownEvents)
	return st
}

func setCondition(cs *[]hpa.Condition, c hpa.Condition) {
	for i := range *cs {
		if (*cs)[i].Type == c.Type {
			(*cs)[i] = c
			return
		}
	}
	*cs = append(*cs, c)
}

// view returns a copy safe to hand out, without the webhook's secret.
func (r *record) view() *Scaler {
	s := r.Scaler
	s.Spec.Driver.Secret = ""
	s.Status.Conditions = slices.Clone(s.Status.Conditions)
	if s.Status.LastDecision != nil {
		d := *s.Status.LastDecision
		s.Status.LastDecision = &d
	}
	return &s
}

// Get returns a scaler, nil if there is none.
func (m *Machine) Get(name string) *Scaler {
	r := m.scalers[name]
	if r == nil {
		return nil
	}
	return r.view()
}

// List returns the scalers in name order, starting after after.
func (m *Machine) List(after string, limit int) (items []Scaler, more bool) {
	names := make([]string, 0, len(m.scalers))
	for n := range m.scalers {
		if n > after {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if limit > 0 && len(names) > limit {
		names, more = names[:limit], true
	}
	items = make([]Scaler, 0, len(names))
	for _, n := range names {
		items = append(items, *m.scalers[n].view())
	}
	return items, more
}

// Names returns every scaler's name, sorted.
func (m *Machine) Names() []string {
	names := make([]string, 0, len(m.scalers))
	for n := range m.scalers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Work is what the control loop needs to decide for one scaler.
type Work struct {
	Spec       Spec
	Generation int64
	// SpecRevision is the spec's ModRevision; decide sends it back.
	SpecRevision int64
	State        hpa.State
	Status       Status
	// Rollout is the newest rollout, if any; FromTemplate what it came
	// from (an aborted one goes back to it).
	Rollout      *Rollout
	FromTemplate driver.Template
}

// Work returns the control loop's view of a scaler, with the secret.
func (m *Machine) Work(name string) (Work, bool) {
	r := m.scalers[name]
	if r == nil {
		return Work{}, false
	}
	st := r.State
	// Apply's setCondition writes conditions in place: the caller reads
	// its copy outside Apply.
	status := r.Scaler.Status
	status.Conditions = slices.Clone(status.Conditions)
	w := Work{Spec: r.Scaler.Spec, Generation: r.Scaler.Generation, SpecRevision: r.Scaler.ModRevision, State: st, Status: status, FromTemplate: r.FromTemplate}
	if r.Rollout != nil {
		w.Rollout = r.Rollout.clone()
	}
	return w, true
}

// CurrentRollout returns a scaler's newest rollout (nil if it never had
// one) and whether the scaler exists.
func (m *Machine) CurrentRollout(name string) (*Rollout, bool) {
	r := m.scalers[name]
	if r == nil {
		return nil, false
	}
	if r.Rollout == nil {
		return nil, true
	}
	return r.Rollout.clone(), true
}

// Rollouts returns up to limit of a scaler's rollouts, newest first: the
// one in progress, if any, then the finished ones the replicas hold.
func (m *Machine) Rollouts(name string, limit int) []Rollout {
	r := m.scalers[name]
	out := []Rollout{}
	if r == nil {
		return out
	}
	if r.Rollout.Active() && len(out) < limit {
		out = append(out, *r.Rollout.clone())
	}
	for i := len(r.History) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, *r.History[i].clone())
	}
	return out
}

// Recent returns up to limit of a scaler's newest decisions, newest
// first, and whether the replicas hold every decision the scaler made
// (when false, older ones are in the archive).
func (m *Machine) Recent(name string, limit int) (ds []Decision, complete bool) {
	r := m.scalers[name]
	if r == nil {
		return nil, true
	}
	for i := len(r.Recent) - 1; i >= 0 && len(ds) < limit; i-- {
		ds = append(ds, r.Recent[i])
	}
	return ds, len(r.Recent) < m.keep
}

// CurrentFence returns the newest leadership the log has seen.
func (m *Machine) CurrentFence() Fence { return m.fence }

// snapshot is the whole state as written; encoding/json writes map keys
// sorted, so replicas with equal states write equal bytes.
type snapshot struct {
	Fence   Fence              `json:"fence"`
	Scalers map[string]*record `json:"scalers"`
}

// Snapshot implements qlog.StateMachine.
func (m *Machine) Snapshot(w io.Writer) error {
	return json.NewEncoder(w).Encode(snapshot{Fence: m.fence, Scalers: m.scalers})
}

// Restore implements qlog.StateMachine.
func (m *Machine) Restore(r io.Reader) error {
	var s snapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("restore scalers: %w", err)
	}
	if s.Scalers == nil {
		s.Scalers = map[string]*record{}
	}
	for name, rec := range s.Scalers {
		if rec == nil {
			// Snapshot never writes one; every query would panic on it.
			return fmt.Errorf("restore scalers: scaler %q is null", name)
		}
	}
	m.fence, m.scalers = s.Fence, s.Scalers
	return nil
}
