package ledger_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// t0 is log time zero of these tests.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const secret = "hook-secret-do-not-show"

func ptr[T any](v T) *T { return &v }

// webhookSpec is a valid spec as a client writes it: one averageValue
// metric, a webhook driver with a secret, every default omitted.
func webhookSpec(service string, maxR int) ledger.Spec {
	return ledger.Spec{
		Service: service,
		Spec: hpa.Spec{MaxReplicas: maxR, Metrics: []hpa.Metric{
			{Name: "rps", Target: hpa.Target{Type: hpa.AverageValue, Value: 100}},
		}},
		Driver: driver.Spec{Type: driver.TypeWebhook, WebhookSpec: driver.WebhookSpec{URL: "https://hooks.example/scale", Secret: secret}},
	}
}

// machine applies commands to a Machine at consecutive revisions, one
// second of log time apart, as a log would hand them over.
type machine struct {
	t   testing.TB
	m   *ledger.Machine
	rev int64
	at  time.Time
	// entries is every entry applied so far.
	entries []qlog.Entry
}

func newMachine(t testing.TB, keep int) *machine {
	return &machine{t: t, m: ledger.New(keep), at: t0}
}

// entry makes the next entry carrying cmd.
func (h *machine) entry(cmd []byte) qlog.Entry {
	h.rev++
	h.at = h.at.Add(time.Second)
	return qlog.Entry{Revision: h.rev, Time: h.at, Proposer: "r1", Cmd: cmd}
}

// raw applies undecoded bytes and returns the raw result and events.
func (h *machine) raw(cmd []byte) ([]byte, []qlog.Event) {
	e := h.entry(cmd)
	h.entries = append(h.entries, e)
	return h.m.Apply(e)
}

// apply applies c and decodes its result.
func (h *machine) apply(c ledger.Command) (ledger.Result, []qlog.Event) {
	h.t.Helper()
	if c.Op == ledger.OpDecide && c.SpecRevision == 0 {
		// A leader sends back the spec revision Work gave it; commands
		// built without one decide on the spec as it is now.
		if w, ok := h.m.Work(c.Name); ok {
			c.SpecRevision = w.SpecRevision
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	out, evs := h.raw(b)
	var res ledger.Result
	if err := json.Unmarshal(out, &res); err != nil {
		h.t.Fatalf("Apply(%s) = %s, not a Result: %v", b, out, err)
	}
	return res, evs
}

// must applies c and fails the test unless it answers want.
func (h *machine) must(want string, c ledger.Command) (ledger.Result, []qlog.Event) {
	h.t.Helper()
	res, evs := h.apply(c)
	if res.Status != want {
		h.t.Fatalf("Apply(%s %q) status = %q (%s), want %q", c.Op, c.Name, res.Status, res.Detail, want)
	}
	return res, evs
}

func (h *machine) snapshot() []byte {
	h.t.Helper()
	return snapshotOf(h.t, h.m)
}

func snapshotOf(t testing.TB, m *ledger.Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return b.Bytes()
}

func restored(t testing.TB, snap []byte, keep int) *ledger.Machine {
	t.Helper()
	m := ledger.New(keep)
	if err := m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return m
}

// decideCmd is a leader's decide for a decision taken at at, from cur to
// desired replicas, and the State Decide would have left: the scale event
// at at when the decision scales.
func decideCmd(name, replica string, token, gen int64, at time.Time, cur, desired int) ledger.Command {
	st := hpa.State{Since: t0, Recommendations: []hpa.Recommendation{{At: at, Replicas: desired}}}
	switch {
	case desired > cur:
		st.ScaleUpEvents = []hpa.ScaleEvent{{At: at, Change: desired - cur}}
	case desired < cur:
		st.ScaleDownEvents = []hpa.ScaleEvent{{At: at, Change: cur - desired}}
	}
	return ledger.Command{Op: ledger.OpDecide, Name: name, Replica: replica, Token: token, Generation: gen,
		Decision: &ledger.Decision{Observed: map[string]float64{"rps": float64(desired) * 100}, Decision: hpa.Decision{
			At: at, CurrentReplicas: cur, ReadyReplicas: cur, DesiredReplicas: desired, Reason: "test",
			Conditions: []hpa.Condition{
				{Type: "AbleToScale", Status: true, Reason: "ReadyForNewScale", Message: "ok"},
				{Type: "ScalingActive", Status: true, Reason: "ValidMetricFound", Message: "ok"},
			},
		}},
		State: &st}
}

func actuateCmd(name, replica string, token, decisionRev int64, act ledger.Actuation) ledger.Command {
	return ledger.Command{Op: ledger.OpActuate, Name: name, Replica: replica, Token: token, DecisionRevision: decisionRev, Actuation: &act}
}

func condition(cs []hpa.Condition, typ string) (hpa.Condition, bool) {
	for _, c := range cs {
		if c.Type == typ {
			return c, true
		}
	}
	return hpa.Condition{}, false
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// withSpecRevision sets the spec revision a decide names.
func withSpecRevision(c ledger.Command, rev int64) ledger.Command {
	c.SpecRevision = rev
	return c
}
