package scaler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// pushSignals posts, every 200 ms until ctx ends, what a gateway would
// push of each version of svc (metrics.UpstreamName samples): 10 more
// requests each time, all answered within 10 ms, failing the share
// failing[version] of them. It is the scaler's own API the gateway
// calls, so the canary's analysis judges these.
func pushSignals(ctx context.Context, t testing.TB, url, svc string, failing map[string]float64) {
	pushChangingSignals(ctx, t, url, svc, func() map[string]float64 { return failing })
}

// pushChangingSignals is pushSignals with the failing shares read again
// before every push.
func pushChangingSignals(ctx context.Context, t testing.TB, url, svc string, rates func() map[string]float64) {
	since := time.Now()
	counts, failures := map[string]float64{}, map[string]float64{}
	for {
		now := time.Now()
		var samples []metrics.Sample
		for v, rate := range rates() {
			counts[v] += 10
			failures[v] += 10 * rate
			samples = append(samples, metrics.Sample{Service: svc, Instance: "gateway-test", Name: metrics.UpstreamName, Value: counts[v], Timestamp: now,
				Upstream: &metrics.Upstream{Version: v, Since: since, Failures: math.Floor(failures[v]),
					Latency: []metrics.Bucket{{Le: 0.01, Count: counts[v]}}}})
		}
		b, _ := json.Marshal(metrics.Push{Samples: samples})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/metrics", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			if resp.StatusCode != http.StatusAccepted {
				t.Errorf("POST /v1/metrics = %s", resp.Status)
			}
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// routeDoc is the status of a GET of svc's rollout route document from
// the plane's config service.
func routeDoc(t testing.TB, p *plane, svc string) int {
	t.Helper()
	resp, err := http.Get(p.config + "/v1/kv/" + url.PathEscape("steward/gateway/routes/rollout-"+svc))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCanaryFailover deposes the scaler's leader in the middle of a
// canary, paused between recording its second action and carrying it
// out and cut from the election service. The next leader goes on from
// the log: the weights it writes are the same (the route document under
// its own fence), it carries the paused intent out, the analysis passes
// on the signals the test pushes as a gateway would, and the canary is
// promoted. Every instance is started once and stopped once, every
// replica holds the same rollout, and the route document is gone at the
// end.
func TestCanaryFailover(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	nodes, acts := startVoters(t, p)
	any := nodes["scaler-0"]
	const replicas, svc = 3, "demo-canary"
	canary := `{"type":"Canary","canary":{"steps":[{"setWeight":34},{"pause":"2s"},{"setWeight":67}],"analysis":{"window":"2s","maxErrorRate":0.01,"minRequests":10}}}`
	expect(t, call(t, "PUT", any.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, canary)), 201)
	webtest.WaitFor(t, 60*time.Second, "3 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	old := leaderOf(t, nodes, any)
	paused, release := old.pauseAt(2)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go pushSignals(ctx, t, any.url, svc, map[string]float64{"v1": 0, "v2": 0})
	expect(t, call(t, "PUT", any.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, canary)), 200)
	_, ro := takeOver(t, any, old, paused, release, stop)
	if ro.Phase != ledger.PhaseSucceeded || ro.Canary == nil || ro.Canary.Step != 3 || ro.Started != replicas || ro.Stopped != replicas {
		b, _ := json.Marshal(ro)
		t.Fatalf("rollout = %s, want Succeeded after 3 steps, %d started and %d stopped", b, replicas, replicas)
	}
	passed := 0
	for _, a := range ro.Canary.Analyses {
		if a.Verdict == "pass" {
			passed++
		}
	}
	if passed == 0 {
		t.Errorf("no analysis passed: %+v", ro.Canary.Analyses)
	}
	for _, n := range nodes { // every replica holds the same rollout
		if got := decode[ledger.Rollout](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollout", ""), 200)); got.Phase != ro.Phase || got.Started != ro.Started || got.Stopped != ro.Stopped || got.Canary.Step != ro.Canary.Step {
			t.Errorf("%s has rollout %+v, want %+v", n.id, got, ro)
		}
	}
	acts.once(t)
	acts.mu.Lock()
	if len(acts.started) != 2*replicas {
		t.Errorf("%d instances started in all, want %d v1 and %d v2", len(acts.started), replicas, replicas)
	}
	acts.mu.Unlock()
	if got := passingVersions(t, p.registry, svc); got["v2"] != replicas || got["v1"] != 0 {
		t.Errorf("passing at the end: %v, want %d v2", got, replicas)
	}
	if status := routeDoc(t, p, svc); status != http.StatusNotFound {
		t.Errorf("the canary's route document: %d after the promotion, want 404", status)
	}
}

// TestCanaryRollsBackOnFailedAnalysis: a canary whose new version fails
// 5% of its requests (as the pushed signals say) fails its first
// analysis and rolls back by itself: weights to 0 for it, its instance
// stopped, the route document removed, the rollout Failed with the
// measurements and the budget spent.
func TestCanaryRollsBackOnFailedAnalysis(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	const replicas, svc = 2, "demo-bad-canary"
	canary := `{"type":"Canary","canary":{"steps":[{"setWeight":50},{"pause":"1m"}],"analysis":{"window":"2s","maxErrorRate":0.01,"minRequests":10}}}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, canary)), 201)
	webtest.WaitFor(t, 60*time.Second, "2 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go pushSignals(ctx, t, n.url, svc, map[string]float64{"v1": 0, "v2": 0.05})
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, canary)), 200)
	ro := waitRollout(t, n.url, "web", 2*time.Minute)
	stop()
	b, _ := json.Marshal(ro)
	if ro.Phase != ledger.PhaseFailed || ro.Canary == nil || len(ro.Canary.Analyses) == 0 || ro.Failure == "" {
		t.Fatalf("rollout = %s, want Failed with its analyses", b)
	}
	last := ro.Canary.Analyses[len(ro.Canary.Analyses)-1]
	if last.Verdict != "fail" || fmt.Sprint(last.Failed) != "[maxErrorRate]" || last.Canary.ErrorRate < 0.04 {
		t.Errorf("last analysis = %+v, want a fail on maxErrorRate near 5%%", last)
	}
	if bud := ro.Canary.Budget; bud == nil || bud.Requests == 0 || bud.Failures == 0 {
		t.Errorf("budget = %+v, want what reached v2", bud)
	}
	if ro.Canary.Weights["v2"] != 0 || ro.Canary.Weights["v1"] == 0 {
		t.Errorf("weights last in force = %v, want v2 at 0", ro.Canary.Weights)
	}
	if got := passingVersions(t, p.registry, svc); got["v1"] != replicas || got["v2"] != 0 {
		t.Errorf("passing at the end: %v, want %d v1", got, replicas)
	}
	if status := routeDoc(t, p, svc); status != http.StatusNotFound {
		t.Errorf("the canary's route document: %d after the rollback, want 404", status)
	}
	t.Logf("%s: %s; budget %+v", ro.Phase, ro.Message, *ro.Canary.Budget)
}

// canaryAtSplit runs scaler web of svc at v1 on one node, then a canary
// of v2 (50%, then a pause of an hour), and waits for its split to be in
// force: in the rollout and as the route document.
func canaryAtSplit(t *testing.T, svc string, replicas int) (app string, p *plane, n *node) {
	t.Helper()
	app = buildDemoApp(t)
	p = startPlane(t)
	n = startNode(t, p, "scaler-0", nodeOptions{})
	canary := `{"type":"Canary","canary":{"steps":[{"setWeight":50},{"pause":"1h"}]}}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, canary)), 201)
	webtest.WaitFor(t, 60*time.Second, "the v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, canary)), 200)
	webtest.WaitFor(t, 60*time.Second, "the canary's split in force", func() bool {
		ro := decode[ledger.Rollout](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollout", ""), 200))
		return ro.Canary != nil && ro.Canary.Weights["v2"] > 0 && routeDoc(t, p, svc) == http.StatusOK
	})
	return app, p, n
}

// TestCanarySupersededByRollingUpdate: a canary whose split is in force,
// superseded by a rolling update, leaves no split behind: the route
// document is removed before the rolling update goes on, which ends
// with every instance at the new version.
func TestCanarySupersededByRollingUpdate(t *testing.T) {
	const replicas, svc = 2, "demo-superseded"
	app, p, n := canaryAtSplit(t, svc, replicas)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v3", replicas, `{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}`)), 200)
	ro := waitRollout(t, n.url, "web", 2*time.Minute)
	if ro.Phase != ledger.PhaseSucceeded || ro.To.Version != "v3" {
		t.Fatalf("rollout = %+v, want v3 Succeeded", ro)
	}
	if status := routeDoc(t, p, svc); status != http.StatusNotFound {
		t.Errorf("the superseded canary's route document: %d, want 404", status)
	}
	if got := passingVersions(t, p.registry, svc); got["v3"] != replicas || len(got) != 1 {
		t.Errorf("passing at the end: %v, want %d v3 only", got, replicas)
	}
}

// TestCanaryScalerDeleted: a scaler deleted in the middle of a canary
// takes its split with it, as it takes its instances.
func TestCanaryScalerDeleted(t *testing.T) {
	const svc = "demo-deleted"
	_, p, n := canaryAtSplit(t, svc, 2)
	expect(t, call(t, "DELETE", n.url+"/v1/scalers/web", ""), 200)
	webtest.WaitFor(t, 30*time.Second, "the split removed", func() bool { return routeDoc(t, p, svc) == http.StatusNotFound })
}

// TestCanaryPausedStillJudged: a paused canary starts, stops and moves
// on nothing, but its analysis goes on: when the new version turns bad
// while paused, the canary rolls back by itself and ends Failed.
func TestCanaryPausedStillJudged(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	const replicas, svc = 2, "demo-paused"
	canary := `{"type":"Canary","canary":{"steps":[{"setWeight":50},{"setWeight":100}],"analysis":{"window":"2s","maxErrorRate":0.01,"minRequests":10}}}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, canary)), 201)
	webtest.WaitFor(t, 60*time.Second, "2 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	var (
		mu  sync.Mutex
		bad float64
	)
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	go pushChangingSignals(ctx, t, n.url, svc, func() map[string]float64 {
		mu.Lock()
		defer mu.Unlock()
		return map[string]float64{"v1": 0, "v2": bad}
	})
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, canary)), 200)
	webtest.WaitFor(t, 60*time.Second, "the canary's split at 50%", func() bool {
		ro := decode[ledger.Rollout](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollout", ""), 200))
		return ro.Canary != nil && ro.Canary.Weights["v2"] > 0
	})
	expect(t, call(t, "POST", n.url+"/v1/scalers/web/rollout/pause", ""), 200)
	mu.Lock()
	bad = 0.05
	mu.Unlock()
	ro := waitRollout(t, n.url, "web", 2*time.Minute)
	stop()
	if ro.Phase != ledger.PhaseFailed || ro.Canary.Step != 0 || ro.Failure == "" {
		b, _ := json.Marshal(ro)
		t.Fatalf("rollout = %s, want Failed at step 0 while paused", b)
	}
	if got := passingVersions(t, p.registry, svc); got["v1"] != replicas || got["v2"] != 0 {
		t.Errorf("passing at the end: %v, want %d v1", got, replicas)
	}
	t.Logf("%s: %s", ro.Phase, ro.Message)
}
