package ledger_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// replayKeep is small so that trimming the recent decisions is part of
// what the replay must reproduce.
const replayKeep = 5

// scenario builds one log as leaders would propose it: two scalers decided
// by hpa.Decide over a load series, each scaling decision followed
// by its actuation (one of them failing), a spec update that makes a
// decision in flight stale, a change of leader that abandons an
// unactuated scale and fences the old leader's late answer, a delete and
// a re-create, and commands that are not commands. It returns the entries
// and how often each outcome occurred, so the test can tell the log
// covers what it claims to.
func scenario(t testing.TB) ([]qlog.Entry, map[string]int) {
	h := newMachine(t, replayKeep)
	tally := map[string]int{}
	count := func(res ledger.Result, evs []qlog.Event) ledger.Result {
		tally[res.Status]++
		for _, ev := range evs {
			tally["event "+ev.Type]++
			var a ledger.ActuationEvent
			if ev.Type == ledger.EventActuation && json.Unmarshal(ev.Data, &a) == nil && a.Error != "" {
				tally["failed actuation"]++
			}
		}
		return res
	}
	apply := func(c ledger.Command) ledger.Result { return count(h.apply(c)) }

	web := webhookSpec("web", 10)
	web.Behavior = &hpa.Behavior{ScaleDown: &hpa.Rules{StabilizationWindow: ptr(wire.Duration(30 * time.Second))}}
	api := ledger.Spec{
		Service: "api",
		Spec: hpa.Spec{MinReplicas: ptr(2), MaxReplicas: 6, Metrics: []hpa.Metric{
			{Name: "queue", Target: hpa.Target{Type: hpa.Value, Value: 10}},
		}},
		Driver: driver.Spec{Type: driver.TypeProcess, ProcessSpec: driver.ProcessSpec{Command: []string{"api", "--port=0"}}},
	}
	apply(ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &web})
	apply(ledger.Command{Op: ledger.OpPut, Name: "api", Spec: &api})
	leader, token := "r1", int64(1)
	apply(ledger.Command{Op: ledger.OpLead, Replica: leader, Token: token})

	webLoad := []float64{80, 350, 900, 1200, 1300, 1100, 600, 200, 90, 60, 50, 400, 900, 900, 300, 100, 50, 40, 40, 30, 30, 20}
	apiQueue := []float64{5, 30, 60, 60, 25, 10, 8, 2, 0, 0, 50, 70, 20, 10, 10, 5, 5, 5, 5, 5, 5, 5}
	current := map[string]int{"web": 1, "api": 2}
	start := h.at
	for step := range webLoad {
		h.at = start.Add(time.Duration(step+1) * 15 * time.Second)
		for _, name := range []string{"api", "web"} {
			w, ok := h.m.Work(name)
			if !ok {
				continue
			}
			cur := current[name]
			in := hpa.Input{Now: h.at, CurrentReplicas: cur, Metrics: map[string]hpa.Observation{}}
			for i := range cur {
				in.Instances = append(in.Instances, hpa.Instance{ID: fmt.Sprintf("%s-%d", name, i), Ready: true})
			}
			load := webLoad[step]
			if name == "api" {
				load = apiQueue[step]
			}
			in.Metrics[w.Spec.Metrics[0].Name] = hpa.Observation{Value: ptr(load)}
			d, st := hpa.Decide(w.Spec.Spec, w.State, in)
			if d.Error != "" {
				t.Fatalf("step %d %s: Decide failed: %s", step, name, d.Error)
			}
			if name == "web" && step == 6 {
				// The spec changes while the leader decides.
				web.MaxReplicas = 8
				apply(ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &web})
			}
			res := apply(ledger.Command{Op: ledger.OpDecide, Name: name, Replica: leader, Token: token, Generation: w.Generation, SpecRevision: w.SpecRevision,
				Decision: &ledger.Decision{Observed: map[string]float64{w.Spec.Metrics[0].Name: load}, Decision: d}, State: &st})
			if res.Status != ledger.Recorded || !d.Scale() {
				continue
			}
			if d.DesiredReplicas > cur {
				tally["scale up"]++
			} else {
				tally["scale down"]++
			}
			rev := res.Scaler.Status.LastDecision.Revision
			if name == "web" && step >= 12 && token == 1 {
				// The leader is deposed between its decision and the
				// driver's answer.
				apply(ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 2})
				apply(actuateCmd(name, leader, token, rev, ledger.Actuation{Replicas: d.DesiredReplicas,
					Result: &driver.Result{Previous: cur, Replicas: d.DesiredReplicas}}))
				leader, token = "r2", 2
				continue
			}
			act := ledger.Actuation{Replicas: d.DesiredReplicas}
			if name == "web" && tally["failed actuation"] == 0 {
				act.Error = "webhook answered 503"
			} else {
				act.Result = &driver.Result{Previous: cur, Replicas: d.DesiredReplicas}
				current[name] = d.DesiredReplicas
			}
			apply(actuateCmd(name, leader, token, rev, act))
		}
		switch step {
		case 8:
			out, evs := h.raw([]byte(`{"op":"decide","name":"web"`))
			var res ledger.Result
			_ = json.Unmarshal(out, &res)
			count(res, evs)
			apply(ledger.Command{Op: "scale", Name: "web"})
		case 15:
			apply(ledger.Command{Op: ledger.OpDelete, Name: "api"})
		case 18:
			apply(ledger.Command{Op: ledger.OpPut, Name: "api", Spec: &api})
			current["api"] = 2
		}
	}
	return h.entries, tally
}

func TestScenarioCoversTheMachine(t *testing.T) {
	_, tally := scenario(t)
	for _, what := range []string{
		ledger.Created, ledger.Updated, ledger.Deleted, ledger.Led, ledger.Recorded, ledger.Stale,
		ledger.Fenced, ledger.Invalid, "scale up", "scale down", "failed actuation",
		"event " + ledger.EventPut, "event " + ledger.EventDeleted, "event " + ledger.EventDecision, "event " + ledger.EventActuation,
	} {
		if tally[what] == 0 {
			t.Errorf("the scenario never produces %q: %v", what, tally)
		}
	}
	if tally["event "+ledger.EventDecision] <= replayKeep {
		t.Errorf("the scenario records %d decisions, too few to trim to %d", tally["event "+ledger.EventDecision], replayKeep)
	}
	if tally["failed actuation"] < 2 {
		t.Errorf("the scenario has %d failed actuations, want the driver's and the abandoned one", tally["failed actuation"])
	}
}

// TestReplayIsDeterministic applies one log to two fresh machines, and
// the rest of it to machines restored from a snapshot taken after every
// entry, and requires the same result and events for every entry and
// byte-identical snapshots (STYLE habit 4).
func TestReplayIsDeterministic(t *testing.T) {
	entries, _ := scenario(t)
	a, b := ledger.New(replayKeep), ledger.New(replayKeep)
	type outcome struct {
		res []byte
		evs []qlog.Event
	}
	outcomes := make([]outcome, len(entries))
	snaps := make([][]byte, len(entries)) // snaps[i]: after entries[:i]
	for i, e := range entries {
		snaps[i] = snapshotOf(t, a)
		ra, ea := a.Apply(e)
		rb, eb := b.Apply(e)
		if !bytes.Equal(ra, rb) || !reflect.DeepEqual(ea, eb) {
			t.Fatalf("rev %d: %s %v vs %s %v", e.Revision, ra, ea, rb, eb)
		}
		outcomes[i] = outcome{ra, ea}
	}
	final := snapshotOf(t, a)
	if sb := snapshotOf(t, b); !bytes.Equal(final, sb) {
		t.Fatalf("snapshots differ:\n%s\n%s", final, sb)
	}
	for cut := range entries {
		c := restored(t, snaps[cut], replayKeep)
		for i, e := range entries[cut:] {
			rc, ec := c.Apply(e)
			if o := outcomes[cut+i]; !bytes.Equal(rc, o.res) || !reflect.DeepEqual(ec, o.evs) {
				t.Fatalf("restored after %d entries, rev %d: %s %v, want %s %v", cut, e.Revision, rc, ec, o.res, o.evs)
			}
		}
		if sc := snapshotOf(t, c); !bytes.Equal(final, sc) {
			t.Fatalf("restored after %d entries: snapshot differs:\n%s\nwant\n%s", cut, sc, final)
		}
	}
	// A snapshot restores to itself.
	if again := snapshotOf(t, restored(t, final, replayKeep)); !bytes.Equal(final, again) {
		t.Fatalf("Restore(Snapshot) then Snapshot differs:\n%s\n%s", final, again)
	}
}
