package ledger

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog/envelope"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// A rollout is started by Apply itself, at the put that changes the
// driver's template (its hash differs from the one before), so every
// replica starts the same rollout at the same revision. The leader then
// carries it out and records each step: an intent before it starts or
// stops instances (with the ids of those it will start, assigned here),
// the outcome after, and what it observed. A new leader finds the
// intents its predecessor left undone and carries out exactly those
// ids, which the drivers treat as idempotent: no instance is started or
// stopped twice.

// Rollout phases. Superseded is only ever in the history: a newer
// template's rollout took over.
const (
	PhaseProgressing = "Progressing"
	PhasePaused      = "Paused"
	PhaseSucceeded   = "Succeeded"
	PhaseFailed      = "Failed"
	PhaseRolledBack  = "RolledBack"
	PhaseSuperseded  = "Superseded"
)

// KeepRollouts is how many finished rollouts of each scaler the replicas
// hold.
const KeepRollouts = 20

// Rollout is one change of a scaler's template being rolled out.
type Rollout struct {
	// ID is the revision of the put that started it.
	ID         int64  `json:"id"`
	Generation int64  `json:"generation"`
	Strategy   string `json:"strategy"`
	// From is what ran before, To what the put asked for.
	From  Version `json:"from"`
	To    Version `json:"to"`
	Phase string  `json:"phase"`
	// Aborted: the rollout is going back to From; it ends RolledBack.
	Aborted bool `json:"aborted,omitempty"`
	// Promoted: new instances count as available once passing, without
	// minReadySeconds.
	Promoted bool   `json:"promoted,omitempty"`
	Message  string `json:"message,omitempty"`
	// By is the token id of the put that started it; StartedAt its log
	// time.
	By         string     `json:"by,omitempty"`
	StartedAt  time.Time  `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
	// ProgressAt is the log time of the last progress (the start, a
	// resume, an instance started or stopped, one more available);
	// progressDeadline counts from it.
	ProgressAt time.Time `json:"progressAt"`
	// Bounds are the rolling update's limits at the last report.
	Bounds *strategy.Bounds `json:"bounds,omitempty"`
	// Versions is what the leader last observed, per template.
	Versions []VersionStatus `json:"versions"`
	// Pending are the intents recorded and not yet done, oldest first.
	Pending []Action `json:"pending"`
	// Started and Stopped count the instances this rollout's leaders
	// started and stopped.
	Started int `json:"started"`
	Stopped int `json:"stopped"`
	// Controls lists the pause, resume, abort and promote requests.
	Controls []Control `json:"controls,omitempty"`
	// Canary is a canary's progress (Strategy Canary only).
	Canary *CanaryStatus `json:"canary,omitempty"`
	// Failure says why the rollout is rolling back by itself (a failed
	// analysis, no progress): it ends Failed, not RolledBack.
	Failure string `json:"failure,omitempty"`
}

// CanaryStatus is where a canary stands: its step, the traffic weights
// in force and the analyses that judged it.
type CanaryStatus struct {
	// Step is the index of the step being carried out; the number of
	// steps once all passed (the new version is then scaled up to the
	// whole count and takes all the traffic).
	Step int `json:"step"`
	// StepAt is the log time the step began: a pause counts from it.
	StepAt time.Time `json:"stepAt"`
	// Weights are the traffic shares written to the gateway, by
	// version (none before the first setWeight, and after the split was
	// removed); WeightsAt the log time they were recorded in force,
	// from which an analysis window counts.
	Weights   map[string]int `json:"weights"`
	WeightsAt *time.Time     `json:"weightsAt,omitempty"`
	// Analyses are the latest judgements (at most KeepAnalyses),
	// oldest first.
	Analyses []AnalysisRun `json:"analyses"`
	// Budget is what reached the new version since the rollout began,
	// as the gateways counted it.
	Budget *Budget `json:"budget,omitempty"`
}

// AnalysisRun is one analysis: at which step and when, and its result.
type AnalysisRun struct {
	Step int       `json:"step"`
	At   time.Time `json:"at"`
	analysis.Result
}

// Budget is the error budget a canary spent: the requests that reached
// the new version and those that failed there.
type Budget struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// KeepAnalyses is how many analyses a canary's status holds.
const KeepAnalyses = 20

// Version names a template.
type Version struct {
	Version string `json:"version,omitempty"`
	Hash    string `json:"hash"`
}

// VersionStatus is how many instances of one template the leader saw.
type VersionStatus struct {
	Version
	// Running: the driver runs them (draining ones included).
	Running int `json:"running"`
	// Ready: passing in the registry; Available: passing for
	// minReadySeconds.
	Ready     int `json:"ready"`
	Available int `json:"available"`
	// Draining: deregistered, waiting to be stopped.
	Draining int `json:"draining"`
}

// Action is one recorded intent of the leader.
type Action struct {
	// Revision is where it was recorded: its identity, which a new
	// leader resumes it by.
	Revision int64  `json:"revision"`
	Kind     string `json:"kind"`
	Version
	// IDs are the instances to start (assigned by Apply) or to stop.
	IDs   []string  `json:"ids"`
	Token int64     `json:"token"`
	At    time.Time `json:"at"`
}

// Action kinds.
const (
	ActionStart = "start"
	ActionStop  = "stop"
)

// Control is one pause, resume, abort or promote.
type Control struct {
	Op string    `json:"op"`
	By string    `json:"by,omitempty"`
	At time.Time `json:"at"`
}

// Active says the rollout is still being carried out (or paused).
func (r *Rollout) Active() bool {
	return r != nil && (r.Phase == PhaseProgressing || r.Phase == PhasePaused)
}

// CanaryStatus is the rollout's canary progress, nil for a rolling
// update or no rollout.
func (r *Rollout) CanaryStatus() *CanaryStatus {
	if r == nil {
		return nil
	}
	return r.Canary
}

// Target is the template the rollout converges on: To, or From once
// aborted.
func (r *Rollout) Target() Version {
	if r.Aborted {
		return r.From
	}
	return r.To
}

// RolloutEvent is the data of a rollout event: the rollout after the
// change, and what changed.
type RolloutEvent struct {
	Change string `json:"change"`
	*Rollout
}

// Rollout changes, as events name them.
const (
	ChangeStarted  = "started"
	ChangeIntended = "intended"
	ChangeDone     = "done"
	ChangeReported = "reported"
	ChangeFinished = "finished"
	ChangeCanary   = "canary"
)

// Ops of rollouts: the leader's (fenced) and the API's.
const (
	OpRolloutIntend  = "rolloutIntend"
	OpRolloutDone    = "rolloutDone"
	OpRolloutReport  = "rolloutReport"
	OpRolloutCanary  = "rolloutCanary"
	OpRolloutPause   = "rolloutPause"
	OpRolloutResume  = "rolloutResume"
	OpRolloutAbort   = "rolloutAbort"
	OpRolloutPromote = "rolloutPromote"
)

// RolloutCmd is the rollout part of a leader's command.
type RolloutCmd struct {
	// ID is the rollout the leader acts on.
	ID int64 `json:"id"`
	// intend: Kind, Version, and Count to start or IDs to stop.
	Kind  string   `json:"kind,omitempty"`
	Count int      `json:"count,omitempty"`
	IDs   []string `json:"ids,omitempty"`
	// done: the action's revision, the ids it started or stopped, and
	// an error if it failed: the action leaves Pending either way, and
	// the leader's next observation sees what is running.
	ActionRevision int64  `json:"actionRevision,omitempty"`
	Error          string `json:"error,omitempty"`
	// report: what the leader observed, and the phase it ends the
	// rollout in, if it does (Succeeded, Failed, RolledBack).
	Version  Version          `json:"version"`
	Bounds   *strategy.Bounds `json:"bounds,omitempty"`
	Versions []VersionStatus  `json:"versions,omitempty"`
	Phase    string           `json:"phase,omitempty"`
	Message  string           `json:"message,omitempty"`
	// canary: the step reached, the weights now in force, an analysis
	// (a failed one starts the rollback), the budget spent, or a
	// failure that rolls the canary back without an analysis (no
	// progress within progressDeadline).
	Step     *int             `json:"step,omitempty"`
	Weights  map[string]int   `json:"weights,omitempty"`
	Analysis *analysis.Result `json:"analysis,omitempty"`
	Budget   *Budget          `json:"budget,omitempty"`
	Failure  string           `json:"failure,omitempty"`
}

// maxWeight bounds a version's weight, as the gateway's route documents do.
const maxWeight = 1_000_000

// MaxActionInstances bounds the instances one intent names.
const MaxActionInstances = 1000

func refuse(status string, k fault.Kind, format string, args ...any) Result {
	return Result{Status: status, Problem: envelope.Refuse(k, format, args...)}
}

// startRollout starts, at a put that changed the template, a rollout
// from the template before, superseding the one in progress.
func (m *Machine) startRollout(a *applying, c *Command, r *record, prev driver.Template) {
	if r.Rollout.Active() {
		old := *r.Rollout
		old.Phase, old.Message = PhaseSuperseded, fmt.Sprintf("superseded by the rollout of generation %d", r.Scaler.Generation)
		t := a.now
		old.FinishedAt = &t
		r.remember(old)
	}
	spec := c.Spec.Strategy
	typ := strategy.RollingUpdate
	if spec != nil && spec.Type != "" {
		typ = spec.Type
	}
	ro := &Rollout{ID: a.rev, Generation: r.Scaler.Generation, Strategy: typ,
		From:  Version{Version: prev.Version, Hash: prev.Hash()},
		To:    Version{Version: c.Spec.Driver.Version, Hash: c.Spec.Driver.Workload().Hash()},
		Phase: PhaseProgressing, By: c.By, StartedAt: a.now, ProgressAt: a.now,
		Versions: []VersionStatus{}, Pending: []Action{}}
	if typ == strategy.Canary {
		ro.Canary = &CanaryStatus{StepAt: a.now, Weights: map[string]int{}, Analyses: []AnalysisRun{}}
	}
	if r.Rollout.Active() {
		// Intents of the superseded rollout may be under way: they stay
		// to be done and recorded.
		ro.Pending = slices.Clone(r.Rollout.Pending)
	}
	r.Rollout, r.FromTemplate = ro, prev
	a.emit(EventRollout, c.Name, RolloutEvent{Change: ChangeStarted, Rollout: ro.clone()})
}

// remember puts a finished rollout in the history, the oldest dropped.
func (r *record) remember(ro Rollout) {
	ro.Pending = []Action{}
	r.History = append(r.History, ro)
	if over := len(r.History) - KeepRollouts; over > 0 {
		r.History = slices.Delete(r.History, 0, over)
	}
}

func (ro *Rollout) clone() *Rollout {
	c := *ro
	c.Versions = slices.Clone(ro.Versions)
	c.Pending = slices.Clone(ro.Pending)
	for i := range c.Pending {
		c.Pending[i].IDs = slices.Clone(c.Pending[i].IDs)
	}
	c.Controls = slices.Clone(ro.Controls)
	if ro.Bounds != nil {
		b := *ro.Bounds
		c.Bounds = &b
	}
	if ro.Canary != nil {
		cs := *ro.Canary
		cs.Weights = maps.Clone(ro.Canary.Weights)
		cs.Analyses = slices.Clone(ro.Canary.Analyses)
		if ro.Canary.Budget != nil {
			b := *ro.Canary.Budget
			cs.Budget = &b
		}
		c.Canary = &cs
	}
	return &c
}

// finish ends the current rollout in phase and files it in the history.
func (r *record) finish(a *applying, name, phase, msg string) {
	ro := r.Rollout
	ro.Phase, ro.Message = phase, msg
	t := a.now
	ro.FinishedAt = &t
	r.remember(*ro.clone())
	a.emit(EventRollout, name, RolloutEvent{Change: ChangeFinished, Rollout: ro.clone()})
}

// rolloutControl applies pause, resume, abort and promote from the API.
func (m *Machine) rolloutControl(a *applying, c *Command) Result {
	r := m.scalers[c.Name]
	if r == nil {
		return refuse(NotFound, fault.NotFound, "no scaler %s", c.Name)
	}
	ro := r.Rollout
	if !ro.Active() {
		return refuse(Stale, fault.Conflict, "scaler %s has no rollout in progress", c.Name)
	}
	switch c.Op {
	case OpRolloutPause:
		if ro.Phase == PhasePaused {
			return refuse(Stale, fault.Conflict, "the rollout of scaler %s is paused already", c.Name)
		}
		ro.Phase, ro.Message = PhasePaused, "paused"
	case OpRolloutResume:
		if ro.Phase != PhasePaused {
			return refuse(Stale, fault.Conflict, "the rollout of scaler %s is not paused", c.Name)
		}
		// The deadline does not run while paused, as a Deployment's.
		ro.Phase, ro.Message, ro.ProgressAt = PhaseProgressing, "resumed", a.now
	case OpRolloutAbort:
		if ro.Aborted {
			return refuse(Stale, fault.Conflict, "the rollout of scaler %s is aborted already", c.Name)
		}
		ro.Aborted, ro.Phase, ro.ProgressAt = true, PhaseProgressing, a.now
		ro.Message = fmt.Sprintf("aborted: rolling back to %s", ro.From.Name())
	case OpRolloutPromote:
		if ro.Aborted {
			return refuse(Stale, fault.Conflict, "the rollout of scaler %s is aborted: there is nothing to promote", c.Name)
		}
		ro.Promoted, ro.Phase, ro.Message = true, PhaseProgressing, "promoted: new instances count as available once passing"
	}
	ro.Controls = append(ro.Controls, Control{Op: c.Op, By: c.By, At: a.now})
	if over := len(ro.Controls) - KeepRollouts; over > 0 {
		ro.Controls = slices.Delete(ro.Controls, 0, over)
	}
	a.emit(EventRollout, c.Name, RolloutEvent{Change: c.Op, Rollout: ro.clone()})
	return Result{Status: Recorded, Scaler: r.view(), Rollout: ro.clone()}
}

// Name is the version, or the template's hash when it has none.
func (v Version) Name() string {
	if v.Version != "" {
		return v.Version
	}
	return "template " + v.Hash
}

// rolloutStep applies a leader's intend, done and report; admit has
// checked its token.
func (m *Machine) rolloutStep(a *applying, c *Command) Result {
	r := m.scalers[c.Name]
	if r == nil {
		return refuse(NotFound, fault.NotFound, "no scaler %s", c.Name)
	}
	rc := c.Rollout
	if rc == nil {
		return refuse(Invalid, fault.Invalid, "%s without a rollout", c.Op)
	}
	ro := r.Rollout
	// A done is recorded against whichever rollout holds the intent: a
	// superseding one inherits its predecessor's.
	if c.Op != OpRolloutDone && (ro == nil || ro.ID != rc.ID || !ro.Active()) {
		return refuse(Stale, fault.Conflict, "rollout %d of scaler %s is not in progress", rc.ID, c.Name)
	}
	if ro == nil {
		return refuse(Stale, fault.Conflict, "scaler %s has no rollout", c.Name)
	}
	switch c.Op {
	case OpRolloutIntend:
		return m.intend(a, c, r)
	case OpRolloutDone:
		return m.done(a, c, r)
	case OpRolloutCanary:
		return m.canary(a, c, r)
	default:
		return m.report(a, c, r)
	}
}

func (m *Machine) intend(a *applying, c *Command, r *record) Result {
	rc, ro := c.Rollout, r.Rollout
	act := Action{Revision: a.rev, Kind: rc.Kind, Version: rc.Version, Token: c.Token, At: a.now}
	switch rc.Kind {
	case ActionStart:
		if rc.Count < 1 || rc.Count > MaxActionInstances || len(rc.IDs) > 0 {
			return refuse(Invalid, fault.Invalid, "a start names a count of 1 to %d and no ids", MaxActionInstances)
		}
		// A canary also starts old instances, to keep the count while
		// the new version runs beside it.
		if rc.Version != ro.Target() && (ro.Canary == nil || rc.Version != ro.From) {
			return refuse(Stale, fault.Conflict, "a start of %s, but the rollout goes to %s", rc.Version.Name(), ro.Target().Name())
		}
		// Ids are assigned here, from the scaler's own sequence, so a
		// new leader starts exactly these and no others.
		for range rc.Count {
			r.Seq++
			act.IDs = append(act.IDs, fmt.Sprintf("%s-%s-%d", r.Scaler.Spec.Service, shortHash(rc.Version.Hash), r.Seq))
		}
	case ActionStop:
		if len(rc.IDs) < 1 || len(rc.IDs) > MaxActionInstances || rc.Count != 0 {
			return refuse(Invalid, fault.Invalid, "a stop names 1 to %d ids and no count", MaxActionInstances)
		}
		for _, id := range rc.IDs {
			if id == "" || len(id) > 256 {
				return refuse(Invalid, fault.Invalid, "a stop names an empty or overlong id")
			}
		}
		act.IDs = slices.Clone(rc.IDs)
	default:
		return refuse(Invalid, fault.Invalid, "an intent is a start or a stop, not %q", rc.Kind)
	}
	ro.Pending = append(ro.Pending, act)
	a.emit(EventRollout, c.Name, RolloutEvent{Change: ChangeIntended, Rollout: ro.clone()})
	return Result{Status: Recorded, Rollout: ro.clone(), Action: &act}
}

func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

func (m *Machine) done(a *applying, c *Command, r *record) Result {
	rc, ro := c.Rollout, r.Rollout
	i := slices.IndexFunc(ro.Pending, func(p Action) bool { return p.Revision == rc.ActionRevision })
	if i < 0 {
		return refuse(Stale, fault.Conflict, "no pending action at revision %d", rc.ActionRevision)
	}
	act := ro.Pending[i]
	for _, id := range rc.IDs {
		if !slices.Contains(act.IDs, id) {
			return refuse(Invalid, fault.Invalid, "instance %s is not one of the action's", id)
		}
	}
	ro.Pending = slices.Delete(ro.Pending, i, i+1)
	n := len(rc.IDs)
	if act.Kind == ActionStart {
		ro.Started += n
	} else {
		ro.Stopped += n
	}
	if n > 0 && ro.Active() {
		ro.ProgressAt = a.now
	}
	if rc.Error != "" {
		ro.Message = fmt.Sprintf("%s of %d failed: %s", act.Kind, len(act.IDs), rc.Error)
	}
	a.emit(EventRollout, c.Name, RolloutEvent{Change: ChangeDone, Rollout: ro.clone()})
	return Result{Status: Recorded, Rollout: ro.clone()}
}

func (m *Machine) report(a *applying, c *Command, r *record) Result {
	rc, ro := c.Rollout, r.Rollout
	target := ro.Target()
	avail := func(vs []VersionStatus) int {
		for _, v := range vs {
			if v.Hash == target.Hash {
				return v.Available
			}
		}
		return 0
	}
	if avail(rc.Versions) > avail(ro.Versions) {
		ro.ProgressAt = a.now
	}
	ro.Versions = slices.Clone(rc.Versions)
	if ro.Versions == nil {
		ro.Versions = []VersionStatus{}
	}
	if rc.Bounds != nil {
		b := *rc.Bounds
		ro.Bounds = &b
	}
	switch {
	case rc.Phase == "":
		a.emit(EventRollout, c.Name, RolloutEvent{Change: ChangeReported, Rollout: ro.clone()})
	case rc.Phase == PhaseFailed && ro.Failure == "":
		// No progress: the deadline is judged in log time, so every
		// replica agrees.
		deadline := progressDeadline(r.Scaler.Spec)
		if ro.Phase != PhaseProgressing || a.now.Sub(ro.ProgressAt) <= deadline {
			return refuse(Stale, fault.Conflict, "no progress for %v, within the deadline %v", a.now.Sub(ro.ProgressAt), deadline)
		}
		r.finish(a, c.Name, PhaseFailed, rc.Message)
	case rc.Phase == PhaseSucceeded || rc.Phase == PhaseRolledBack || rc.Phase == PhaseFailed:
		// The end of the rollout's own course: an aborted one rolled
		// back, one that failed rolled back by itself, another done.
		want := PhaseSucceeded
		switch {
		case ro.Failure != "":
			want = PhaseFailed
		case ro.Aborted:
			want = PhaseRolledBack
		}
		if rc.Phase != want {
			return refuse(Invalid, fault.Invalid, "this rollout ends %s, not %s: an aborted one RolledBack, one rolled back by itself Failed, another Succeeded", want, rc.Phase)
		}
		if len(ro.Pending) > 0 {
			return refuse(Stale, fault.Conflict, "the rollout has %d intents pending", len(ro.Pending))
		}
		r.finish(a, c.Name, rc.Phase, rc.Message)
	default:
		return refuse(Invalid, fault.Invalid, "a report ends a rollout Succeeded, Failed or RolledBack, not %q", rc.Phase)
	}
	return Result{Status: Recorded, Rollout: ro.clone()}
}

// canary applies a leader's canary step: weights in force, an analysis,
// the budget spent, the next step, or a failure. A failed analysis or a
// failure turns the rollout back to From by itself: it ends Failed.
func (m *Machine) canary(a *applying, c *Command, r *record) Result {
	rc, ro := c.Rollout, r.Rollout
	cs := ro.Canary
	if cs == nil {
		return refuse(Invalid, fault.Invalid, "rollout %d of scaler %s is not a canary", ro.ID, c.Name)
	}
	// Checked whole before anything changes: a refused command leaves
	// the rollout as it was.
	if len(rc.Weights) > MaxActionInstances {
		return refuse(Invalid, fault.Invalid, "weights name at most %d versions", MaxActionInstances)
	}
	for v, w := range rc.Weights {
		if v == "" || w < 0 || w > maxWeight {
			return refuse(Invalid, fault.Invalid, "weights name versions with weights of 0 to %d", maxWeight)
		}
	}
	back := ro.Failure != "" || ro.Aborted
	if rc.Step != nil && !back && (*rc.Step < cs.Step || *rc.Step > strategy.MaxSteps) {
		return refuse(Invalid, fault.Invalid, "step %d: a canary only goes forward, from step %d", *rc.Step, cs.Step)
	}
	if rc.Weights != nil {
		cs.Weights = maps.Clone(rc.Weights)
		t := a.now
		cs.WeightsAt = &t
	}
	if rc.Budget != nil {
		b := *rc.Budget
		cs.Budget = &b
	}
	failure := rc.Failure
	if rc.Analysis != nil {
		cs.Analyses = append(cs.Analyses, AnalysisRun{Step: cs.Step, At: a.now, Result: *rc.Analysis})
		if over := len(cs.Analyses) - KeepAnalyses; over > 0 {
			cs.Analyses = slices.Delete(cs.Analyses, 0, over)
		}
		if rc.Analysis.Verdict == analysis.Fail && failure == "" {
			failure = "analysis failed at step " + strconv.Itoa(cs.Step) + ": " + rc.Analysis.Message
		}
	}
	// Rolling back, a canary goes no further forward.
	if rc.Step != nil && *rc.Step != cs.Step && !back {
		cs.Step, cs.StepAt, ro.ProgressAt = *rc.Step, a.now, a.now
	}
	if failure != "" && !back {
		ro.Failure, ro.Aborted, ro.Phase, ro.ProgressAt = failure, true, PhaseProgressing, a.now
		ro.Message = "rolling back to " + ro.From.Name() + ": " + failure
	}
	a.emit(EventRollout, c.Name, RolloutEvent{Change: ChangeCanary, Rollout: ro.clone()})
	return Result{Status: Recorded, Rollout: ro.clone()}
}

func progressDeadline(s Spec) time.Duration {
	st := strategy.Spec{}
	if s.Strategy != nil {
		st = *s.Strategy
	}
	st.Defaults()
	return time.Duration(*st.ProgressDeadline)
}
