package ledger_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

func TestPutCreatesThenUpdates(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	out, evs := h.raw([]byte(mustJSON(t, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})))
	if bytes.Contains(out, []byte(secret)) {
		t.Errorf("put result shows the webhook secret: %s", out)
	}
	var res ledger.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != ledger.Created {
		t.Fatalf("first put: status = %q, want %q", res.Status, ledger.Created)
	}
	sc := res.Scaler
	if sc == nil || sc.Name != "web" || sc.Generation != 1 || sc.CreateRevision != 1 || sc.ModRevision != 1 {
		t.Fatalf("first put: scaler = %+v, want web at generation 1, created and modified at 1", sc)
	}
	if sc.Spec.Driver.Secret != "" || sc.Spec.Driver.URL != spec.Driver.URL || sc.Spec.Service != "web" || sc.Spec.MaxReplicas != 10 {
		t.Errorf("first put: spec = %+v, want the spec without its secret", sc.Spec)
	}
	if sc.Status.Conditions == nil || len(sc.Status.Conditions) != 0 {
		t.Errorf("first put: conditions = %#v, want an empty list (written [] not null)", sc.Status.Conditions)
	}
	if len(evs) != 1 || evs[0].Type != ledger.EventPut || evs[0].Key != "web" {
		t.Fatalf("first put: events = %v, want one put event for web", evs)
	}
	if bytes.Contains(evs[0].Data, []byte(secret)) {
		t.Errorf("put event shows the webhook secret: %s", evs[0].Data)
	}
	var evScaler ledger.Scaler
	if err := json.Unmarshal(evs[0].Data, &evScaler); err != nil || evScaler.Generation != 1 || evScaler.Name != "web" {
		t.Errorf("put event data = %s (%v), want the scaler at generation 1", evs[0].Data, err)
	}

	spec.MaxReplicas = 20
	res, _ = h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	if sc := res.Scaler; sc.Generation != 2 || sc.CreateRevision != 1 || sc.ModRevision != 2 || sc.Spec.MaxReplicas != 20 {
		t.Errorf("second put: scaler = %+v, want generation 2, created at 1, modified at 2, maxReplicas 20", sc)
	}

	if got := h.m.Get("web"); got == nil || got.Spec.Driver.Secret != "" || got.Generation != 2 {
		t.Errorf("Get(web) = %+v, want generation 2 without the secret", got)
	}
	items, more := h.m.List("", 0)
	if len(items) != 1 || more || items[0].Spec.Driver.Secret != "" {
		t.Errorf("List = %+v, %v, want web alone without the secret", items, more)
	}
	// The control loop builds the driver from Work: it needs the secret,
	// and so must a replica that restored from a snapshot.
	for label, m := range map[string]*ledger.Machine{"applied": h.m, "restored": restored(t, h.snapshot(), 0)} {
		if w, ok := m.Work("web"); !ok || w.Spec.Driver.Secret != secret || w.Generation != 2 {
			t.Errorf("%s: Work(web) = %+v, %v, want generation 2 with the secret", label, w, ok)
		}
	}

	h.must(ledger.Invalid, ledger.Command{Op: ledger.OpPut, Name: "api"})
	if h.m.Get("api") != nil {
		t.Errorf("a put without a spec created api")
	}
}

func TestDeleteAndNotFound(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	out, evs := h.raw([]byte(mustJSON(t, ledger.Command{Op: ledger.OpDelete, Name: "web"})))
	var res ledger.Result
	if err := json.Unmarshal(out, &res); err != nil || res.Status != ledger.Deleted || res.Scaler == nil || res.Scaler.Name != "web" {
		t.Fatalf("delete = %s (%v), want deleted with the scaler", out, err)
	}
	if bytes.Contains(out, []byte(secret)) {
		t.Errorf("delete result shows the webhook secret: %s", out)
	}
	if len(evs) != 1 || evs[0].Type != ledger.EventDeleted || evs[0].Key != "web" {
		t.Errorf("delete events = %v, want one deleted event for web", evs)
	}
	if h.m.Get("web") != nil || len(h.m.Names()) != 0 {
		t.Errorf("after delete: Get(web) = %v, Names = %v, want nothing", h.m.Get("web"), h.m.Names())
	}
	if _, ok := h.m.Work("web"); ok {
		t.Errorf("after delete: Work(web) found it")
	}
	if ds, complete := h.m.Recent("web", 10); ds != nil || !complete {
		t.Errorf("after delete: Recent(web) = %v, %v, want nil, true", ds, complete)
	}
	before := h.snapshot()
	for _, c := range []ledger.Command{
		{Op: ledger.OpDelete, Name: "web"},
		decideCmd("web", "r1", 1, 1, t0, 1, 2),
		actuateCmd("web", "r1", 1, 1, ledger.Actuation{Replicas: 2}),
	} {
		_, evs := h.must(ledger.NotFound, c)
		if len(evs) != 0 {
			t.Errorf("%s of a missing scaler emitted %v", c.Op, evs)
		}
	}
	// A leader's command is admitted before the scaler is looked up, so
	// the fence may rise; nothing else may change.
	after := h.snapshot()
	if withoutFence(t, before) != withoutFence(t, after) {
		t.Errorf("commands on a missing scaler changed the state:\n%s\n%s", before, after)
	}
}

// withoutFence is a snapshot's scalers alone.
func withoutFence(t *testing.T, snap []byte) string {
	t.Helper()
	var s struct {
		Scalers json.RawMessage `json:"scalers"`
	}
	if err := json.Unmarshal(snap, &s); err != nil {
		t.Fatal(err)
	}
	return string(s.Scalers)
}

func TestUnknownAndUndecodableCommandsAreInvalid(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	before := h.snapshot()
	for _, cmd := range []string{``, `{`, `null x`, `[]`, `"put"`, `{"op":1}`, `{"op":"put","spec":"nope"}`,
		`{"op":"decide","token":"7"}`, `{"op":"explode","name":"web"}`, `{}`, `\xff\xfe`} {
		out, evs := h.raw([]byte(cmd))
		var res ledger.Result
		if err := json.Unmarshal(out, &res); err != nil || res.Status != ledger.Invalid {
			t.Errorf("Apply(%q) = %s (%v), want status invalid", cmd, out, err)
		}
		if len(evs) != 0 {
			t.Errorf("Apply(%q) emitted %v", cmd, evs)
		}
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Errorf("invalid commands changed the state:\n%s\n%s", before, after)
	}
}

func TestFence(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	if f := h.m.CurrentFence(); f != (ledger.Fence{}) {
		t.Fatalf("fence of a new machine = %+v, want none", f)
	}
	res, _ := h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 5})
	if res.Fence == nil || *res.Fence != (ledger.Fence{Token: 5, Replica: "r1"}) {
		t.Errorf("lead result fence = %+v, want token 5 of r1", res.Fence)
	}
	if f := h.m.CurrentFence(); f != (ledger.Fence{Token: 5, Replica: "r1"}) {
		t.Fatalf("CurrentFence = %+v, want token 5 of r1", f)
	}
	dec, _ := h.must(ledger.Recorded, decideCmd("web", "r1", 5, 1, h.at, 2, 4))
	decRev := dec.Scaler.Status.LastDecision.Revision

	// A deposed leader (token 4) is refused, and nothing changes.
	before := h.snapshot()
	for _, c := range []ledger.Command{
		{Op: ledger.OpLead, Replica: "r0", Token: 4},
		decideCmd("web", "r0", 4, 1, h.at, 2, 8),
		actuateCmd("web", "r0", 4, decRev, ledger.Actuation{Replicas: 4, Error: "late"}),
		actuateCmd("web", "r1", 1, decRev, ledger.Actuation{Replicas: 4, Error: "late"}),
	} {
		res, evs := h.must(ledger.Fenced, c)
		if res.Fence == nil || *res.Fence != (ledger.Fence{Token: 5, Replica: "r1"}) {
			t.Errorf("%s with token %d: fence = %+v, want token 5 of r1", c.Op, c.Token, res.Fence)
		}
		if len(evs) != 0 {
			t.Errorf("%s with token %d emitted %v", c.Op, c.Token, evs)
		}
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("fenced commands changed the state:\n%s\n%s", before, after)
	}

	// The fence's own token passes: a leader sends many commands a term.
	h.must(ledger.Recorded, actuateCmd("web", "r1", 5, decRev, ledger.Actuation{Replicas: 4, Result: &driver.Result{Previous: 2, Replicas: 4}}))
	h.must(ledger.Recorded, decideCmd("web", "r1", 5, 1, h.at, 4, 4))
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 5})

	// Any leader's command with a newer token raises the fence, a lead
	// or not.
	h.must(ledger.Recorded, decideCmd("web", "r2", 7, 1, h.at, 4, 4))
	if f := h.m.CurrentFence(); f != (ledger.Fence{Token: 7, Replica: "r2"}) {
		t.Fatalf("after a decide with token 7: CurrentFence = %+v, want token 7 of r2", f)
	}
	h.must(ledger.Fenced, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 6})
	h.must(ledger.Fenced, decideCmd("web", "r1", 5, 1, h.at, 4, 4))

	// A leader's command must say who sends it, with a positive token;
	// an invalid one neither raises the fence nor changes anything.
	before = h.snapshot()
	for _, c := range []ledger.Command{
		{Op: ledger.OpLead, Replica: "r3", Token: 0},
		{Op: ledger.OpLead, Replica: "r3", Token: -9},
		{Op: ledger.OpLead, Token: 9},
		decideCmd("web", "", 9, 1, h.at, 4, 5),
		decideCmd("web", "r3", 0, 1, h.at, 4, 5),
		actuateCmd("web", "", 9, decRev, ledger.Actuation{Replicas: 4}),
		actuateCmd("web", "r3", -1, decRev, ledger.Actuation{Replicas: 4}),
	} {
		if _, evs := h.must(ledger.Invalid, c); len(evs) != 0 {
			t.Errorf("invalid %s emitted %v", c.Op, evs)
		}
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Errorf("invalid leader commands changed the state:\n%s\n%s", before, after)
	}
	if f := h.m.CurrentFence(); f != (ledger.Fence{Token: 7, Replica: "r2"}) {
		t.Errorf("after invalid commands: CurrentFence = %+v, want token 7 of r2", f)
	}
	// The fence survives a snapshot.
	if f := restored(t, h.snapshot(), 0).CurrentFence(); f != (ledger.Fence{Token: 7, Replica: "r2"}) {
		t.Errorf("restored CurrentFence = %+v, want token 7 of r2", f)
	}
}

func TestDecide(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 3})

	at := t0.Add(42 * time.Second)
	c := decideCmd("web", "r1", 3, 1, at, 2, 4)
	// What the command says of its own revision, leader and actuation is
	// not taken: the log decides those.
	c.Decision.Revision, c.Decision.Leader, c.Decision.Token, c.Decision.Generation = 99, "mallory", 99, 99
	c.Decision.Actuation = &ledger.Actuation{Replicas: 9}
	res, evs := h.must(ledger.Recorded, c)
	rev := h.rev

	want := *c.Decision
	want.Revision, want.Generation, want.Leader, want.Token, want.Actuation = rev, 1, "r1", 3, nil
	st := res.Scaler.Status
	if st.CurrentReplicas != 2 || st.DesiredReplicas != 4 || st.ObservedGeneration != 1 {
		t.Errorf("status = current %d, desired %d, observedGeneration %d; want 2, 4, 1", st.CurrentReplicas, st.DesiredReplicas, st.ObservedGeneration)
	}
	if !reflect.DeepEqual(st.Conditions, c.Decision.Conditions) {
		t.Errorf("conditions = %+v, want the decision's %+v", st.Conditions, c.Decision.Conditions)
	}
	if st.LastDecision == nil || !reflect.DeepEqual(*st.LastDecision, want) {
		t.Errorf("lastDecision = %+v,\nwant %+v", st.LastDecision, want)
	}
	if st.LastScaleTime != nil || st.DriverError != "" {
		t.Errorf("a decision alone set lastScaleTime %v or driverError %q", st.LastScaleTime, st.DriverError)
	}
	if w, _ := h.m.Work("web"); !reflect.DeepEqual(w.State, *c.State) {
		t.Errorf("Work(web).State = %+v, want the decision's %+v", w.State, *c.State)
	}
	if ds, complete := h.m.Recent("web", 10); len(ds) != 1 || !reflect.DeepEqual(ds[0], want) || !complete {
		t.Errorf("Recent(web) = %+v, %v, want the one decision, complete", ds, complete)
	}
	if len(evs) != 1 || evs[0].Type != ledger.EventDecision || evs[0].Key != "web" {
		t.Fatalf("events = %v, want one decision event for web", evs)
	}
	var evd ledger.Decision
	if err := json.Unmarshal(evs[0].Data, &evd); err != nil || !reflect.DeepEqual(evd, want) {
		t.Errorf("decision event data = %s (%v), want %+v", evs[0].Data, err, want)
	}

	// A decision made under another generation is stale, and changes
	// nothing but the fence.
	spec.MaxReplicas = 12
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	before := h.snapshot()
	for _, gen := range []int64{0, 1, 3} {
		if _, evs := h.must(ledger.Stale, decideCmd("web", "r1", 3, gen, h.at, 4, 6)); len(evs) != 0 {
			t.Errorf("stale decide emitted %v", evs)
		}
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Errorf("stale decisions changed the state:\n%s\n%s", before, after)
	}
	res, _ = h.must(ledger.Recorded, decideCmd("web", "r1", 3, 2, h.at, 4, 6))
	if res.Scaler.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration = %d, want 2", res.Scaler.Status.ObservedGeneration)
	}

	// Without a decision or a state there is nothing to record.
	for _, c := range []ledger.Command{
		{Op: ledger.OpDecide, Name: "web", Replica: "r1", Token: 3, Generation: 2, State: &hpa.State{}},
		{Op: ledger.OpDecide, Name: "web", Replica: "r1", Token: 3, Generation: 2, Decision: &ledger.Decision{}},
	} {
		h.must(ledger.Invalid, c)
	}
}

func TestDecideWithoutConditionsWritesAnEmptyList(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	c := decideCmd("web", "r1", 1, 1, h.at, 2, 2)
	c.Decision.Conditions = nil
	h.must(ledger.Recorded, c)
	if b := mustJSON(t, h.m.Get("web").Status); !strings.Contains(b, `"conditions":[]`) {
		t.Errorf("status = %s, want \"conditions\":[]", b)
	}
}

func TestDecideKeepsTheNewest(t *testing.T) {
	const keep = 3
	h := newMachine(t, keep)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	var revs []int64 // decision revisions, oldest first
	for i := range 5 {
		res, _ := h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 2+i%2))
		revs = append(revs, res.Scaler.Status.LastDecision.Revision)
		ds, complete := h.m.Recent("web", 100)
		if wantN := min(i+1, keep); len(ds) != wantN {
			t.Fatalf("after %d decisions: Recent holds %d, want %d", i+1, len(ds), wantN)
		}
		// Below keep the replicas hold every decision; at keep they
		// cannot tell whether older ones were dropped.
		if wantComplete := i+1 < keep; complete != wantComplete {
			t.Errorf("after %d decisions: complete = %v, want %v", i+1, complete, wantComplete)
		}
	}
	tests := []struct {
		name  string
		limit int
		want  []int64
	}{
		{"all", 100, []int64{revs[4], revs[3], revs[2]}},
		{"exactly keep", keep, []int64{revs[4], revs[3], revs[2]}},
		{"newest two", 2, []int64{revs[4], revs[3]}},
		{"newest one", 1, []int64{revs[4]}},
		{"none", 0, nil},
		{"negative", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, complete := h.m.Recent("web", tt.limit)
			var got []int64
			for _, d := range ds {
				got = append(got, d.Revision)
			}
			if !reflect.DeepEqual(got, tt.want) || complete {
				t.Errorf("Recent(web, %d) = %v, %v, want %v, false", tt.limit, got, complete, tt.want)
			}
		})
	}
	// Trimming is state: a restored replica holds the same decisions.
	r := restored(t, h.snapshot(), keep)
	if got, _ := r.Recent("web", 100); len(got) != keep || got[0].Revision != revs[4] {
		t.Errorf("restored Recent = %+v, want the newest %d", got, keep)
	}
}

func TestActuateSuccess(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	decidedAt := h.at
	dec, _ := h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, decidedAt, 2, 4))
	decRev := dec.Scaler.Status.LastDecision.Revision

	result := &driver.Result{Previous: 2, Replicas: 4, Detail: "ok"}
	// The actuation's revision and time are the log's, whatever the
	// command says.
	res, evs := h.must(ledger.Recorded, actuateCmd("web", "r1", 1, decRev,
		ledger.Actuation{Revision: 77, At: t0.Add(-time.Hour), Replicas: 4, Result: result}))
	wantAct := ledger.Actuation{Revision: h.rev, At: h.at, Replicas: 4, Result: result}

	st := res.Scaler.Status
	if st.CurrentReplicas != 4 || st.DesiredReplicas != 4 || st.DriverError != "" {
		t.Errorf("status = current %d, desired %d, driverError %q; want 4, 4, none", st.CurrentReplicas, st.DesiredReplicas, st.DriverError)
	}
	if st.LastScaleTime == nil || !st.LastScaleTime.Equal(h.at) {
		t.Errorf("lastScaleTime = %v, want the actuation's log time %v", st.LastScaleTime, h.at)
	}
	if c, ok := condition(st.Conditions, "AbleToScale"); !ok || !c.Status || c.Reason != "SucceededRescale" {
		t.Errorf("AbleToScale = %+v, want true SucceededRescale", c)
	}
	if c, ok := condition(st.Conditions, "ScalingActive"); !ok || !c.Status {
		t.Errorf("the actuation dropped the decision's other conditions: %+v", st.Conditions)
	}
	if st.LastDecision == nil || st.LastDecision.Revision != decRev || st.LastDecision.Actuation == nil ||
		!reflect.DeepEqual(*st.LastDecision.Actuation, wantAct) {
		t.Errorf("lastDecision = %+v, want decision %d with actuation %+v", st.LastDecision, decRev, wantAct)
	}
	if ds, _ := h.m.Recent("web", 1); len(ds) != 1 || ds[0].Actuation == nil || !reflect.DeepEqual(*ds[0].Actuation, wantAct) {
		t.Errorf("Recent(web, 1) = %+v, want the decision with actuation %+v", ds, wantAct)
	}
	// A successful scale happened: the scale event stays for the rate
	// policies.
	if w, _ := h.m.Work("web"); len(w.State.ScaleUpEvents) != 1 {
		t.Errorf("State after a successful actuation = %+v, want the scale-up event kept", w.State)
	}
	if len(evs) != 1 || evs[0].Type != ledger.EventActuation || evs[0].Key != "web" {
		t.Fatalf("events = %v, want one actuation event for web", evs)
	}
	var ev ledger.ActuationEvent
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil || ev.DecisionRevision != decRev || !reflect.DeepEqual(ev.Actuation, wantAct) {
		t.Errorf("actuation event data = %s (%v), want decisionRevision %d and %+v", evs[0].Data, err, decRev, wantAct)
	}
	if !bytes.Contains(evs[0].Data, []byte(`"decisionRevision":`)) {
		t.Errorf("actuation event data = %s, want a decisionRevision field", evs[0].Data)
	}

	// A driver that reports no change does not move lastScaleTime.
	scaledAt := *st.LastScaleTime
	dec, _ = h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 4, 5))
	res, _ = h.must(ledger.Recorded, actuateCmd("web", "r1", 1, dec.Scaler.Status.LastDecision.Revision,
		ledger.Actuation{Replicas: 5, Result: &driver.Result{Previous: 4, Replicas: 4}}))
	if lst := res.Scaler.Status.LastScaleTime; lst == nil || !lst.Equal(scaledAt) {
		t.Errorf("lastScaleTime after a no-op actuation = %v, want %v", lst, scaledAt)
	}
	if res.Scaler.Status.CurrentReplicas != 4 {
		t.Errorf("currentReplicas = %d, want the driver's 4", res.Scaler.Status.CurrentReplicas)
	}
}

func TestActuateFailure(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	earlier := h.at
	c := decideCmd("web", "r1", 1, 1, h.at.Add(30*time.Second), 2, 4)
	decidedAt := c.Decision.At
	// An older scale event, which did happen, must survive the failure.
	c.State.ScaleUpEvents = append([]hpa.ScaleEvent{{At: earlier, Change: 1}}, c.State.ScaleUpEvents...)
	c.State.ScaleDownEvents = []hpa.ScaleEvent{{At: earlier, Change: 1}}
	dec, _ := h.must(ledger.Recorded, c)
	decRev := dec.Scaler.Status.LastDecision.Revision

	res, evs := h.must(ledger.Recorded, actuateCmd("web", "r1", 1, decRev, ledger.Actuation{Replicas: 4, Error: "webhook answered 503"}))
	st := res.Scaler.Status
	if st.DriverError != "webhook answered 503" {
		t.Errorf("driverError = %q, want the actuation's error", st.DriverError)
	}
	if c, ok := condition(st.Conditions, "AbleToScale"); !ok || c.Status || c.Reason != "FailedUpdateScale" || c.Message != "webhook answered 503" {
		t.Errorf("AbleToScale = %+v, want false FailedUpdateScale with the error", c)
	}
	if st.CurrentReplicas != 2 || st.LastScaleTime != nil {
		t.Errorf("a failed actuation changed currentReplicas to %d or lastScaleTime to %v", st.CurrentReplicas, st.LastScaleTime)
	}
	if a := st.LastDecision.Actuation; a == nil || a.Error != "webhook answered 503" || a.Result != nil || a.Revision != h.rev {
		t.Errorf("lastDecision.actuation = %+v, want the failure at %d", a, h.rev)
	}
	w, _ := h.m.Work("web")
	wantUp := []hpa.ScaleEvent{{At: earlier, Change: 1}}
	if !reflect.DeepEqual(w.State.ScaleUpEvents, wantUp) || !reflect.DeepEqual(w.State.ScaleDownEvents, c.State.ScaleDownEvents) {
		t.Errorf("State events after a failed actuation = up %+v down %+v, want up %+v (the event at %v taken back) down %+v",
			w.State.ScaleUpEvents, w.State.ScaleDownEvents, wantUp, decidedAt, c.State.ScaleDownEvents)
	}
	if !reflect.DeepEqual(w.State.Recommendations, c.State.Recommendations) {
		t.Errorf("a failed actuation changed the recommendations: %+v", w.State.Recommendations)
	}
	var ev ledger.ActuationEvent
	if len(evs) != 1 || json.Unmarshal(evs[0].Data, &ev) != nil || ev.DecisionRevision != decRev || ev.Error == "" {
		t.Errorf("events = %v, want one actuation event for decision %d with the error", evs, decRev)
	}

	// The failure stands in the conditions until an actuation succeeds.
	dec, _ = h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 3))
	if c, _ := condition(dec.Scaler.Status.Conditions, "AbleToScale"); c.Status || c.Reason != "FailedUpdateScale" {
		t.Errorf("AbleToScale after the next decision = %+v, want still false FailedUpdateScale", c)
	}
	if dec.Scaler.Status.DriverError == "" {
		t.Errorf("the next decision cleared driverError")
	}
	res, _ = h.must(ledger.Recorded, actuateCmd("web", "r1", 1, dec.Scaler.Status.LastDecision.Revision,
		ledger.Actuation{Replicas: 3, Result: &driver.Result{Previous: 2, Replicas: 3}}))
	if st := res.Scaler.Status; st.DriverError != "" || st.CurrentReplicas != 3 {
		t.Errorf("after a success: driverError %q, currentReplicas %d; want none, 3", st.DriverError, st.CurrentReplicas)
	}
	if c, _ := condition(res.Scaler.Status.Conditions, "AbleToScale"); !c.Status || c.Reason != "SucceededRescale" {
		t.Errorf("AbleToScale after a success = %+v, want true SucceededRescale", c)
	}
}

func TestActuateStaleAndInvalid(t *testing.T) {
	h := newMachine(t, 2)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	dec, _ := h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 4))
	first := dec.Scaler.Status.LastDecision.Revision
	h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 3))
	h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 5)) // drops the first (keep 2)

	before := h.snapshot()
	for name, c := range map[string]ledger.Command{
		"a revision with no decision":  actuateCmd("web", "r1", 1, 1, ledger.Actuation{Replicas: 4}),
		"a revision in the future":     actuateCmd("web", "r1", 1, 1000, ledger.Actuation{Replicas: 4}),
		"a decision no longer held":    actuateCmd("web", "r1", 1, first, ledger.Actuation{Replicas: 4}),
		"no decision revision at all":  actuateCmd("web", "r1", 1, 0, ledger.Actuation{Replicas: 4}),
		"a failure of a dropped one":   actuateCmd("web", "r1", 1, first, ledger.Actuation{Replicas: 4, Error: "x"}),
		"a success naming the put rev": actuateCmd("web", "r1", 1, 1, ledger.Actuation{Replicas: 4, Result: &driver.Result{Replicas: 4}}),
	} {
		if _, evs := h.must(ledger.Stale, c); len(evs) != 0 {
			t.Errorf("%s: stale actuate emitted %v", name, evs)
		}
	}
	last := h.m.Get("web").Status.LastDecision.Revision
	if _, evs := h.must(ledger.Invalid, ledger.Command{Op: ledger.OpActuate, Name: "web", Replica: "r1", Token: 1, DecisionRevision: last}); len(evs) != 0 {
		t.Errorf("invalid actuate emitted %v", evs)
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Errorf("refused actuations changed the state:\n%s\n%s", before, after)
	}
}

// TestLeadAbandonsTheDeposedLeadersScale: a new term settles the previous
// leader's scaling decision that has no recorded actuation, and takes its
// scale event back, so the rate policies do not count a scale that most
// likely never happened.
func TestLeadAbandonsTheDeposedLeadersScale(t *testing.T) {
	h := newMachine(t, 0)
	for _, n := range []string{"a-scales", "b-steady", "c-actuated"} {
		spec := webhookSpec("web", 10)
		h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: n, Spec: &spec})
	}
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 1})
	dec, _ := h.must(ledger.Recorded, decideCmd("a-scales", "r1", 1, 1, h.at, 2, 4))
	aRev, aAt := dec.Scaler.Status.LastDecision.Revision, dec.Scaler.Status.LastDecision.At
	h.must(ledger.Recorded, decideCmd("b-steady", "r1", 1, 1, h.at, 2, 2))
	dec, _ = h.must(ledger.Recorded, decideCmd("c-actuated", "r1", 1, 1, h.at, 2, 3))
	h.must(ledger.Recorded, actuateCmd("c-actuated", "r1", 1, dec.Scaler.Status.LastDecision.Revision,
		ledger.Actuation{Replicas: 3, Result: &driver.Result{Previous: 2, Replicas: 3}}))
	bBefore, cBefore := mustJSON(t, h.m.Get("b-steady")), mustJSON(t, h.m.Get("c-actuated"))

	// The same term leading again abandons nothing.
	if _, evs := h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 1}); len(evs) != 0 {
		t.Fatalf("a lead of the current term emitted %v", evs)
	}

	_, evs := h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 2})
	if len(evs) != 1 || evs[0].Type != ledger.EventActuation || evs[0].Key != "a-scales" {
		t.Fatalf("lead events = %v, want one actuation event for a-scales", evs)
	}
	var ev ledger.ActuationEvent
	if err := json.Unmarshal(evs[0].Data, &ev); err != nil || ev.DecisionRevision != aRev ||
		!strings.HasPrefix(ev.Error, "abandoned") || ev.Revision != h.rev || ev.Replicas != 4 {
		t.Errorf("abandon event = %s (%v), want decision %d abandoned at %d", evs[0].Data, err, aRev, h.rev)
	}
	a := h.m.Get("a-scales")
	if act := a.Status.LastDecision.Actuation; act == nil || !strings.HasPrefix(act.Error, "abandoned") {
		t.Errorf("a-scales lastDecision.actuation = %+v, want abandoned", act)
	}
	if ds, _ := h.m.Recent("a-scales", 1); ds[0].Actuation == nil || !strings.HasPrefix(ds[0].Actuation.Error, "abandoned") {
		t.Errorf("a-scales Recent = %+v, want the decision abandoned", ds)
	}
	if w, _ := h.m.Work("a-scales"); len(w.State.ScaleUpEvents) != 0 {
		t.Errorf("a-scales State keeps the abandoned scale event at %v: %+v", aAt, w.State)
	}
	if got := mustJSON(t, h.m.Get("b-steady")); got != bBefore {
		t.Errorf("b-steady (no scale) changed:\n%s\n%s", bBefore, got)
	}
	if got := mustJSON(t, h.m.Get("c-actuated")); got != cBefore {
		t.Errorf("c-actuated (already actuated) changed:\n%s\n%s", cBefore, got)
	}
	// The deposed leader's late answer is refused.
	h.must(ledger.Fenced, actuateCmd("a-scales", "r1", 1, aRev, ledger.Actuation{Replicas: 4, Result: &driver.Result{Previous: 2, Replicas: 4}}))
}

// TestQueriesReturnCopies: what the query methods return is read outside
// Apply (Log.Read ends before the handler encodes it, and the control
// loop decides from Work while the log applies), so a later Apply must
// not change it under the caller.
func TestQueriesReturnCopies(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	dec, _ := h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 4))
	decRev := dec.Scaler.Status.LastDecision.Revision

	got := h.m.Get("web")
	list, _ := h.m.List("", 0)
	work, _ := h.m.Work("web")
	recent, _ := h.m.Recent("web", 10)
	wantGet, wantList, wantWork, wantRecent := mustJSON(t, got), mustJSON(t, list), mustJSON(t, work), mustJSON(t, recent)

	h.must(ledger.Recorded, actuateCmd("web", "r1", 1, decRev, ledger.Actuation{Replicas: 4, Error: "boom"}))
	h.must(ledger.Recorded, decideCmd("web", "r1", 1, 1, h.at, 2, 2))

	for name, c := range map[string][2]string{
		"Get":    {mustJSON(t, got), wantGet},
		"List":   {mustJSON(t, list), wantList},
		"Work":   {mustJSON(t, work), wantWork},
		"Recent": {mustJSON(t, recent), wantRecent},
	} {
		if c[0] != c[1] {
			t.Errorf("%s's answer changed under the caller after Apply:\n got %s\nwant %s", name, c[0], c[1])
		}
	}
}

func TestListPages(t *testing.T) {
	h := newMachine(t, 0)
	for _, n := range []string{"c", "a", "d", "b"} {
		spec := webhookSpec("web", 10)
		h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: n, Spec: &spec})
	}
	tests := []struct {
		after string
		limit int
		want  []string
		more  bool
	}{
		{"", 0, []string{"a", "b", "c", "d"}, false},
		{"", 2, []string{"a", "b"}, true},
		{"b", 2, []string{"c", "d"}, false},
		{"b", 1, []string{"c"}, true},
		{"d", 5, nil, false},
	}
	for _, tt := range tests {
		items, more := h.m.List(tt.after, tt.limit)
		var got []string
		for _, it := range items {
			got = append(got, it.Name)
			if it.Spec.Driver.Secret != "" {
				t.Errorf("List shows %s's secret", it.Name)
			}
		}
		if !reflect.DeepEqual(got, tt.want) || more != tt.more {
			t.Errorf("List(%q, %d) = %v, %v, want %v, %v", tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
	if got := h.m.Names(); !reflect.DeepEqual(got, []string{"a", "b", "c", "d"}) {
		t.Errorf("Names = %v, want a b c d", got)
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 2})
	before := h.snapshot()
	for _, s := range []string{``, `{`, `[]`, `{"fence":"x"}`, `{"scalers":{"a":7}}`, `{"scalers":{"a":null}}`} {
		if err := h.m.Restore(strings.NewReader(s)); err == nil {
			t.Errorf("Restore(%q) = nil, want an error", s)
		}
		// A failed Restore keeps the state it had (and every query works).
		h.m.List("", 0)
		if after := h.snapshot(); !bytes.Equal(before, after) {
			t.Errorf("a failed Restore(%q) changed the state to %s", s, after)
		}
	}
	// An empty document is an empty state.
	if err := h.m.Restore(strings.NewReader(`{}`)); err != nil || len(h.m.Names()) != 0 || h.m.CurrentFence() != (ledger.Fence{}) {
		t.Errorf("Restore({}) = %v, names %v, fence %+v; want an empty state", err, h.m.Names(), h.m.CurrentFence())
	}
}

// TestLogTimeZoneDoesNotMatter: the log's clock may reach replicas in
// different locations; what Apply records must not depend on it.
func TestLogTimeZoneDoesNotMatter(t *testing.T) {
	spec := webhookSpec("web", 10)
	cmds := []ledger.Command{
		{Op: ledger.OpPut, Name: "web", Spec: &spec},
		{Op: ledger.OpLead, Replica: "r1", Token: 1},
		withSpecRevision(decideCmd("web", "r1", 1, 1, t0, 2, 4), 1),
		actuateCmd("web", "r1", 1, 3, ledger.Actuation{Replicas: 4, Result: &driver.Result{Previous: 2, Replicas: 4}}),
	}
	snap := func(loc *time.Location) []byte {
		m := ledger.New(0)
		for i, c := range cmds {
			b, _ := json.Marshal(c)
			m.Apply(qlog.Entry{Revision: int64(i + 1), Time: t0.Add(time.Duration(i) * time.Second).In(loc), Proposer: "r1", Cmd: b})
		}
		return snapshotOf(t, m)
	}
	utc, east := snap(time.UTC), snap(time.FixedZone("east", 5*3600))
	if !bytes.Equal(utc, east) {
		t.Errorf("snapshots differ by the log time's location:\n%s\n%s", utc, east)
	}
}

// TestAbandonInNameOrder: a new term settles many scalers at once; the
// events must come in one order on every replica, not map order.
func TestAbandonInNameOrder(t *testing.T) {
	h := newMachine(t, 0)
	var names []string
	for i := range 12 {
		n := fmt.Sprintf("s%02d", (i*7)%12) // put out of order
		names = append(names, n)
		spec := webhookSpec("web", 10)
		h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: n, Spec: &spec})
		h.must(ledger.Recorded, decideCmd(n, "r1", 1, 1, h.at, 2, 3))
	}
	_, evs := h.must(ledger.Led, ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 2})
	var got []string
	for _, ev := range evs {
		got = append(got, ev.Key)
	}
	slices.Sort(names)
	if !reflect.DeepEqual(got, names) {
		t.Errorf("abandon events for %v, want every scaler in name order %v", got, names)
	}
}

// TestDecisionFromBeforeARecreateIsStale: a leader reads Work for
// generation 1 of a scaler, and while it measures, the scaler is deleted
// and put again, new spec, generation 1 again. The decision was made
// under a spec that is no longer current (and its State belongs to the
// old scaler), so it must be refused as stale; the generation alone
// cannot tell the two scalers apart.
func TestDecisionFromBeforeARecreateIsStale(t *testing.T) {
	h := newMachine(t, 0)
	old := webhookSpec("web", 10)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &old})
	w, _ := h.m.Work("web")
	inFlight := decideCmd("web", "r1", 1, w.Generation, h.at, 2, 6)
	inFlight.SpecRevision = w.SpecRevision

	h.must(ledger.Deleted, ledger.Command{Op: ledger.OpDelete, Name: "web"})
	other := webhookSpec("checkout", 3)
	h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &other})
	h.must(ledger.Stale, inFlight)
}

// TestPreconditions: If-None-Match and If-Match are checked at apply
// time; a failed one changes nothing and names the scaler as it is.
func TestPreconditions(t *testing.T) {
	h := newMachine(t, 0)
	spec := webhookSpec("web", 10)
	res, _ := h.must(ledger.Created, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec, IfNoneMatch: true})
	mod := res.Scaler.ModRevision
	stale := mod - 1
	missing := int64(7)
	before := h.snapshot()
	for name, c := range map[string]ledger.Command{
		"create-only on an existing scaler": {Op: ledger.OpPut, Name: "web", Spec: &spec, IfNoneMatch: true},
		"put with a stale revision":         {Op: ledger.OpPut, Name: "web", Spec: &spec, IfMatch: &stale},
		"delete with a stale revision":      {Op: ledger.OpDelete, Name: "web", IfMatch: &stale},
		"put matching a missing scaler":     {Op: ledger.OpPut, Name: "nope", Spec: &spec, IfMatch: &missing},
	} {
		res, evs := h.apply(c)
		if res.Status != ledger.PreconditionFailed || len(evs) != 0 {
			t.Errorf("%s: %s with %d events, want preconditionFailed and none", name, res.Status, len(evs))
		}
		if c.Name == "web" && (res.Scaler == nil || res.Scaler.ModRevision != mod) {
			t.Errorf("%s: result scaler %+v, want the current one", name, res.Scaler)
		}
	}
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a failed precondition changed the state")
	}
	h.must(ledger.Updated, ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec, IfMatch: &mod})
}
