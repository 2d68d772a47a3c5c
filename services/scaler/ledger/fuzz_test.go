package ledger_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// fuzzHistory is the state every fuzzed command meets: two scalers, a
// leader with token 5, a recorded scale of web with no actuation yet
// (at revision 4) and an actuated one of api.
func fuzzHistory(t testing.TB) *machine {
	h := newMachine(t, 3)
	web, api := webhookSpec("web", 10), webhookSpec("api", 4)
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &web})
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "api", Spec: &api})
	h.apply(ledger.Command{Op: ledger.OpLead, Replica: "r1", Token: 5})
	h.apply(decideCmd("web", "r1", 5, 1, h.at, 2, 4))
	h.apply(decideCmd("api", "r1", 5, 1, h.at, 3, 1))
	h.apply(actuateCmd("api", "r1", 5, 5, ledger.Actuation{Replicas: 1, Result: &driver.Result{Previous: 3, Replicas: 1}}))
	// job is rolling out v2 (rollout 8) with a start intended at 9.
	job1, job2 := processSpec(t, "v1"), processSpec(t, "v2")
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "job", Spec: &job1})
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "job", Spec: &job2})
	w, _ := h.m.Work("job")
	h.apply(ledger.Command{Op: ledger.OpRolloutIntend, Name: "job", Replica: "r1", Token: 5, Rollout: &ledger.RolloutCmd{ID: w.Rollout.ID, Kind: ledger.ActionStart, Version: w.Rollout.To, Count: 2}})
	// can is a canary of v2 (rollout 11) with weights in force.
	can1, can2 := canarySpec(t, "v1"), canarySpec(t, "v2")
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "can", Spec: &can1})
	h.apply(ledger.Command{Op: ledger.OpPut, Name: "can", Spec: &can2})
	w, _ = h.m.Work("can")
	h.apply(ledger.Command{Op: ledger.OpRolloutCanary, Name: "can", Replica: "r1", Token: 5, Rollout: &ledger.RolloutCmd{ID: w.Rollout.ID, Weights: map[string]int{"v1": 80, "v2": 20}}})
	return h
}

// FuzzApply applies an arbitrary command after a fixed history: Apply
// must not panic on anything the log carries, must answer a decodable
// result, must answer the same on a replica restored from a snapshot, and
// the state it leaves must snapshot, restore and snapshot again to the
// same bytes, with queries that do not panic.
func FuzzApply(f *testing.F) {
	seed := func(c ledger.Command) { f.Add([]byte(mustJSON(f, c)), uint16(1)) }
	spec := webhookSpec("web", 12)
	seed(ledger.Command{Op: ledger.OpPut, Name: "web", Spec: &spec})
	seed(ledger.Command{Op: ledger.OpPut, Name: "new", Spec: &spec})
	seed(ledger.Command{Op: ledger.OpDelete, Name: "api"})
	seed(ledger.Command{Op: ledger.OpLead, Replica: "r2", Token: 6})
	seed(ledger.Command{Op: ledger.OpLead, Replica: "r0", Token: 4})
	seed(decideCmd("web", "r1", 5, 1, t0.Add(time.Minute), 4, 2))
	seed(decideCmd("api", "r3", 9, 1, t0.Add(time.Minute), 1, 1))
	seed(decideCmd("web", "r1", 5, 2, t0, 4, 2))
	seed(actuateCmd("web", "r1", 5, 4, ledger.Actuation{Replicas: 4, Error: "refused"}))
	seed(actuateCmd("web", "r1", 5, 4, ledger.Actuation{Replicas: 4, Result: &driver.Result{Previous: driver.Unknown, Replicas: 4}}))
	seed(actuateCmd("web", "r7", 8, 5, ledger.Actuation{Replicas: 1}))
	for _, s := range []string{
		`{"op":"decide","name":"web","replica":"r1","token":5,"generation":1,"decision":{},"state":{}}`,
		`{"op":"decide","name":"web","replica":"r1","token":5,"generation":1,"decision":{"at":"9999-12-31T23:59:59-23:59","conditions":null},"state":{"scaleUpEvents":[{"at":"0000-01-01T00:00:00+23:00"}]}}`,
		`{"op":"actuate","name":"web","replica":"r1","token":5,"decisionRevision":4,"actuation":{"result":null}}`,
		`{"op":"put","name":"","spec":{}}`, `{"op":"put","name":"web","spec":null}`,
		`{"op":"lead","replica":"r1","token":9223372036854775807}`,
		`{"op":"rolloutIntend","name":"job","replica":"r1","token":5,"rollout":{"id":8,"kind":"stop","ids":["job-1"]}}`,
		`{"op":"rolloutIntend","name":"job","replica":"r1","token":5,"rollout":{"id":8,"kind":"start","count":1000000}}`,
		`{"op":"rolloutDone","name":"job","replica":"r1","token":5,"rollout":{"id":8,"actionRevision":9,"ids":["x"],"error":"e"}}`,
		`{"op":"rolloutReport","name":"job","replica":"r1","token":5,"rollout":{"id":8,"phase":"Failed","versions":[{"hash":"","running":-1}]}}`,
		`{"op":"rolloutReport","name":"job","replica":"r1","token":5,"rollout":{"id":8,"phase":"Succeeded"}}`,
		`{"op":"rolloutReport","name":"job","replica":"r1","token":5,"rollout":null}`,
		`{"op":"rolloutCanary","name":"can","replica":"r1","token":5,"rollout":{"id":11,"step":1,"analysis":{"verdict":"pass"}}}`,
		`{"op":"rolloutCanary","name":"can","replica":"r1","token":5,"rollout":{"id":11,"analysis":{"verdict":"fail","failed":["maxErrorRate"]},"budget":{"requests":9,"failures":1}}}`,
		`{"op":"rolloutCanary","name":"can","replica":"r1","token":5,"rollout":{"id":11,"step":-3,"weights":{"v2":-1}}}`,
		`{"op":"rolloutCanary","name":"can","replica":"r1","token":5,"rollout":{"id":11,"failure":"no progress"}}`,
		`{"op":"rolloutCanary","name":"job","replica":"r1","token":5,"rollout":{"id":8,"weights":{"v2":1}}}`,
		`{"op":"rolloutReport","name":"can","replica":"r1","token":5,"rollout":{"id":11,"phase":"Failed"}}`,
		`{"op":"rolloutPause","name":"job"}`, `{"op":"rolloutAbort","name":"job","by":"t"}`, `{"op":"rolloutPromote","name":"web"}`,
		`{"op":"nope"}`, `{}`, `null`, `[]`, `"x"`, `{"op":"put","spec":{"maxReplicas":1e400}}`, "\x00",
	} {
		f.Add([]byte(s), uint16(0))
		f.Add([]byte(s), uint16(3600))
	}
	f.Fuzz(func(t *testing.T, cmd []byte, secs uint16) {
		h := fuzzHistory(t)
		other := restored(t, h.snapshot(), 3)
		e := qlog.Entry{Revision: h.rev + 1, Time: h.at.Add(time.Duration(secs) * time.Second), Proposer: "r9", Cmd: cmd}
		res, evs := h.m.Apply(e)
		res2, evs2 := other.Apply(e)
		var r ledger.Result
		if err := json.Unmarshal(res, &r); err != nil || r.Status == "" {
			t.Fatalf("Apply(%q) = %s, not a result: %v", cmd, res, err)
		}
		if !bytes.Equal(res, res2) || !reflect.DeepEqual(evs, evs2) {
			t.Fatalf("restored replica answered %s %v, the other %s %v", res2, evs2, res, evs)
		}
		for _, ev := range evs {
			if ev.Type == "" || ev.Data != nil && !json.Valid(ev.Data) {
				t.Fatalf("event %+v: no type or data that is not JSON", ev)
			}
		}
		snap := h.snapshot()
		if s2 := snapshotOf(t, other); !bytes.Equal(snap, s2) {
			t.Fatalf("snapshots differ after %q:\n%s\n%s", cmd, snap, s2)
		}
		again := restored(t, snap, 3)
		if s3 := snapshotOf(t, again); !bytes.Equal(snap, s3) {
			t.Fatalf("Snapshot, Restore, Snapshot differs after %q:\n%s\n%s", cmd, snap, s3)
		}
		for _, m := range []*ledger.Machine{h.m, again} {
			m.List("", 0)
			m.CurrentFence()
			for _, n := range m.Names() {
				m.Get(n)
				m.Work(n)
				m.Recent(n, 10)
				m.CurrentRollout(n)
				m.Rollouts(n, 30)
			}
		}
	})
}
