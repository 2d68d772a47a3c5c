package ledger_test

import (
	"encoding/json"
	"testing"

	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// TestLoopCommandsRecordBy: a decision, its actuation and an actuation
// a new leader abandons record the By of the command that made them (the
// control loop's own token), in the state and in their events.
func TestLoopCommandsRecordBy(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec, By: "tok_writer"})
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "api", Spec: &spec, By: "tok_writer"})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 1, By: "tok_r1"})
	by := func(c ledger.Command, id string) ledger.Command { c.By = id; return c }

	dec, evs := h.must(ledger.Recorded, by(decideCmd("web", "r1", 1, 1, h.at, 2, 4), "tok_r1"))
	rev := dec.Scaler.Status.LastDecision.Revision
	var d ledger.Decision
	if err := json.Unmarshal(evs[0].Data, &d); err != nil || d.By != "tok_r1" || dec.Scaler.Status.LastDecision.By != "tok_r1" {
		t.Fatalf("decision event %s, lastDecision by %q: want by tok_r1", evs[0].Data, dec.Scaler.Status.LastDecision.By)
	}
	_, evs = h.must(ledger.Recorded, by(actuateCmd("web", "r1", 1, rev, ledger.Actuation{Replicas: 4, Result: &driver.Result{Previous: 2, Replicas: 4}}), "tok_r1"))
	var act ledger.ActuationEvent
	if err := json.Unmarshal(evs[0].Data, &act); err != nil || act.By != "tok_r1" {
		t.Fatalf("actuation event = %s, want by tok_r1", evs[0].Data)
	}
	if ds, _ := h.m.Recent("web", 1); ds[0].Actuation == nil || ds[0].Actuation.By != "tok_r1" {
		t.Fatalf("recent decision = %+v, want its actuation by tok_r1", ds[0])
	}

	// r1 is deposed between its decision on api and the driver's answer:
	// the lead of r2 abandons it, under r2's token.
	h.must(ledger.Recorded, by(decideCmd("api", "r1", 1, 1, h.at, 2, 4), "tok_r1"))
	_, evs = h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 2, By: "tok_r2"})
	if len(evs) != 1 || json.Unmarshal(evs[0].Data, &act) != nil || act.By != "tok_r2" {
		t.Fatalf("lead events = %v, want api's actuation abandoned by tok_r2", evs)
	}
	if got := h.m.Get("api").Status.LastDecision; got.By != "tok_r1" || got.Actuation == nil || got.Actuation.By != "tok_r2" {
		t.Fatalf("api lastDecision = %+v, want decided by tok_r1, abandoned by tok_r2", got)
	}
}
