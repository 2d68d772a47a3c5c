package ledger_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// processSpec is a validated process-driver spec running version.
func processSpec(t testing.TB, version string) ledger.Spec {
	t.Helper()
	s := webhookSpec("web", 10)
	s.Driver = driver.Spec{Type: driver.TypeProcess, Version: version, ProcessSpec: driver.ProcessSpec{Command: []string{"app"}}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

func rolloutEvents(t testing.TB, evs []qlog.Event) []ledger.RolloutEvent {
	t.Helper()
	var out []ledger.RolloutEvent
	for _, ev := range evs {
		if ev.Type != ledger.EventRollout {
			continue
		}
		var re ledger.RolloutEvent
		if err := json.Unmarshal(ev.Data, &re); err != nil {
			t.Fatal(err)
		}
		out = append(out, re)
	}
	return out
}

func leaderStep(op string, token int64, rc ledger.RolloutCmd) ledger.Command {
	return ledger.Command{Op: op, Name: "web", Replica: "r1", Token: token, Rollout: &rc}
}

// TestRolloutStartsOnTemplateChange: a put whose template hashes like
// the one before starts nothing; one that changes it starts a rollout
// from the old version to the new, at that revision, on every replica.
func TestRolloutStartsOnTemplateChange(t *testing.T) {
	h := newMachine(t, 0)
	v1 := processSpec(t, "v1")
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v1})
	same := processSpec(t, "v1")
	same.MaxReplicas = 20
	same.Driver.GracePeriod = wire.Duration(time.Second)
	_, evs := h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &same})
	if re := rolloutEvents(t, evs); len(re) != 0 {
		t.Fatalf("a put that keeps the template started %+v", re)
	}
	v2 := processSpec(t, "v2")
	_, evs = h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v2, By: "tok-1"})
	re := rolloutEvents(t, evs)
	if len(re) != 1 || re[0].Change != ledger.ChangeStarted {
		t.Fatalf("rollout events = %+v, want one started", re)
	}
	ro := re[0].Rollout
	if ro.ID != h.rev || ro.Phase != ledger.PhaseProgressing || ro.From.Version != "v1" || ro.To.Version != "v2" ||
		ro.From.Hash == ro.To.Hash || ro.By != "tok-1" || ro.Strategy != strategy.RollingUpdate || ro.Generation != 3 {
		t.Fatalf("rollout = %+v", ro)
	}
	w, _ := h.m.Work("web")
	if w.Rollout == nil || w.Rollout.ID != ro.ID || w.FromTemplate.Version != "v1" {
		t.Fatalf("Work() rollout = %+v from %+v", w.Rollout, w.FromTemplate)
	}
}

// TestRolloutSteps follows a rollout the leader carries out: intents get
// ids from the scaler's sequence, a done counts and clears its intent, a
// report records progress, Succeeded needs no intent pending, and the
// finished rollout is in the history.
func TestRolloutSteps(t *testing.T) {
	h := newMachine(t, 0)
	v1, v2 := processSpec(t, "v1"), processSpec(t, "v2")
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v1})
	res, _ := h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v2})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 7})
	w, _ := h.m.Work("web")
	id, to := w.Rollout.ID, w.Rollout.To
	_ = res

	start, _ := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutIntend, 7, ledger.RolloutCmd{ID: id, Kind: ledger.ActionStart, Version: to, Count: 2}))
	if a := start.Action; a == nil || len(a.IDs) != 2 || a.IDs[0] != "web-"+to.Hash[:8]+"-1" || a.IDs[1] != "web-"+to.Hash[:8]+"-2" {
		t.Fatalf("start action = %+v", start.Action)
	}
	// A start of anything but the target is refused.
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutIntend, 7, ledger.RolloutCmd{ID: id, Kind: ledger.ActionStart, Version: w.Rollout.From, Count: 1}))
	stop, _ := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutIntend, 7, ledger.RolloutCmd{ID: id, Kind: ledger.ActionStop, IDs: []string{"web-1"}}))
	// Succeeded with intents pending is refused.
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseSucceeded}))
	// A done naming an id the intent does not is refused.
	h.must(ledger.Invalid, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: id, ActionRevision: start.Action.Revision, IDs: []string{"web-9"}}))
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: id, ActionRevision: start.Action.Revision, IDs: start.Action.IDs}))
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: id, ActionRevision: start.Action.Revision, IDs: start.Action.IDs}))
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: id, ActionRevision: stop.Action.Revision, IDs: []string{"web-1"}}))
	vs := []ledger.VersionStatus{{Version: to, Running: 2, Ready: 2, Available: 2}}
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Versions: vs, Bounds: &strategy.Bounds{Replicas: 2, MaxSurge: 1}}))
	_, evs := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Versions: vs, Phase: ledger.PhaseSucceeded, Message: "2 of 2 available"}))
	re := rolloutEvents(t, evs)
	if len(re) != 1 || re[0].Change != ledger.ChangeFinished || re[0].Phase != ledger.PhaseSucceeded || re[0].Started != 2 || re[0].Stopped != 1 || re[0].FinishedAt == nil {
		t.Fatalf("finish events = %+v", re)
	}
	// Once finished, the leader's steps are stale and controls conflict.
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Versions: vs}))
	h.must(ledger.Stale, ledger.Command{Op: ledger.OpRolloutPause, Name: "web"})
	if hist := h.m.Rollouts("web", 10); len(hist) != 1 || hist[0].Phase != ledger.PhaseSucceeded || hist[0].From.Version != "v1" {
		t.Fatalf("Rollouts() = %+v", hist)
	}
}

// TestRolloutFencedAndSuperseded: a deposed leader's step is refused; a
// second template change supersedes the rollout in progress, which goes
// to the history, and the new one inherits its pending intents.
func TestRolloutFencedAndSuperseded(t *testing.T) {
	h := newMachine(t, 0)
	v1, v2, v3 := processSpec(t, "v1"), processSpec(t, "v2"), processSpec(t, "v3")
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v1})
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v2})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 7})
	w, _ := h.m.Work("web")
	start, _ := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutIntend, 7, ledger.RolloutCmd{ID: w.Rollout.ID, Kind: ledger.ActionStart, Version: w.Rollout.To, Count: 1}))
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 9})
	h.must(ledger.Fenced, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: w.Rollout.ID, ActionRevision: start.Action.Revision, IDs: start.Action.IDs}))
	if w2, _ := h.m.Work("web"); len(w2.Rollout.Pending) != 1 {
		t.Fatalf("pending after a new leader = %+v, want the intent kept for it to resume", w2.Rollout.Pending)
	}
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v3})
	w3, _ := h.m.Work("web")
	if w3.Rollout.ID == w.Rollout.ID || w3.Rollout.From.Version != "v2" || w3.Rollout.To.Version != "v3" || len(w3.Rollout.Pending) != 1 {
		t.Fatalf("superseding rollout = %+v", w3.Rollout)
	}
	// The new leader finishes the inherited intent against the new rollout.
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutDone, 9, ledger.RolloutCmd{ID: w3.Rollout.ID, ActionRevision: start.Action.Revision, IDs: start.Action.IDs}))
	hist := h.m.Rollouts("web", 10)
	if len(hist) != 2 || hist[0].To.Version != "v3" || hist[0].Started != 1 || hist[1].Phase != ledger.PhaseSuperseded || hist[1].To.Version != "v2" {
		t.Fatalf("Rollouts() = %+v", hist)
	}
}

// TestRolloutControls: pause stops the deadline, resume restarts it,
// promote marks the rollout, abort turns it back to From and it ends
// RolledBack; Failed is accepted only once the deadline has passed in
// log time.
func TestRolloutControls(t *testing.T) {
	h := newMachine(t, 0)
	v1, v2 := processSpec(t, "v1"), processSpec(t, "v2")
	d := wire.Duration(10 * time.Second)
	v2.Strategy.ProgressDeadline = &d
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v1})
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v2})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 7})
	w, _ := h.m.Work("web")
	id := w.Rollout.ID
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed}))
	res, _ := h.must(ledger.Recorded, ledger.Command{Op: ledger.OpRolloutPause, Name: "web", By: "tok-2"})
	if res.Rollout.Phase != ledger.PhasePaused || res.Rollout.Controls[0].By != "tok-2" {
		t.Fatalf("paused = %+v", res.Rollout)
	}
	h.must(ledger.Stale, ledger.Command{Op: ledger.OpRolloutPause, Name: "web"})
	for range 12 { // log time passes while paused
		h.must(ledger.NotFound, ledger.Command{Op: ledger.OpRolloutResume, Name: "nope"})
	}
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed}))
	h.must(ledger.Recorded, ledger.Command{Op: ledger.OpRolloutResume, Name: "web"})
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed}))
	res, _ = h.must(ledger.Recorded, ledger.Command{Op: ledger.OpRolloutPromote, Name: "web"})
	if !res.Rollout.Promoted {
		t.Fatalf("promoted = %+v", res.Rollout)
	}
	res, _ = h.must(ledger.Recorded, ledger.Command{Op: ledger.OpRolloutAbort, Name: "web"})
	if !res.Rollout.Aborted || res.Rollout.Target() != res.Rollout.From {
		t.Fatalf("aborted = %+v", res.Rollout)
	}
	h.must(ledger.Stale, ledger.Command{Op: ledger.OpRolloutPromote, Name: "web"})
	h.must(ledger.Invalid, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseSucceeded}))
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseRolledBack}))
	if ro, _ := h.m.CurrentRollout("web"); ro.Phase != ledger.PhaseRolledBack {
		t.Fatalf("after rollback: %+v", ro)
	}

	// A second rollout that makes no progress fails after its deadline.
	v3 := processSpec(t, "v3")
	v3.Strategy.ProgressDeadline = &d
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v3})
	w, _ = h.m.Work("web")
	for range 11 {
		h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: w.Rollout.ID}))
	}
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: w.Rollout.ID, Phase: ledger.PhaseFailed, Message: "no progress"}))
	hist := h.m.Rollouts("web", 10)
	if len(hist) != 2 || hist[0].Phase != ledger.PhaseFailed || hist[1].Phase != ledger.PhaseRolledBack {
		t.Fatalf("Rollouts() = %+v", hist)
	}
	ops := []string{}
	for _, c := range hist[1].Controls {
		ops = append(ops, c.Op)
	}
	if !slices.Equal(ops, []string{ledger.OpRolloutPause, ledger.OpRolloutResume, ledger.OpRolloutPromote, ledger.OpRolloutAbort}) {
		t.Errorf("controls = %q", ops)
	}
}

// TestRolloutHistoryBoundedAndReplayed: the history keeps the newest
// KeepRollouts, and a replica that restores a snapshot and replays the
// rest ends with the same bytes.
func TestRolloutHistoryBoundedAndReplayed(t *testing.T) {
	h := newMachine(t, 0)
	v := processSpec(t, "v0")
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v})
	var snap []byte
	var at int
	for i := 1; i <= ledger.KeepRollouts+5; i++ {
		s := processSpec(t, "v"+string(rune('a'+i)))
		h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &s})
		if i == 7 {
			snap, at = h.snapshot(), len(h.entries)
		}
	}
	if got := h.m.Rollouts("web", 100); len(got) != ledger.KeepRollouts+1 || got[1].Phase != ledger.PhaseSuperseded {
		t.Fatalf("Rollouts() holds %d, want the one in progress and %d finished", len(got), ledger.KeepRollouts)
	}
	m := restored(t, snap, 0)
	for _, e := range h.entries[at:] {
		m.Apply(e)
	}
	if a, b := h.snapshot(), snapshotOf(t, m); !bytes.Equal(a, b) {
		t.Fatalf("replayed state differs:\n%s\n%s", a, b)
	}
}

// canarySpec is processSpec with a Canary of two steps.
func canarySpec(t testing.TB, version string) ledger.Spec {
	t.Helper()
	s := processSpec(t, version)
	s.Strategy = nil
	if err := json.Unmarshal([]byte(`{"type":"Canary","canary":{"steps":[{"setWeight":20},{"pause":"1m"}],"analysis":{"window":"10s","maxErrorRate":0.01}}}`), &s.Strategy); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCanarySteps: a canary's rollout holds its step, the weights in
// force and the analyses the leader records; steps only go forward; a
// failed analysis turns it back to From by itself (Aborted, with the
// failure), after which it can only end Failed, and only with nothing
// pending. Bad weights are refused and change nothing.
func TestCanarySteps(t *testing.T) {
	h := newMachine(t, 0)
	v1, v2 := canarySpec(t, "v1"), canarySpec(t, "v2")
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v1})
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &v2})
	w, _ := h.m.Work("web")
	id := w.Rollout.ID
	if w.Rollout.Strategy != strategy.Canary || w.Rollout.Canary == nil || w.Rollout.Canary.Step != 0 {
		t.Fatalf("rollout = %+v, want a canary at step 0", w.Rollout)
	}
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 7})
	for _, bad := range []map[string]int{{"": 10}, {"v2": -1}, {"v2": 1_000_001}} {
		h.must(ledger.Invalid, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id, Weights: bad}))
	}
	res, _ := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id, Weights: map[string]int{"v1": 80, "v2": 20}}))
	if cs := res.Rollout.Canary; cs.Weights["v2"] != 20 || cs.WeightsAt == nil {
		t.Fatalf("canary after weights = %+v", cs)
	}
	one := 1
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id, Step: &one,
		Analysis: &analysis.Result{Verdict: analysis.Pass, Message: "fine"}}))
	zero := 0
	h.must(ledger.Invalid, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id, Step: &zero}))
	// The leader may not end it Failed while it has not failed, nor
	// RolledBack while it was not aborted.
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed}))
	h.must(ledger.Invalid, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseRolledBack}))

	res, evs := h.must(ledger.Recorded, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id,
		Analysis: &analysis.Result{Verdict: analysis.Fail, Failed: []string{analysis.MaxErrorRate}, Message: "error rate 5.00%"},
		Budget:   &ledger.Budget{Requests: 160, Failures: 8}}))
	ro := res.Rollout
	if !ro.Aborted || ro.Failure == "" || ro.Target() != ro.From || ro.Canary.Budget.Failures != 8 || len(ro.Canary.Analyses) != 2 || ro.Canary.Analyses[1].Step != 1 {
		t.Fatalf("rollout after a failed analysis = %+v", ro)
	}
	if re := rolloutEvents(t, evs); len(re) != 1 || re[0].Change != ledger.ChangeCanary {
		t.Fatalf("events = %+v", re)
	}
	// Rolled back, it goes no further forward.
	two := 2
	res, _ = h.must(ledger.Recorded, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: id, Step: &two}))
	if res.Rollout.Canary.Step != 1 {
		t.Fatalf("a rolled-back canary moved to step %d", res.Rollout.Canary.Step)
	}
	// Back on v1 (an intent pending first), it ends Failed and nothing else.
	res, _ = h.must(ledger.Recorded, leaderStep(ledger.OpRolloutIntend, 7, ledger.RolloutCmd{ID: id, Kind: ledger.ActionStop, IDs: []string{"web-x-1"}}))
	h.must(ledger.Stale, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed}))
	h.must(ledger.Recorded, leaderStep(ledger.OpRolloutDone, 7, ledger.RolloutCmd{ID: id, ActionRevision: res.Action.Revision, IDs: []string{"web-x-1"}}))
	for _, wrong := range []string{ledger.PhaseSucceeded, ledger.PhaseRolledBack} {
		h.must(ledger.Invalid, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: wrong}))
	}
	res, _ = h.must(ledger.Recorded, leaderStep(ledger.OpRolloutReport, 7, ledger.RolloutCmd{ID: id, Phase: ledger.PhaseFailed, Message: "rolled back"}))
	if res.Rollout.Phase != ledger.PhaseFailed || res.Rollout.Active() {
		t.Fatalf("rollout = %+v, want Failed", res.Rollout)
	}
	// A canary op of a rolling update is refused.
	r1 := processSpec(t, "r1")
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &r1})
	w, _ = h.m.Work("web")
	h.must(ledger.Invalid, leaderStep(ledger.OpRolloutCanary, 7, ledger.RolloutCmd{ID: w.Rollout.ID, Weights: map[string]int{"r1": 1}}))
}
