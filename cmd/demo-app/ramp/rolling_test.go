package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRollingUpdateUnderLoad is the rollout issue's test, end to end:
// steward dev (gateway, registry, scaler), a scaler running 6 demo-app
// processes at v1 with the process driver and the default strategy, a
// steady 100 requests per second through the gateway, then the template
// changed to v2. Not one request may fail; never more than 6+2 (25%
// surge, rounded up) processes may run nor fewer than 6−1 (25%
// unavailable, rounded down) be passing; every v1 instance must be out
// of the registry for the drain (2 s) before its process is gone; at the
// end 6 passing instances are v2.
func TestRollingUpdateUnderLoad(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the process watch reads /proc")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	app, dev := startAppAndDev(ctx, t)
	const replicas, svc, surge, unavailable, drain = 6, "roll", 2, 1, 2 * time.Second
	c := &http.Client{Timeout: 5 * time.Second}
	h := &rolloutHarness{t: t, ctx: ctx, dev: dev, svc: svc, c: c}
	put := func(version string) {
		t.Helper()
		h.put("roll", map[string]any{"service": svc, "minReplicas": replicas, "maxReplicas": replicas, "syncPeriod": "1s",
			"metrics": []any{map[string]any{"name": "gateway_rps", "target": map[string]any{"type": "averageValue", "value": 1000}}},
			"driver": map[string]any{"type": "process", "command": []string{app}, "version": version, "gracePeriod": "5s",
				"env": map[string]string{"STEWARD_REGISTRY_URL": dev.registry, "STEWARD_DEMO_SERVICE": svc, "STEWARD_DEMO_WORK": "2ms", "GOMAXPROCS": "1"}}})
	}
	type instance struct {
		ID      string  `json:"id"`
		Status  string  `json:"status"`
		Version *string `json:"version"`
	}
	listed := func() ([]instance, error) {
		resp, err := c.Get(dev.registry + "/v1/services/" + svc + "/instances")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out []instance
		return out, json.NewDecoder(resp.Body).Decode(&out)
	}
	passingAt := func(version string) int {
		list, _ := listed()
		n := 0
		for _, in := range list {
			if in.Status == "passing" && in.Version != nil && *in.Version == version {
				n++
			}
		}
		return n
	}
	waitFor := func(what string, within time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(within); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, within)
			}
		}
	}

	put("v1")
	waitFor("6 v1 instances passing", 60*time.Second, func() bool { return passingAt("v1") == replicas })
	waitFor("the gateway routing to them", 30*time.Second, func() bool {
		resp, err := c.Get(dev.gateway + "/s/" + svc + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	old := procsByID(app)

	// Watch the fleet and load it.
	var (
		maxRunning, minPassing = 0, 1 << 30
		lastListed             = map[string]time.Time{}
		gone                   = map[string]time.Time{}
		pids                   = map[string]map[int]bool{}
	)
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for wctx.Err() == nil {
			list, err := listed()
			procs := procsByID(app)
			now := time.Now()
			if err == nil {
				passing := 0
				for _, in := range list {
					lastListed[in.ID] = now
					if in.Status == "passing" {
						passing++
					}
				}
				minPassing, maxRunning = min(minPassing, passing), max(maxRunning, len(procs))
				for id, pid := range procs {
					if pids[id] == nil {
						pids[id] = map[int]bool{}
					}
					pids[id][pid] = true
				}
				for id := range old {
					if _, running := procs[id]; !running && gone[id].IsZero() {
						gone[id] = now
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	gen := newLoadGen(dev.gateway + "/s/" + svc + "/")
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() { defer close(loaded); gen.run(lctx) }()
	gen.setRate(ctx, 100)
	time.Sleep(2 * time.Second)

	start := time.Now()
	put("v2")
	var ro struct {
		Phase   string `json:"phase"`
		Message string `json:"message"`
		Started int    `json:"started"`
		Stopped int    `json:"stopped"`
	}
	waitFor("the rollout to end", 2*time.Minute, func() bool {
		resp, err := c.Get(dev.scaler + "/v1/scalers/roll/rollout")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&ro) == nil && ro.Phase != "Progressing" && ro.Phase != "Paused"
	})
	took := time.Since(start)
	time.Sleep(2 * time.Second) // load on the new version too
	stopLoad()
	<-loaded
	stopWatch()
	<-watched

	total := gen.totals()
	t.Logf("rolled %d instances v1 → v2 under %d requests through the gateway in %v: %d served, %d failed, %d dropped, p99 %v; at most %d processes, at least %d passing",
		replicas, total.offered, took.Round(10*time.Millisecond), total.served, total.failed, total.dropped, quantile(total.latency, 0.99), maxRunning, minPassing)
	if ro.Phase != "Succeeded" || ro.Started != replicas || ro.Stopped != replicas {
		t.Errorf("rollout = %+v, want Succeeded with %d started and %d stopped", ro, replicas, replicas)
	}
	if total.failed != 0 || total.dropped != 0 || total.served == 0 {
		t.Errorf("%d requests failed (last: %s) and %d dropped of %d, want none", total.failed, total.lastFailure, total.dropped, total.offered)
	}
	if maxRunning > replicas+surge {
		t.Errorf("%d processes ran at once, over %d+%d", maxRunning, replicas, surge)
	}
	if minPassing < replicas-unavailable {
		t.Errorf("%d passing at the lowest, under %d−%d", minPassing, replicas, unavailable)
	}
	for id := range old {
		switch g := gone[id]; {
		case g.IsZero():
			t.Errorf("v1 instance %s still runs", id)
		case g.Sub(lastListed[id]) < drain-300*time.Millisecond:
			t.Errorf("v1 instance %s was out of the registry %v before its process was gone, want the drain (%v)", id, g.Sub(lastListed[id]), drain)
		}
	}
	for id, ps := range pids {
		if len(ps) != 1 {
			t.Errorf("instance %s ran as %d processes", id, len(ps))
		}
	}
	if n := passingAt("v2"); n != replicas {
		t.Errorf("%d v2 instances passing at the end, want %d", n, replicas)
	}
}

// procsByID returns the running processes of binary app by their
// STEWARD_INSTANCE_ID (leftovers finds them, environ names them).
func procsByID(app string) map[string]int {
	out := map[string]int{}
	pids, _ := leftovers(app, "")
	for _, pid := range pids {
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if id, ok := strings.CutPrefix(kv, "STEWARD_INSTANCE_ID="); ok {
				out[id] = pid
			}
		}
	}
	return out
}

// startAppAndDev builds steward and demo-app and runs steward dev until
// the test ends; it returns demo-app's path.
func startAppAndDev(ctx context.Context, t *testing.T) (app string, dev *devProcess) {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "../../steward", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dev, err := startDev(ctx, filepath.Join(bin, "steward"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := dev.stop(30 * time.Second); err != nil {
			t.Errorf("stop steward dev: %v", err)
		}
	})
	return filepath.Join(bin, "demo-app"), dev
}
