package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/rollout"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// A canary runs the new version beside the old one and sends it a share
// of the service's traffic through the gateway, step by step, as
// Flagger's and Argo Rollouts' canaries do. Each tick the leader takes
// the first of these that applies:
//
//   - rolling back (an abort, or a failure the log recorded: a failed
//     analysis, no progress): the new version's weight goes to 0, then
//     its instances are drained and stopped as a rolling update back to
//     From would; the split is removed and the rollout ends RolledBack,
//     or Failed after a failure;
//   - the step's weight needs more new instances (ceil(weight% of the
//     count), at least one): a split giving the new version nothing is
//     written first, so that the gateway does not balance over the new
//     instances as they register, then they are started, on top of the
//     old ones, and the weight waits until they are available;
//   - the weights in force differ from the step's: they are written to
//     the gateway's route document (fenced by the leadership) and then
//     recorded, so an analysis window counts from the record;
//   - a setWeight step passes its analysis (judged once its window has
//     passed at the weight, again every window while inconclusive) or,
//     without analysis, passes once in force; a pause step passes when
//     its time is up, and is judged every window meanwhile, a failure
//     rolling back at once;
//   - after the last step the new version is scaled to the whole count,
//     takes all the traffic, the old instances are drained and stopped,
//     and the split is removed.
//
// Everything the leader decides is in the log before it acts (intents,
// weights, verdicts, steps): a new leader goes on from there, writes the
// same weights (a no-op when in force) and starts or stops no instance
// twice.

// canaryWeights is the split for a canary at weight percent of the
// traffic: the new version gets weight, the versions running before
// share the rest in proportion to their instances (a rollout that
// superseded another may find two).
func canaryWeights(to string, weight int, old map[string]int) map[string]int {
	total := 0
	for _, n := range old {
		total += n
	}
	if total == 0 {
		return map[string]int{to: 100}
	}
	out := map[string]int{to: weight * total}
	for v, n := range old {
		out[v] = (100 - weight) * n
	}
	return out
}

// weightAt is the share the canary's steps give the new version at step
// i: the last setWeight at or before it, 0 before the first, 100 once
// every step passed.
func weightAt(steps []strategy.CanaryStep, i int) int {
	if i >= len(steps) {
		return 100
	}
	w := 0
	for _, s := range steps[:i+1] {
		if s.SetWeight != nil {
			w = *s.SetWeight
		}
	}
	return w
}

// canary takes one step of a canary rollout (see above).
func (t *term) canary(ctx context.Context, tg *target, v versioned, name string, w ledger.Work, replicas int, ob rolloutObservation) error {
	ro, cs := w.Rollout, w.Rollout.Canary
	params := ob.strategy.Canary
	if params == nil {
		return fmt.Errorf("rollout %d is a canary, but the spec has no canary steps", ro.ID)
	}
	to := ro.To
	var newIns, oldIns []driver.Instance
	newAvail := 0
	oldVersions := map[string]int{}
	for i, in := range ob.running {
		if in.Hash == to.Hash {
			newIns = append(newIns, in)
			if ob.instances[i].Available {
				newAvail++
			}
			continue
		}
		oldIns = append(oldIns, in)
		oldVersions[in.Version]++
	}
	report := ledger.RolloutCmd{ID: ro.ID, Versions: ob.versions}
	if ro.Aborted {
		return t.rollBack(ctx, tg, v, name, w, replicas, ob, newIns, oldVersions)
	}
	if err := t.report(ctx, tg, name, report); err != nil {
		return err
	}
	if ro.Phase == ledger.PhasePaused {
		// Paused, nothing is started, stopped or moved on, but the
		// analysis goes on, as Argo Rollouts' background analysis does:
		// a canary that turns bad while paused still rolls back.
		verdict, _ := t.judge(tg, w, ob.now, params.Analysis, weightAt(params.Steps, cs.Step))
		if verdict != nil && verdict.Verdict == analysis.Fail {
			t.Logger.Warn("canary analysis failed while paused: rolling back", "scaler", name, "rollout", ro.ID, "message", verdict.Message)
			return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Analysis: verdict, Budget: t.budget(w, ob.now)})
		}
		return nil
	}
	if ro.Phase != ledger.PhaseProgressing {
		return nil
	}
	if _, ok := oldVersions[""]; ok || to.Version == "" {
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Failure: "instances without a version run: the gateway splits traffic by version, so a canary needs driver.version on both templates; roll this one out with RollingUpdate"})
	}
	steps := params.Steps
	step := cs.Step
	if ro.Promoted && step < len(steps) {
		n := len(steps)
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Step: &n})
	}
	weight := weightAt(steps, step)
	want := 0
	if weight > 0 {
		want = min(replicas, max(1, (replicas*weight+99)/100))
	}
	pausing := step < len(steps) && steps[step].Pause > 0
	if !pausing && ob.now.Sub(ro.ProgressAt) > time.Duration(*ob.strategy.ProgressDeadline) {
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Budget: t.budget(w, ob.now),
			Failure: fmt.Sprintf("no progress for %v (progressDeadline) at step %d: %s", time.Duration(*ob.strategy.ProgressDeadline), step, describe(ob.versions, to))})
	}
	if step < len(steps) {
		// The old version keeps the whole count while the canary runs
		// beside it: the autoscaler's changes land there.
		switch n := len(oldIns); {
		case n < replicas:
			return t.carryOutPlan(ctx, v, name, w, ro.From, strategy.Plan{Start: replicas - n})
		case n > replicas:
			var ids []string
			for _, in := range oldIns[replicas:] {
				ids = append(ids, in.ID)
			}
			return t.carryOutPlan(ctx, v, name, w, ro.From, strategy.Plan{Stop: ids})
		}
	}
	if _, split := cs.Weights[to.Version]; want > 0 && !split {
		// Before the first new instance registers, a split that gives
		// it nothing: without one the gateway would balance over every
		// instance, and the new version get its share of the count
		// before its weight.
		return t.setAndRecordWeights(ctx, name, w, step, canaryWeights(to.Version, 0, oldVersions))
	}
	if len(newIns) < want {
		return t.carryOutPlan(ctx, v, name, w, to, strategy.Plan{Start: want - len(newIns)})
	}
	if newAvail < want {
		return nil // the weight waits for the instances it sends to
	}
	if weight > 0 {
		if weights := canaryWeights(to.Version, weight, oldVersions); !maps.Equal(weights, cs.Weights) {
			return t.setAndRecordWeights(ctx, name, w, step, weights)
		}
	}
	if step >= len(steps) {
		return t.promote(ctx, v, name, w, replicas, ob, oldIns)
	}
	verdict, run := t.judge(tg, w, ob.now, params.Analysis, weight)
	switch {
	case verdict != nil && verdict.Verdict == analysis.Fail:
		t.Logger.Warn("canary analysis failed: rolling back", "scaler", name, "rollout", ro.ID, "step", step, "message", verdict.Message)
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Analysis: verdict, Budget: t.budget(w, ob.now)})
	case pausing:
		next := ro.Canary.StepAt.Add(time.Duration(steps[step].Pause))
		rc := ledger.RolloutCmd{ID: ro.ID, Analysis: verdict}
		if !ob.now.Before(next) {
			n := step + 1
			rc.Step = &n
		}
		if rc.Analysis == nil && rc.Step == nil {
			return nil
		}
		return t.recordCanary(ctx, name, rc)
	case !run || verdict != nil && verdict.Verdict == analysis.Pass:
		n := step + 1
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Step: &n, Analysis: verdict, Budget: t.budget(w, ob.now)})
	case verdict != nil:
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Analysis: verdict}) // inconclusive: judged again next window
	}
	return nil
}

// setAndRecordWeights writes the weights to the gateway's route
// document, then records them in force.
func (t *term) setAndRecordWeights(ctx context.Context, name string, w ledger.Work, step int, weights map[string]int) error {
	if err := t.setWeights(ctx, w.Spec.Service, weights); err != nil {
		return err
	}
	t.target(name).splitService = w.Spec.Service
	t.Logger.Info("canary weights set", "scaler", name, "rollout", w.Rollout.ID, "step", step, "weights", weights)
	return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: w.Rollout.ID, Weights: weights})
}

// judge runs the canary's analysis when one is due: the spec has one,
// the new version has had traffic at the weights in force for a whole
// window, and this term has not judged within the last window. run
// reports whether the step is judged at all (a spec with an analysis and
// a weight above 0).
func (t *term) judge(tg *target, w ledger.Work, now time.Time, a *strategy.Analysis, weight int) (verdict *analysis.Result, run bool) {
	cs := w.Rollout.Canary
	if a == nil || weight == 0 {
		return nil, false
	}
	window := time.Duration(a.Window)
	if cs.WeightsAt == nil || now.Sub(*cs.WeightsAt) < window || now.Sub(tg.judgedAt) < window {
		return nil, true
	}
	signals := t.Metrics.Versions(w.Spec.Service, window, now)
	canary := signals[w.Rollout.To.Version]
	if canary.Window.Std() < window*9/10 && now.Sub(*cs.WeightsAt) < window+signalsLag {
		// The gateways' pushes do not cover the window yet (they come
		// every few seconds): wait for the next rather than judge less.
		return nil, true
	}
	tg.judgedAt = now
	r := analysis.Judge(a.Thresholds(), canary, signals[w.Rollout.From.Version])
	return &r, true
}

// signalsLag bounds how long a canary's analysis waits past its window
// for the gateways' pushes to cover it: two of their default intervals.
const signalsLag = 10 * time.Second

// budget is what reached the new version since the rollout began (at
// most the span of signals the store keeps).
func (t *term) budget(w ledger.Work, now time.Time) *ledger.Budget {
	s := t.Metrics.Versions(w.Spec.Service, now.Sub(w.Rollout.StartedAt), now)[w.Rollout.To.Version]
	return &ledger.Budget{Requests: s.Requests, Failures: s.Failures}
}

// promote finishes a canary that passed every step: the new version at
// the whole count, all the traffic on it (the weights say so already:
// the old versions are at 0), the old instances drained and stopped, and
// then the split removed.
func (t *term) promote(ctx context.Context, v versioned, name string, w ledger.Work, replicas int, ob rolloutObservation, oldIns []driver.Instance) error {
	ro := w.Rollout
	if len(oldIns) > 0 {
		ids := make([]string, len(oldIns))
		for i, in := range oldIns {
			ids[i] = in.ID
		}
		return t.carryOutPlan(ctx, v, name, w, ro.To, strategy.Plan{Stop: ids})
	}
	if err := t.clearWeights(ctx, w.Spec.Service); err != nil {
		return err
	}
	return t.finishCanary(ctx, name, w, ob, ledger.PhaseSucceeded,
		fmt.Sprintf("promoted: %d of %d run %s and take all the traffic", replicas, replicas, ro.To.Name()))
}

// rollBack takes a canary back to From: the new version's weight to 0
// first, so no request goes to an instance about to stop, then its
// instances out as a rolling update back to From (which also starts old
// ones, should the count have grown), then the split removed.
func (t *term) rollBack(ctx context.Context, tg *target, v versioned, name string, w ledger.Work, replicas int, ob rolloutObservation, newIns []driver.Instance, oldVersions map[string]int) error {
	ro, cs := w.Rollout, w.Rollout.Canary
	// The rolling update back sees From as new, everything else as old;
	// it may stop every canary at once: they take no traffic.
	bounds := strategy.Bounds{Replicas: replicas, MaxSurge: len(newIns) + 1, MaxUnavailable: 0}
	plan := strategy.Step(bounds, ob.instances)
	report := ledger.RolloutCmd{ID: ro.ID, Versions: ob.versions, Bounds: &bounds}
	if err := t.report(ctx, tg, name, report); err != nil || ro.Phase != ledger.PhaseProgressing {
		return err
	}
	if len(newIns) > 0 && len(cs.Weights) > 0 && cs.Weights[ro.To.Version] != 0 {
		weights := canaryWeights(ro.To.Version, 0, oldVersions)
		if err := t.setWeights(ctx, w.Spec.Service, weights); err != nil {
			return err
		}
		t.Logger.Info("canary traffic back on the old version", "scaler", name, "rollout", ro.ID, "weights", weights)
		return t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Weights: weights})
	}
	if !plan.Done {
		return t.carryOutPlan(ctx, v, name, w, ro.From, plan)
	}
	if err := t.clearWeights(ctx, w.Spec.Service); err != nil {
		return err
	}
	phase, msg := ledger.PhaseRolledBack, fmt.Sprintf("aborted: %d of %d run %s again", replicas, replicas, ro.From.Name())
	if ro.Failure != "" {
		phase, msg = ledger.PhaseFailed, fmt.Sprintf("rolled back to %s: %s", ro.From.Name(), ro.Failure)
	}
	return t.finishCanary(ctx, name, w, ob, phase, msg)
}

// finishCanary records the budget the canary spent and then its end.
func (t *term) finishCanary(ctx context.Context, name string, w ledger.Work, ob rolloutObservation, phase, msg string) error {
	ro := w.Rollout
	if err := t.recordCanary(ctx, name, ledger.RolloutCmd{ID: ro.ID, Budget: t.budget(w, ob.now)}); err != nil {
		return err
	}
	_, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutReport, Name: name,
		Rollout: &ledger.RolloutCmd{ID: ro.ID, Versions: ob.versions, Phase: phase, Message: msg}})
	if err == nil {
		t.Logger.Info("rollout finished", "scaler", name, "rollout", ro.ID, "phase", phase, "message", msg)
	}
	return err
}

// recordCanary records a canary step of the leader's.
func (t *term) recordCanary(ctx context.Context, name string, rc ledger.RolloutCmd) error {
	_, err := t.propose(ctx, ledger.Command{Op: ledger.OpRolloutCanary, Name: name, Rollout: &rc})
	return err
}

// errNoRoutes: a canary's weights have nowhere to go.
var errNoRoutes = errors.New("no config service to write the canary's weights to (Loop.Routes)")

func (t *term) setWeights(ctx context.Context, service string, weights map[string]int) error {
	if t.Routes == nil {
		return errNoRoutes
	}
	select {
	case <-t.done:
		return context.Cause(ctx)
	default:
	}
	return rollout.SetWeights(ctx, t.Routes.KV(), service, weights, t.fence)
}

func (t *term) clearWeights(ctx context.Context, service string) error {
	if t.Routes == nil {
		return errNoRoutes
	}
	return rollout.ClearWeights(ctx, t.Routes.KV(), service, t.fence)
}
