package scaler_test

import (
	"encoding/json"
	"strings"
	"testing"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/services/scaler/ledger"
)

// stuckSpec is a webhook-driven scaler whose receiver does not answer:
// its rollouts start and stay in progress, whatever the leader does.
func stuckSpec(version string) string {
	return `{"service":"web","maxReplicas":10,"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
		"driver":{"type":"webhook","url":"http://127.0.0.1:9/scale","secret":"s","maxAttempts":1,"template":{"image":"` + version + `"},"version":"` + version + `"},
		"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"minReadySeconds":2}}`
}

// TestRolloutAPI: a PUT that changes the template starts a rollout (and one
// that does not, none); GET rollout shows it, pause, resume, promote and
// abort change it (409 where they do not apply), a second change
// supersedes it, the history lists both, the watch carries every change,
// and a Canary with the webhook driver is refused (it needs the process
// driver, which runs two versions side by side).
func TestRolloutAPI(t *testing.T) {
	n := startNode(t, startPlane(t), "scaler-0", nodeOptions{})
	base := n.url + "/v1/scalers/web"
	expectProblem(t, call(t, "GET", base+"/rollout", ""), 404)
	expectProblem(t, call(t, "GET", base+"/rollouts", ""), 404)
	expect(t, call(t, "PUT", base, stuckSpec("web:1")), 201)
	expectProblem(t, call(t, "GET", base+"/rollout", ""), 404)
	if got := decode[struct{ Items []ledger.Rollout }](t, expect(t, call(t, "GET", base+"/rollouts", ""), 200)); len(got.Items) != 0 {
		t.Fatalf("rollouts before any change = %+v", got.Items)
	}
	expectProblem(t, call(t, "POST", base+"/rollout/pause", ""), 409)
	evs := openWatch(t, base+"/watch")

	sc := decode[ledger.Scaler](t, expect(t, call(t, "PUT", base, stuckSpec("web:2")), 200))
	ro := decode[ledger.Rollout](t, expect(t, call(t, "GET", base+"/rollout", ""), 200))
	if ro.ID != sc.ModRevision || ro.Phase != ledger.PhaseProgressing || ro.From.Version != "web:1" || ro.To.Version != "web:2" || ro.Strategy != "RollingUpdate" {
		t.Fatalf("rollout = %+v", ro)
	}
	until(t, evs, "rollout", func(ev gosse.Event) bool { return strings.Contains(ev.Data, `"change":"started"`) })

	ro = decode[ledger.Rollout](t, expect(t, call(t, "POST", base+"/rollout/pause", ""), 200))
	if ro.Phase != ledger.PhasePaused {
		t.Fatalf("after pause: %+v", ro)
	}
	expectProblem(t, call(t, "POST", base+"/rollout/pause", ""), 409)
	expectProblem(t, call(t, "POST", base+"/rollout/resume", "x=1", "Content-Type", "application/x-www-form-urlencoded"), 415)
	ro = decode[ledger.Rollout](t, expect(t, call(t, "POST", base+"/rollout/resume", "{}"), 200))
	if ro.Phase != ledger.PhaseProgressing {
		t.Fatalf("after resume: %+v", ro)
	}
	until(t, evs, "rollout", func(ev gosse.Event) bool { return strings.Contains(ev.Data, `"change":"rolloutResume"`) })
	if ro = decode[ledger.Rollout](t, expect(t, call(t, "POST", base+"/rollout/promote", ""), 200)); !ro.Promoted {
		t.Fatalf("after promote: %+v", ro)
	}
	if ro = decode[ledger.Rollout](t, expect(t, call(t, "POST", base+"/rollout/abort", ""), 200)); !ro.Aborted || ro.Phase != ledger.PhaseProgressing {
		t.Fatalf("after abort: %+v", ro)
	}
	expectProblem(t, call(t, "POST", base+"/rollout/abort", ""), 409)
	expectProblem(t, call(t, "POST", base+"/rollout/promote", ""), 409)
	expectProblem(t, call(t, "POST", n.url+"/v1/scalers/nope/rollout/abort", ""), 404)

	expect(t, call(t, "PUT", base, stuckSpec("web:3")), 200)
	hist := decode[struct{ Items []ledger.Rollout }](t, expect(t, call(t, "GET", base+"/rollouts", ""), 200)).Items
	if len(hist) != 2 || hist[0].To.Version != "web:3" || hist[0].From.Version != "web:2" || hist[1].Phase != ledger.PhaseSuperseded || len(hist[1].Controls) != 4 {
		b, _ := json.Marshal(hist)
		t.Fatalf("rollouts = %s", b)
	}
	if one := decode[struct{ Items []ledger.Rollout }](t, expect(t, call(t, "GET", base+"/rollouts?limit=1", ""), 200)).Items; len(one) != 1 {
		t.Fatalf("limit=1 gave %d", len(one))
	}

	canary := strings.Replace(stuckSpec("web:4"), `"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"minReadySeconds":2}`,
		`"strategy":{"type":"Canary","canary":{"steps":[{"setWeight":10},{"pause":"2m"},{"setWeight":50}],"analysis":{"window":"1m","maxErrorRate":0.01}}}`, 1)
	p := expectProblem(t, call(t, "PUT", base, canary), 400)
	if !strings.Contains(p.Detail, "Canary needs the process driver") {
		t.Fatalf("canary refused with %+v", p)
	}
	if got := decode[struct{ Items []ledger.Rollout }](t, expect(t, call(t, "GET", base+"/rollouts", ""), 200)).Items; got[0].To.Version != "web:3" {
		t.Fatalf("a refused canary changed the rollouts: %+v", got[0])
	}
}
