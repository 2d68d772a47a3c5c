package scalers_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/scaler/autoscale"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/scalers"
)

// t0 is log time zero of these tests.
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const secret = "hook-secret-do-not-show"

func ptr[T any](v T) *T { return &v }

// webhookSpec is a valid spec as a client writes it: one averageValue
// metric, a webhook driver with a secret, every default omitted.
func webhookSpec(service string, maxR int) scalers.Spec {
	return scalers.Spec{
		Service: service,
		Spec: autoscale.Spec{MaxReplicas: maxR, Metrics: []autoscale.Metric{
			{Name: "rps", Target: autoscale.Target{Type: autoscale.AverageValue, Value: 100}},
		}},
		Driver: driver.Spec{Type: driver.TypeWebhook, WebhookSpec: driver.WebhookSpec{URL: "https://hooks.example/scale", Secret: secret}},
	}
}

// machine applies commands to a Machine at consecutive revisions, one
// second of log time apart, as a log would hand them over.
type machine struct {
	t   testing.TB
	m   *scalers.Machine
	rev int64
	at  time.Time
	// entries is every entry applied so far.
	entries []qlog.Entry
}

func newMachine(t testing.TB, keep int) *machine {
	return &machine{t: t, m: scalers.New(keep), at: t0}
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
func (h *machine) apply(c scalers.Command) (scalers.Result, []qlog.Event) {
	h.t.Helper()
	if c.Op == scalers.OpDecide && c.SpecRevision == 0 {
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
	var res scalers.Result
	if err := json.Unmarshal(out, &res); err != nil {
		h.t.Fatalf("Apply(%s) = %s, not a Result: %v", b, out, err)
	}
	return res, evs
}

// must applies c and fails the test unless it answers want.
func (h *machine) must(want string, c scalers.Command) (scalers.Result, []qlog.Event) {
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

func snapshotOf(t testing.TB, m *scalers.Machine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.Snapshot(&b); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	return b.Bytes()
}

func restored(t testing.TB, snap []byte, keep int) *scalers.Machine {
	t.Helper()
	m := scalers.New(keep)
	if err := m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return m
}

// decideCmd is a leader's decide for a decision taken at at, from cur to
// desired replicas, and the State Decide would have left: the scale event
// at at when the decision scales.
func decideCmd(name, replica string, token, gen int64, at time.Time, cur, desired int) scalers.Command {
	st := autoscale.State{Since: t0, Recommendations: []autoscale.Recommendation{{At: at, Replicas: desired}}}
	switch {
	case desired > cur:
		st.ScaleUpEvents = []autoscale.ScaleEvent{{At: at, Change: desired - cur}}
	case desired < cur:
		st.ScaleDownEvents = []autoscale.ScaleEvent{{At: at, Change: cur - desired}}
	}
	return scalers.Command{Op: scalers.OpDecide, Name: name, Replica: replica, Token: token, Generation: gen,
		Decision: &scalers.Decision{Observed: map[string]float64{"rps": float64(desired) * 100}, Decision: autoscale.Decision{
			At: at, CurrentReplicas: cur, ReadyReplicas: cur, DesiredReplicas: desired, Reason: "test",
			Conditions: []autoscale.Condition{
				{Type: "AbleToScale", Status: true, Reason: "ReadyForNewScale", Message: "ok"},
				{Type: "ScalingActive", Status: true, Reason: "ValidMetricFound", Message: "ok"},
			},
		}},
		State: &st}
}

func actuateCmd(name, replica string, token, decisionRev int64, act scalers.Actuation) scalers.Command {
	return scalers.Command{Op: scalers.OpActuate, Name: name, Replica: replica, Token: token, DecisionRevision: decisionRev, Actuation: &act}
}

func condition(cs []autoscale.Condition, typ string) (autoscale.Condition, bool) {
	for _, c := range cs {
		if c.Type == typ {
			return c, true
		}
	}
	return autoscale.Condition{}, false
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
func withSpecRevision(c scalers.Command, rev int64) scalers.Command {
	c.SpecRevision = rev
	return c
}
