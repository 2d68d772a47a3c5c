package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// A rollout is carried out by the leader a step per reconcile, every
// rolloutTick while it is in progress, with decisions still made every
// sync period (the count they set is the rollout's replica count). Each
// step is recorded before it is acted on: an intent to start n instances
// (the log names them) or to stop named ones, then what was done. A
// leader first carries out the intents its predecessor left pending,
// those ids and no others, which the process driver starts and stops
// once each however often it is asked.

// rolloutTick is how often a rollout in progress is stepped.
const rolloutTick = 250 * time.Millisecond

// DefaultDrain is how long an instance taken out of the registry is left
// to the requests already sent to it before it is stopped.
const DefaultDrain = 2 * time.Second

// versioned is a driver that runs instances of several templates side
// by side and starts and stops them by id (the process driver).
type versioned interface {
	Instances() []driver.Instance
	Start(ctx context.Context, t driver.Template, ids []string, token int64) ([]string, error)
	Stop(ctx context.Context, ids []string, token int64) ([]string, error)
}

// templated is a driver that is told the template its Scale calls run.
type templated interface {
	SetTemplate(driver.Template)
}

// rolling reports whether the scaler has a rollout to work on: one in
// progress, or intents of a finished one still pending.
func rolling(w ledger.Work) bool {
	return w.Rollout.Active() || w.Rollout != nil && len(w.Rollout.Pending) > 0
}

// targetTemplate is the template the scaler's instances should run: the
// spec's, or what an aborted rollout went back to.
func targetTemplate(w ledger.Work) driver.Template {
	if w.Rollout != nil && w.Rollout.Aborted {
		return w.FromTemplate
	}
	return w.Spec.Driver.Workload()
}

// templateFor returns the template hash names, if the scaler knows it.
func templateFor(w ledger.Work, hash string) (driver.Template, bool) {
	for _, t := range []driver.Template{w.Spec.Driver.Workload(), w.FromTemplate} {
		if t.Hash() == hash {
			return t, true
		}
	}
	return driver.Template{}, false
}

// rollOut takes one step of the scaler's rollout toward replicas.
func (t *term) rollOut(ctx context.Context, tg *target, drv driver.Driver, name string, w ledger.Work, replicas int) error {
	ro := w.Rollout
	v, ok := drv.(versioned)
	if !ok {
		return t.rollOutThrough(ctx, tg, drv, name, w, replicas)
	}
	// A predecessor's intents (or this term's, whose outcome was not
	// recorded) come first; the next tick observes what they did.
	if len(ro.Pending) > 0 {
		for _, act := range ro.Pending {
			if err := t.carryOut(ctx, v, name, w, ro.ID, act); err != nil {
				return err
			}
		}
		return nil
	}
	if !ro.Active() {
		return nil
	}
	ob, err := t.observeRollout(ctx, v, w)
	if err != nil {
		return err
	}
	if ro.Canary != nil {
		return t.canary(ctx, tg, v, name, w, replicas, ob)
	}
	if tg.splitClearedFor != ro.ID && t.Routes != nil {
		// A canary this rollout superseded may have left its split in
		// force, which would send nothing to the new version: a rolling
		// update balances over every instance.
		if err := t.clearWeights(ctx, w.Spec.Service); err != nil {
			return err
		}
		tg.splitClearedFor = ro.ID
	}
	target := ro.Target()
	bounds := ob.strategy.Resolve(replicas)
	plan := strategy.Step(bounds, ob.instances)
	report := ledger.RolloutCmd{ID: ro.ID, Versions: ob.versions, Bounds: &bounds}
	switch {
	case plan.Done:
		report.Phase, report.Message = ledger.PhaseSucceeded, fmt.Sprintf("%d of %d run %s and are available", replicas, replicas, target.Version)
		if ro.Aborted {
			report.Phase = ledger.PhaseRolledBack
		}
	case ro.Phase == ledger.PhaseProgressing && ob.now.Sub(ro.ProgressAt) > time.Duration(*ob.strategy.ProgressDeadline):
		report.Phase = ledger.PhaseFailed
		report.Message = fmt.Sprintf("no progress for %v (progressDeadline): %s", time.Duration(*ob.strategy.ProgressDeadline), describe(ob.versions, target))
	}
	if err := t.report(ctx, tg, name, report); err != nil || report.Phase != "" || ro.Phase != ledger.PhaseProgressing {
		return err
	}
	return t.carryOutPlan(ctx, v, name, w, target, plan)
}

// rolloutObservation is what a rollout step is decided on.
type rolloutObservation struct {
	// running are the driver's instances, oldest first; instances the
	// same as the strategy sees them (new: of the rollout's target).
	running   []driver.Instance
	instances []strategy.Instance
	versions  []ledger.VersionStatus
	// strategy is the spec's, defaults filled in.
	strategy strategy.Spec
	now      time.Time
}

// observeRollout reads what the driver runs and which of it the
// registry reports passing: a new instance is available once passing for
// minReadySeconds (counted from the registry's statusSince, so an
// instance passing for long is available at once, to a new leader too),
// at once when the rollout was promoted.
func (t *term) observeRollout(ctx context.Context, v versioned, w ledger.Work) (rolloutObservation, error) {
	ro := w.Rollout
	listed, _, err := t.Registry.Instances(ctx, w.Spec.Service, sdk.Query{})
	if err != nil {
		return rolloutObservation{}, fmt.Errorf("list the instances of %s in the registry: %w", w.Spec.Service, err)
	}
	passingSince := map[string]time.Time{}
	for _, in := range listed {
		if in.Status == api.Passing {
			passingSince[in.Id] = in.StatusSince
		}
	}
	ob := rolloutObservation{now: t.now(), running: v.Instances()}
	if w.Spec.Strategy != nil {
		ob.strategy = *w.Spec.Strategy
	}
	ob.strategy.Defaults()
	minReady := time.Duration(*ob.strategy.MinReadySeconds) * time.Second
	if ro.Promoted {
		minReady = 0
	}
	target := ro.Target()
	byHash := map[string]*ledger.VersionStatus{}
	var order []string
	for _, in := range ob.running {
		isNew := in.Hash == target.Hash
		since, passing := passingSince[in.ID]
		avail := passing && (!isNew || ob.now.Sub(since) >= minReady)
		ob.instances = append(ob.instances, strategy.Instance{ID: in.ID, New: isNew, Available: avail})
		vs := byHash[in.Hash]
		if vs == nil {
			vs = &ledger.VersionStatus{Version: ledger.Version{Version: in.Version, Hash: in.Hash}}
			byHash[in.Hash] = vs
			order = append(order, in.Hash)
		}
		vs.Running++
		if passing {
			vs.Ready++
		}
		if avail {
			vs.Available++
		}
	}
	slices.Sort(order)
	ob.versions = make([]ledger.VersionStatus, 0, len(order))
	for _, h := range order {
		ob.versions = append(ob.versions, *byHash[h])
	}
	return ob, nil
}

// carryOutPlan records and carries out a step's plan: new instances of
// target started, then the plan's instances stopped (drained first).
func (t *term) carryOutPlan(ctx context.Context, v versioned, name string, w ledger.Work, target ledger.Version, plan strategy.Plan) error {
	ro := w.Rollout
	if plan.Start > 0 {
		res, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutIntend, Name: name,
			Rollout: &ledger.RolloutCmd{ID: ro.ID, Kind: ledger.ActionStart, Version: target, Count: plan.Start}})
		if err != nil {
			return err
		}
		if res.Status != ledger.Recorded || res.Action == nil {
			return nil // the rollout moved on: the next tick sees it
		}
		if err := t.carryOut(ctx, v, name, w, ro.ID, *res.Action); err != nil {
			return err
		}
	}
	if len(plan.Stop) > 0 {
		res, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutIntend, Name: name,
			Rollout: &ledger.RolloutCmd{ID: ro.ID, Kind: ledger.ActionStop, IDs: plan.Stop}})
		if err != nil {
			return err
		}
		if res.Status != ledger.Recorded || res.Action == nil {
			return nil
		}
		return t.carryOut(ctx, v, name, w, ro.ID, *res.Action)
	}
	return nil
}

// report records what the leader observed, when it changed since its
// last report, or the end of the rollout.
func (t *term) report(ctx context.Context, tg *target, name string, rc ledger.RolloutCmd) error {
	b, _ := json.Marshal(rc)
	if rc.Phase == "" && string(b) == tg.lastReport {
		return nil
	}
	res, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutReport, Name: name, Rollout: &rc})
	if err != nil {
		return err
	}
	if res.Status == ledger.Recorded {
		tg.lastReport = string(b)
		if rc.Phase != "" {
			t.Logger.Info("rollout finished", "scaler", name, "rollout", rc.ID, "phase", rc.Phase, "message", rc.Message)
		}
	}
	return nil
}

func describe(vs []ledger.VersionStatus, target ledger.Version) string {
	for _, v := range vs {
		if v.Hash == target.Hash {
			return fmt.Sprintf("%d of the new template running, %d available", v.Running, v.Available)
		}
	}
	return "none of the new template running"
}

// carryOut does a recorded intent and records what was done. A stop
// drains first: the instances leave the registry (the gateway stops
// sending to them through its watch), Drain passes, then they stop.
func (t *term) carryOut(ctx context.Context, v versioned, name string, w ledger.Work, rolloutID int64, act ledger.Action) error {
	select {
	case <-t.done:
		return context.Cause(ctx)
	default:
	}
	if t.BeforeRolloutAction != nil {
		t.BeforeRolloutAction(name, t.token, act)
	}
	var (
		ids []string
		err error
	)
	switch act.Kind {
	case ledger.ActionStart:
		tmpl, ok := templateFor(w, act.Hash)
		if !ok {
			err = fmt.Errorf("template %s is no longer the spec's nor the one rolled out from", act.Hash)
			break
		}
		ids, err = v.Start(ctx, tmpl, act.IDs, t.token)
		if len(ids) > 0 {
			t.Logger.Info("rollout started instances", "scaler", name, "token", t.token, "version", act.Version.Version, "ids", ids)
		}
	case ledger.ActionStop:
		if err = t.drain(ctx, w.Spec.Service, act.IDs); err == nil {
			ids, err = v.Stop(ctx, act.IDs, t.token)
			t.Logger.Info("rollout stopped instances", "scaler", name, "token", t.token, "ids", ids)
		}
	}
	rc := &ledger.RolloutCmd{ID: rolloutID, ActionRevision: act.Revision, IDs: ids}
	if err != nil {
		rc.Error = err.Error()
	}
	// Recorded even if the term just ended: the log refuses it then, and
	// the successor carries the intent out again, doing only what is
	// left.
	_, perr := t.propose(context.WithoutCancel(ctx), ledger.Command{Op: ledger.OpRolloutDone, Name: name, Rollout: rc})
	if err != nil {
		err = fmt.Errorf("rollout %s of %d: %w", act.Kind, len(act.IDs), err)
	}
	return errors.Join(err, perr)
}

// drain takes the instances out of the registry and waits Drain with
// none of them back in it. An instance that registers itself again (its
// heartbeat finds it gone) is taken out again and the wait restarts, at
// most a few times: then it is stopped anyway, and stops serving as its
// grace period allows.
func (t *term) drain(ctx context.Context, service string, ids []string) error {
	d := t.Drain
	if d <= 0 {
		d = DefaultDrain
	}
	deregister := func(id string) error {
		if err := t.Registry.Deregister(ctx, service, id); err != nil && !errors.Is(err, sdk.ErrNotFound) {
			return fmt.Errorf("deregister %s: %w", id, err)
		}
		return nil
	}
	for _, id := range ids {
		if err := deregister(id); err != nil {
			return err
		}
	}
	quiet := time.Now()
	for deadline := time.Now().Add(5 * d); time.Since(quiet) < d && time.Now().Before(deadline); {
		if !sleep(ctx, min(200*time.Millisecond, d)) {
			return context.Cause(ctx)
		}
		listed, _, err := t.Registry.Instances(ctx, service, sdk.Query{})
		if err != nil {
			continue // the wait goes on; the stop is what matters
		}
		for _, in := range listed {
			if slices.Contains(ids, in.Id) {
				if err := deregister(in.Id); err != nil {
					return err
				}
				quiet = time.Now()
			}
		}
	}
	return nil
}

// following is a driver whose workload rolls a template out by itself
// (the kubernetes driver: the Deployment controller), which the scaler
// sets and then follows.
type following interface {
	RollOut(ctx context.Context, t driver.Template, token int64) (driver.RolloutState, error)
}

// rollOutThrough hands a rollout to a driver that rolls out by itself:
// a kubernetes workload gets the image and its status is followed until
// it is complete; a webhook is sent the template with a call at the
// current count (its receiver rolls it out), and the rollout ends when
// the call was acknowledged.
func (t *term) rollOutThrough(ctx context.Context, tg *target, drv driver.Driver, name string, w ledger.Work, replicas int) error {
	ro := w.Rollout
	if ro.Phase != ledger.PhaseProgressing {
		return nil
	}
	if f, ok := drv.(following); ok && targetTemplate(w).Image != "" {
		return t.followWorkload(ctx, tg, f, name, w)
	}
	msg := fmt.Sprintf("the %s driver runs no template of its own (only its version changed): nothing to roll out", w.Spec.Driver.Type)
	if _, ok := drv.(templated); ok {
		select {
		case <-t.done:
			return context.Cause(ctx)
		default:
		}
		if _, err := drv.Scale(ctx, replicas, t.token); err != nil {
			return fmt.Errorf("send the template: %w", err)
		}
		msg = fmt.Sprintf("the %s driver acknowledged %s at %d replicas: its receiver rolls it out", w.Spec.Driver.Type, ro.Target().Name(), replicas)
	}
	phase := ledger.PhaseSucceeded
	if ro.Aborted {
		phase = ledger.PhaseRolledBack
	}
	_, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutReport, Name: name, Rollout: &ledger.RolloutCmd{ID: ro.ID, Phase: phase, Message: msg}})
	return err
}

// followWorkload sets the target image on the workload and records its rollout
// as the workload's controller reports it: updated replicas are the new
// version, the rest the old.
func (t *term) followWorkload(ctx context.Context, tg *target, f following, name string, w ledger.Work) error {
	ro := w.Rollout
	select {
	case <-t.done:
		return context.Cause(ctx)
	default:
	}
	st, err := f.RollOut(ctx, targetTemplate(w), t.token)
	if err != nil {
		return fmt.Errorf("set the image: %w", err)
	}
	target, from := ro.Target(), ro.From
	if ro.Aborted {
		from = ro.To
	}
	vs := []ledger.VersionStatus{{Version: target, Running: st.UpdatedReplicas, Ready: min(st.ReadyReplicas, st.UpdatedReplicas), Available: min(st.AvailableReplicas, st.UpdatedReplicas)}}
	if old := st.Replicas - st.UpdatedReplicas; old > 0 {
		vs = append(vs, ledger.VersionStatus{Version: from, Running: old})
	}
	slices.SortFunc(vs, func(a, b ledger.VersionStatus) int { return strings.Compare(a.Hash, b.Hash) })
	rc := ledger.RolloutCmd{ID: ro.ID, Versions: vs, Bounds: &strategy.Bounds{Replicas: st.Desired}}
	st2 := strategy.Spec{}
	if w.Spec.Strategy != nil {
		st2 = *w.Spec.Strategy
	}
	st2.Defaults()
	switch {
	case st.Complete:
		rc.Phase = ledger.PhaseSucceeded
		if ro.Aborted {
			rc.Phase = ledger.PhaseRolledBack
		}
		rc.Message = fmt.Sprintf("the workload runs %s: %d updated and available", target.Name(), st.Desired)
	case t.now().Sub(ro.ProgressAt) > time.Duration(*st2.ProgressDeadline):
		rc.Phase = ledger.PhaseFailed
		rc.Message = fmt.Sprintf("no progress for %v: %d of %d updated, %d available", time.Duration(*st2.ProgressDeadline), st.UpdatedReplicas, st.Desired, st.AvailableReplicas)
	}
	return t.report(ctx, tg, name, rc)
}
