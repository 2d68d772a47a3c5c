package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"testing"
	"time"
)

// TestCanary is the canary half of the rollout issue, end to end: steward
// dev, 4 demo-app processes at v1 under a steady 60 requests per second
// through the gateway, then two canaries with the same steps (25% of the
// traffic, a pause, 50%, a pause) judged on the gateway's own per-version
// signals over 10 s windows (error rate at most 1%):
//   - v2 is healthy: every analysis passes, it is promoted through every
//     step, 4 v2 instances serve everything and not one request fails;
//   - v3 answers 5% of its requests 500: the first analysis fails, the
//     rollout rolls back by itself and ends Failed with the measurements,
//     the error budget it spent is reported, v2 serves everything again,
//     and the test measures how long after the failed analysis v3 still
//     answered.
func TestCanary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process watch reads /proc")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	app, dev := startAppAndDev(ctx, t)
	const replicas, svc, rps = 4, "canary", 60
	h := &rolloutHarness{t: t, ctx: ctx, dev: dev, svc: svc, c: &http.Client{Timeout: 5 * time.Second}}
	steps := []any{map[string]any{"setWeight": 25}, map[string]any{"pause": "5s"}, map[string]any{"setWeight": 50}, map[string]any{"pause": "5s"}}
	spec := func(version string, errorRate float64) map[string]any {
		return map[string]any{"service": svc, "minReplicas": replicas, "maxReplicas": replicas, "syncPeriod": "1s",
			"metrics": []any{map[string]any{"name": "gateway_rps", "target": map[string]any{"type": "averageValue", "value": 1000}}},
			"strategy": map[string]any{"type": "Canary", "canary": map[string]any{"steps": steps,
				"analysis": map[string]any{"window": "10s", "maxErrorRate": 0.01, "minRequests": 20}}},
			"driver": map[string]any{"type": "process", "command": []string{app}, "version": version, "gracePeriod": "5s",
				"env": map[string]string{"STEWARD_REGISTRY_URL": dev.registry, "STEWARD_DEMO_SERVICE": svc, "STEWARD_DEMO_WORK": "2ms",
					"STEWARD_DEMO_ERROR_RATE": fmt.Sprint(errorRate), "GOMAXPROCS": "1"}}}
	}
	h.put("canary", spec("v1", 0))
	h.waitFor("4 v1 instances passing", 60*time.Second, func() bool { return h.passingAt("v1") == replicas })
	h.waitFor("the gateway routing to them", 30*time.Second, h.routes)

	gen := newLoadGen(dev.gateway + "/s/" + svc + "/")
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() { defer close(loaded); gen.run(lctx) }()
	defer func() { stopLoad(); <-loaded }()
	gen.setRate(ctx, rps)
	time.Sleep(2 * time.Second)

	// A healthy canary: promoted through every step.
	start := time.Now()
	h.put("canary", spec("v2", 0))
	var good rolloutView
	h.waitRollout("canary", 3*time.Minute, &good)
	took := time.Since(start)
	time.Sleep(2 * time.Second)
	healthy := gen.take()
	t.Logf("canary v1 → v2 %s in %v: %s; %d requests, %d failed, p99 %v", good.Phase, took.Round(10*time.Millisecond), good.Message,
		healthy.offered, healthy.failed, quantile(healthy.latency, 0.99))
	if good.Phase != "Succeeded" || good.Canary == nil || good.Canary.Step != len(steps) {
		t.Fatalf("the healthy canary ended %+v, want Succeeded after %d steps", good, len(steps))
	}
	passedAt := map[int]bool{}
	for _, a := range good.Canary.Analyses {
		t.Logf("  step %d %s: %s", a.Step, a.Verdict, a.Message)
		if a.Verdict == "fail" {
			t.Errorf("the healthy canary failed an analysis: %s", a.Message)
		}
		if a.Verdict == "pass" {
			passedAt[a.Step] = true
		}
	}
	if !passedAt[0] || !passedAt[2] {
		t.Errorf("analyses passed at steps %v, want the two setWeight steps 0 and 2", passedAt)
	}
	if healthy.failed != 0 || healthy.dropped != 0 {
		t.Errorf("%d requests failed (last: %s) and %d dropped during the healthy canary, want none", healthy.failed, healthy.lastFailure, healthy.dropped)
	}
	if n := h.passingAt("v2"); n != replicas || h.passingAt("v1") != 0 {
		t.Errorf("%d v2 and %d v1 instances passing after the promotion, want %d and 0", n, h.passingAt("v1"), replicas)
	}
	if h.routeDocument() {
		t.Error("the canary's route document is still there after the promotion")
	}

	// A bad canary: v3 fails 5% of its requests, and is rolled back.
	h.put("canary", spec("v3", 0.05))
	var bad rolloutView
	h.waitRollout("canary", 2*time.Minute, &bad)
	time.Sleep(2 * time.Second)
	spent := gen.take()
	if bad.Phase != "Failed" || bad.Canary == nil || len(bad.Canary.Analyses) == 0 {
		t.Fatalf("the bad canary ended %+v, want Failed with its analyses", bad)
	}
	failed := bad.Canary.Analyses[len(bad.Canary.Analyses)-1]
	back := gen.lastAnswerFrom("v3").Sub(failed.At)
	t.Logf("canary v2 → v3 %s: %s", bad.Phase, bad.Message)
	t.Logf("  analysis at step %d: %s", failed.Step, failed.Message)
	t.Logf("  budget spent: %+v; last answer from v3 %v after the failed analysis; clients: %d requests, %d failed (last: %s)",
		*bad.Canary.Budget, back.Round(time.Millisecond), spent.offered, spent.failed, spent.lastFailure)
	if failed.Verdict != "fail" || failed.Step != 0 || !slices.Contains(failed.Failed, "maxErrorRate") {
		t.Errorf("last analysis = %+v, want a fail at step 0 on maxErrorRate", failed)
	}
	if bad.Canary.Budget == nil || bad.Canary.Budget.Requests == 0 || bad.Canary.Budget.Failures == 0 {
		t.Errorf("budget = %+v, want the requests and failures that reached v3", bad.Canary.Budget)
	}
	if bad.Failure == "" {
		t.Error("the failed rollout does not say why")
	}
	// The failures the clients see are the step's share during about one
	// analysis window: 60 rps × 25% × 10 s × 5% is 7.5; the bound leaves
	// room for a window that ran long (the judgement waits for the
	// window, then for the next push, every 5 s). The budget is the
	// gateway's count, up to a push behind.
	if spent.failed > 15 {
		t.Errorf("%d requests failed at the clients, more than twice one window's share", spent.failed)
	}
	if n := h.passingAt("v2"); n != replicas || h.passingAt("v3") != 0 {
		t.Errorf("%d v2 and %d v3 instances passing after the rollback, want %d and 0", n, h.passingAt("v3"), replicas)
	}
	if h.routeDocument() {
		t.Error("the canary's route document is still there after the rollback")
	}
	// After the rollback not one request fails.
	time.Sleep(3 * time.Second)
	if after := gen.take(); after.failed != 0 || after.served == 0 {
		t.Errorf("after the rollback %d of %d requests failed (last: %s)", after.failed, after.offered, after.lastFailure)
	}
}

// rolloutHarness drives a scaler of steward dev.
type rolloutHarness struct {
	t   *testing.T
	ctx context.Context
	dev *devProcess
	svc string
	c   *http.Client
}

// put PUTs the scaler's spec, retrying while steward dev is starting.
func (h *rolloutHarness) put(name string, spec map[string]any) {
	h.t.Helper()
	body, _ := json.Marshal(spec)
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequestWithContext(h.ctx, http.MethodPut, h.dev.scaler+"/v1/scalers/"+name, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := h.c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("PUT scaler %s: %v", name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// passingAt counts the service's passing instances of version.
func (h *rolloutHarness) passingAt(version string) int {
	resp, err := h.c.Get(h.dev.registry + "/v1/services/" + h.svc + "/instances")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var list []struct {
		Status  string  `json:"status"`
		Version *string `json:"version"`
	}
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return -1
	}
	n := 0
	for _, in := range list {
		if in.Status == "passing" && in.Version != nil && *in.Version == version {
			n++
		}
	}
	return n
}

// routes reports whether the gateway answers the service.
func (h *rolloutHarness) routes() bool {
	resp, err := h.c.Get(h.dev.gateway + "/s/" + h.svc + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// routeDocument reports whether the rollout's route document exists.
func (h *rolloutHarness) routeDocument() bool {
	resp, err := h.c.Get(h.dev.gateway + "/v1/kv/" + url.PathEscape("steward/gateway/routes/rollout-"+h.svc))
	if err != nil {
		h.t.Fatalf("GET the route document: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		h.t.Fatalf("GET the route document: %s", resp.Status)
	}
	return resp.StatusCode == http.StatusOK
}

func (h *rolloutHarness) waitFor(what string, within time.Duration, ok func() bool) {
	h.t.Helper()
	for deadline := time.Now().Add(within); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %v", what, within)
		}
	}
}

// waitRollout waits for the scaler's rollout to end and decodes it into
// out.
func (h *rolloutHarness) waitRollout(name string, within time.Duration, out any) {
	h.t.Helper()
	h.waitFor("the rollout to end", within, func() bool {
		resp, err := h.c.Get(h.dev.scaler + "/v1/scalers/" + name + "/rollout")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ro struct{ Phase string }
		var raw json.RawMessage
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&raw) != nil || json.Unmarshal(raw, &ro) != nil {
			return false
		}
		if ro.Phase == "Progressing" || ro.Phase == "Paused" {
			return false
		}
		return json.Unmarshal(raw, out) == nil
	})
}
