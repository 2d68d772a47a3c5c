package scaler_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

var demoApp struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildDemoApp builds cmd/demo-app once for the package's tests.
func buildDemoApp(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the process watch reads /proc")
	}
	demoApp.once.Do(func() {
		demoApp.dir, demoApp.err = os.MkdirTemp("", "scaler-demo-app-")
		if demoApp.err != nil {
			return
		}
		demoApp.path = filepath.Join(demoApp.dir, "demo-app")
		out, err := exec.Command("go", "build", "-o", demoApp.path, "../../cmd/demo-app").CombinedOutput()
		if err != nil {
			demoApp.err = fmt.Errorf("go build demo-app: %v\n%s", err, out)
		}
	})
	if demoApp.err != nil {
		t.Fatal(demoApp.err)
	}
	return demoApp.path
}

func removeDemoApp() {
	if demoApp.dir != "" {
		os.RemoveAll(demoApp.dir)
	}
}

// demoSpec is a scaler of service svc at a fixed count (minReplicas =
// maxReplicas = replicas) running the demo app at version, registering
// in registry; strategy is the strategy field's JSON, or empty.
func demoSpec(app, registry, svc, version string, replicas int, strategy string) string {
	if strategy != "" {
		strategy = `,"strategy":` + strategy
	}
	return fmt.Sprintf(`{"service":%q,"minReplicas":%d,"maxReplicas":%d,
		"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":1000}}],"syncPeriod":"1s",
		"driver":{"type":"process","command":[%q],"version":%q,"gracePeriod":"5s",
		"env":{"STEWARD_REGISTRY_URL":%q,"STEWARD_DEMO_SERVICE":%q,"STEWARD_DEMO_WORK":"1ms","STEWARD_LOG_LEVEL":"warn"}}%s}`,
		svc, replicas, replicas, app, version, registry, svc, strategy)
}

// fleet is what a watcher sampled of one service's instances: the
// processes of the test's demo-app binary (by /proc) and the registry's
// view, every 50 ms.
type fleet struct {
	mu sync.Mutex
	// maxRunning is the most processes seen at once; minPassing the
	// fewest passing in the registry, from when watching began.
	maxRunning, minPassing int
	// pids maps each instance id to the pids that ran it.
	pids map[string][]int
	// lastListed and gone: when an id was last in the registry, and when
	// its process was first seen gone.
	lastListed, gone map[string]time.Time
	samples          int
}

// watchFleet samples until ctx ends.
func watchFleet(ctx context.Context, t testing.TB, app, registry, svc string) *fleet {
	f := &fleet{minPassing: 1 << 30, pids: map[string][]int{}, lastListed: map[string]time.Time{}, gone: map[string]time.Time{}}
	c, err := sdk.New(registry)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		running := map[string]int{}
		for ctx.Err() == nil {
			listed, _, err := c.Services().Instances(ctx, svc, sdk.Query{})
			procs := demoProcs(app)
			now := time.Now()
			if err == nil {
				f.mu.Lock()
				passing := 0
				for _, in := range listed {
					f.lastListed[in.Id] = now
					if in.Status == api.Passing {
						passing++
					}
				}
				f.minPassing = min(f.minPassing, passing)
				f.maxRunning = max(f.maxRunning, len(procs))
				for id, pid := range procs {
					if !slices.Contains(f.pids[id], pid) {
						f.pids[id] = append(f.pids[id], pid)
					}
					running[id] = pid
				}
				for id := range running {
					if _, ok := procs[id]; !ok {
						if _, seen := f.gone[id]; !seen {
							f.gone[id] = now
						}
						delete(running, id)
					}
				}
				f.samples++
				f.mu.Unlock()
			}
			sleep(ctx, 50*time.Millisecond)
		}
	}()
	return f
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// demoProcs returns the running processes of binary app by their
// STEWARD_INSTANCE_ID.
func demoProcs(app string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err != nil || exe != app {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
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

// passingVersions counts the passing instances of svc per version.
func passingVersions(t testing.TB, registry, svc string) map[string]int {
	c, err := sdk.New(registry)
	if err != nil {
		t.Fatal(err)
	}
	listed, _, err := c.Services().Instances(t.Context(), svc, sdk.Query{Status: api.Passing})
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, in := range listed {
		v := ""
		if in.Version != nil {
			v = *in.Version
		}
		out[v]++
	}
	return out
}

// waitRollout waits until the scaler's rollout ends and returns it.
func waitRollout(t testing.TB, url, name string, within time.Duration) ledger.Rollout {
	t.Helper()
	var ro ledger.Rollout
	webtest.WaitFor(t, within, "the rollout to end", func() bool {
		r := call(t, "GET", url+"/v1/scalers/"+name+"/rollout", "")
		if r.status != 200 {
			return false
		}
		ro = decode[ledger.Rollout](t, r)
		return !ro.Active()
	})
	return ro
}

// checkRolled checks a finished rolling update of replicas from v1 to
// v2 against what the fleet watcher saw: never more than
// replicas+surge processes, never fewer than replicas−unavailable
// passing, each instance started once (one pid per id), every old one
// out of the registry for the drain before its process was gone, and
// the new ones all passing at the end.
func checkRolled(t *testing.T, f *fleet, ro ledger.Rollout, registry, svc string, replicas, surge, unavailable int, oldIDs []string, drain time.Duration) {
	t.Helper()
	if ro.Phase != ledger.PhaseSucceeded || ro.To.Version != "v2" || ro.From.Version != "v1" || ro.Started != replicas || ro.Stopped != replicas {
		t.Errorf("rollout = phase %s %s → %s, started %d, stopped %d: %s; want Succeeded v1 → v2, %d and %d",
			ro.Phase, ro.From.Version, ro.To.Version, ro.Started, ro.Stopped, ro.Message, replicas, replicas)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Logf("watched %d samples: at most %d processes, at least %d passing", f.samples, f.maxRunning, f.minPassing)
	if f.maxRunning > replicas+surge {
		t.Errorf("%d processes ran at once, over %d+%d", f.maxRunning, replicas, surge)
	}
	if f.minPassing < replicas-unavailable {
		t.Errorf("%d passing at the lowest, under %d−%d", f.minPassing, replicas, unavailable)
	}
	for id, pids := range f.pids {
		if len(pids) != 1 {
			t.Errorf("instance %s ran as pids %v: started more than once", id, pids)
		}
	}
	for _, id := range oldIDs {
		gone, ok := f.gone[id]
		switch {
		case !ok:
			t.Errorf("old instance %s never stopped", id)
		case gone.Sub(f.lastListed[id]) < drain-300*time.Millisecond:
			t.Errorf("old instance %s left the registry %v before its process was gone, want the drain (%v) first", id, gone.Sub(f.lastListed[id]), drain)
		}
	}
	if got := passingVersions(t, registry, svc); got["v2"] != replicas || len(got) != 1 {
		t.Errorf("passing by version = %v, want %d of v2 only", got, replicas)
	}
}

// TestRollingUpdateProcesses rolls 10 demo-app processes from v1 to v2
// with the default strategy (25% surge, 25% unavailable, minReadySeconds
// 0) and drain, and logs how long it took.
func TestRollingUpdateProcesses(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	const replicas, svc = 10, "demo-roll"
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, "")), 201)
	webtest.WaitFor(t, 60*time.Second, "10 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	oldIDs := make([]string, 0, replicas)
	for id := range demoProcs(app) {
		oldIDs = append(oldIDs, id)
	}
	ctx, stop := context.WithCancel(t.Context())
	f := watchFleet(ctx, t, app, p.registry, svc)
	webtest.WaitFor(t, 5*time.Second, "the watcher's first sample", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.samples > 0 })
	start := time.Now()
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, "")), 200)
	ro := waitRollout(t, n.url, "web", 3*time.Minute)
	took := time.Since(start)
	time.Sleep(200 * time.Millisecond)
	stop()
	t.Logf("rolled %d instances v1 → v2 with the defaults (maxSurge 25%%, maxUnavailable 25%%, minReadySeconds 0, drain %v) in %v", replicas, 2*time.Second, took.Round(10*time.Millisecond))
	checkRolled(t, f, ro, p.registry, svc, replicas, 3, 2, oldIDs, 2*time.Second)
	sc := getScaler(t, n.url, "web")
	if sc.Status.DesiredReplicas != replicas {
		t.Errorf("desired = %d during and after the rollout, want %d", sc.Status.DesiredReplicas, replicas)
	}
}

// hostDriver is one process driver shared by every replica's loop, as if
// the processes ran on a host each leader in turn drives: closing it at
// the end of a term leaves them running (the test closes it at its end).
// It is how a leader's successor can be shown to resume its intents
// without starting or stopping anything twice.
type hostDriver struct {
	*driver.Process
}

func (hostDriver) Close() error { return nil }

// startVoters starts three scaler replicas, voters of one log, whose
// loops share one process driver (sharedDriver).
func startVoters(t testing.TB, p *plane) (map[string]*node, *actionLog) {
	newDriver, acts := sharedDriver(t)
	voters := []string{"scaler-0", "scaler-1", "scaler-2"}
	nodes := map[string]*node{}
	for _, id := range voters {
		nodes[id] = startNode(t, p, id, nodeOptions{voters: voters, leaseTTL: 2 * time.Second, newDriver: newDriver})
	}
	return nodes, acts
}

// leaderOf waits for the scalers' leader, as any's log records it.
func leaderOf(t testing.TB, nodes map[string]*node, any *node) *node {
	var lead *node
	webtest.WaitFor(t, 15*time.Second, "a leader", func() bool {
		_, rep := any.fence()
		lead = nodes[rep]
		return lead != nil
	})
	return lead
}

// pauseAt makes n's leader stop before its nth rollout action (after
// recording it), handing the action to paused, until release is closed.
func (n *node) pauseAt(nth int) (paused <-chan ledger.Action, release chan struct{}) {
	p := make(chan ledger.Action, 1)
	release = make(chan struct{})
	var calls int
	hook := func(name string, token int64, act ledger.Action) {
		if calls++; calls == nth {
			p <- act
			<-release
		}
	}
	n.rolloutPause.Store(&hook)
	return p, release
}

// takeOver waits for old, the leader, to pause before an action
// (pauseAt), cuts it from the election service so that its lease lapses,
// waits for the rollout to end under the next leader, then lets old go
// on and, after a while, calls stop. It returns the paused action and
// the rollout as it ended.
func takeOver(t *testing.T, any, old *node, paused <-chan ledger.Action, release chan struct{}, stop func()) (ledger.Action, ledger.Rollout) {
	t.Helper()
	oldToken, _ := old.fence()
	var act ledger.Action
	select {
	case act = <-paused:
	case <-time.After(90 * time.Second):
		t.Fatal("the leader never got to the rollout action it was to pause at")
	}
	mid := decode[ledger.Rollout](t, expect(t, call(t, "GET", any.url+"/v1/scalers/web/rollout", ""), 200))
	t.Logf("%s (token %d) paused before its %s of %v; the rollout: %s", old.id, oldToken, act.Kind, act.IDs, mid.Message)
	if mid.Canary != nil {
		t.Logf("the canary at step %d, weights %v", mid.Canary.Step, mid.Canary.Weights)
	}
	old.cut.Store(true)
	ro := waitRollout(t, any.url, "web", 3*time.Minute)
	newToken, next := any.fence()
	close(release)
	time.Sleep(3 * time.Second) // the old leader's drain, driver call and record
	stop()
	if newToken <= oldToken || next == old.id {
		t.Fatalf("the rollout ended under %s token %d, want a new leader after %s token %d", next, newToken, old.id, oldToken)
	}
	t.Logf("%s (token %d) finished the rollout: %s %s", next, newToken, ro.Phase, ro.Message)
	return act, ro
}

// sharedDriver returns a NewDriver giving every replica's loop the same
// process driver (hostDriver), closed when the test ends, and the log of
// what it started and stopped.
func sharedDriver(t testing.TB) (func(driver.Spec, driver.Deps) (driver.Driver, error), *actionLog) {
	acts := &actionLog{started: map[string]int{}, stopped: map[string]int{}}
	var (
		mu     sync.Mutex
		shared *driver.Process
	)
	t.Cleanup(func() {
		if shared != nil {
			shared.Close()
		}
	})
	return func(spec driver.Spec, deps driver.Deps) (driver.Driver, error) {
		mu.Lock()
		defer mu.Unlock()
		if shared == nil {
			deps.Logger = slog.New(actionHandler{log: acts})
			d, err := driver.New(spec, deps)
			if err != nil {
				return nil, err
			}
			shared = d.(*driver.Process)
		}
		return hostDriver{shared}, nil
	}, acts
}

// once reports the instances started or stopped more than once.
func (a *actionLog) once(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, n := range a.started {
		if n != 1 {
			t.Errorf("instance %s started %d times", id, n)
		}
	}
	for id, n := range a.stopped {
		if n != 1 {
			t.Errorf("instance %s stopped %d times", id, n)
		}
	}
}

// actionLog counts the process driver's starts and stops per instance,
// from its log.
type actionLog struct {
	mu               sync.Mutex
	started, stopped map[string]int
}

// actionHandler is the slog handler that feeds an actionLog, with the
// attributes its logger was made With (the instance is one of them).
type actionHandler struct {
	log   *actionLog
	attrs []slog.Attr
}

func (h actionHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h actionHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return actionHandler{h.log, append(slices.Clone(h.attrs), as...)}
}
func (h actionHandler) WithGroup(string) slog.Handler { return h }
func (h actionHandler) Handle(_ context.Context, r slog.Record) error {
	var id string
	for _, at := range h.attrs {
		if at.Key == "instance" {
			id = at.Value.String()
		}
	}
	r.Attrs(func(at slog.Attr) bool {
		if at.Key == "instance" {
			id = at.Value.String()
		}
		return true
	})
	a := h.log
	a.mu.Lock()
	defer a.mu.Unlock()
	switch r.Message {
	case "process started":
		a.started[id]++
	case "stopping process":
		a.stopped[id]++
	}
	return nil
}

// TestRollingUpdateFailover deposes the leader mid-rollout, between
// recording an intent and acting on it (paused there and cut from the
// election service, so its lease lapses). The next leader carries the
// intent out and finishes the rollout; when the old leader goes on, the
// driver refuses its token. Every instance is started once and stopped
// once, and the bounds hold throughout.
func TestRollingUpdateFailover(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	nodes, acts := startVoters(t, p)
	any := nodes["scaler-0"]
	const replicas, svc = 4, "demo-failover"
	strategy := `{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}`
	expect(t, call(t, "PUT", any.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, strategy)), 201)
	webtest.WaitFor(t, 60*time.Second, "4 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	old := leaderOf(t, nodes, any)
	oldIDs := make([]string, 0, replicas)
	for id := range demoProcs(app) {
		oldIDs = append(oldIDs, id)
	}

	paused, release := old.pauseAt(2)
	ctx, stop := context.WithCancel(t.Context())
	f := watchFleet(ctx, t, app, p.registry, svc)
	expect(t, call(t, "PUT", any.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, strategy)), 200)
	act, ro := takeOver(t, any, old, paused, release, stop)
	checkRolled(t, f, ro, p.registry, svc, replicas, 1, 0, oldIDs, 2*time.Second)
	for _, n := range nodes { // every replica holds the same rollout
		if got := decode[ledger.Rollout](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollout", ""), 200)); got.Phase != ro.Phase || got.Started != ro.Started || got.Stopped != ro.Stopped {
			t.Errorf("%s has rollout %+v, want %+v", n.id, got, ro)
		}
	}
	acts.once(t)
	acts.mu.Lock()
	defer acts.mu.Unlock()
	for _, id := range act.IDs {
		if act.Kind == ledger.ActionStart && acts.started[id] != 1 || act.Kind == ledger.ActionStop && acts.stopped[id] != 1 {
			t.Errorf("the paused %s of %s was not carried out once by the new leader", act.Kind, id)
		}
	}
	if len(acts.started) != 2*replicas {
		t.Errorf("%d instances started in all, want %d v1 and %d v2", len(acts.started), replicas, replicas)
	}
}

// TestRollingUpdatePauseAndAbort: a paused rollout starts and stops
// nothing; aborted, it rolls back to v1 the same way (the v2 instances
// drained and stopped, v1 ones started within the bounds) and ends
// RolledBack, with the spec still at v2 and nothing rolled again after.
func TestRollingUpdatePauseAndAbort(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	const replicas, svc = 2, "demo-abort"
	// An instance counts once it has passed for 15 s: the rollout cannot
	// get past its first v2 instance before the pause; after the abort,
	// the v1 instances are the new ones, and count 15 s after they
	// first passed.
	strategy := `{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"minReadySeconds":15}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", replicas, strategy)), 201)
	webtest.WaitFor(t, 60*time.Second, "2 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == replicas })
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", replicas, strategy)), 200)
	webtest.WaitFor(t, 30*time.Second, "a v2 instance passing", func() bool { return passingVersions(t, p.registry, svc)["v2"] == 1 })
	expect(t, call(t, "POST", n.url+"/v1/scalers/web/rollout/pause", ""), 200)
	before := demoProcs(app)
	time.Sleep(2 * time.Second)
	if after := demoProcs(app); len(after) != len(before) || len(before) != replicas+1 {
		t.Fatalf("processes %v while paused, were %v: want the %d+1 of before, unchanged", after, before, replicas)
	}
	ro := decode[ledger.Rollout](t, expect(t, call(t, "POST", n.url+"/v1/scalers/web/rollout/abort", ""), 200))
	if ro.Phase != ledger.PhaseProgressing || !ro.Aborted {
		t.Fatalf("aborted = %+v", ro)
	}
	ro = waitRollout(t, n.url, "web", time.Minute)
	if ro.Phase != ledger.PhaseRolledBack || ro.Started != 1 || ro.Stopped != 1 {
		t.Fatalf("rollout = %+v, want RolledBack after starting and stopping the one v2 instance", ro)
	}
	if got := passingVersions(t, p.registry, svc); got["v1"] != replicas || len(got) != 1 {
		t.Fatalf("passing by version = %v, want %d of v1 only", got, replicas)
	}
	time.Sleep(2 * time.Second) // a few rollout ticks and a decision
	if procs := demoProcs(app); len(procs) != replicas {
		t.Fatalf("processes after the rollback = %v, want %d", procs, replicas)
	}
	if sc := getScaler(t, n.url, "web"); sc.Spec.Driver.Version != "v2" {
		t.Errorf("the spec's version = %q after the rollback, want v2 (an abort does not change the spec)", sc.Spec.Driver.Version)
	}
}

// TestRollingUpdateScaledAndSuperseded: mid-rollout the count goes from
// 2 to 3 (a PUT of the same template: no new rollout), and the rollout
// takes the new count; then a third template supersedes it, and the
// fleet ends at 3 of v3, the surge of the bounds in force never passed.
func TestRollingUpdateScaledAndSuperseded(t *testing.T) {
	app := buildDemoApp(t)
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	const svc = "demo-super"
	// Instances count after 3 s of passing, so each step waits a little.
	strategy := `{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0},"minReadySeconds":3}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v1", 2, strategy)), 201)
	webtest.WaitFor(t, 60*time.Second, "2 v1 instances passing", func() bool { return passingVersions(t, p.registry, svc)["v1"] == 2 })
	ctx, stop := context.WithCancel(t.Context())
	f := watchFleet(ctx, t, app, p.registry, svc)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", 2, strategy)), 200)
	webtest.WaitFor(t, 30*time.Second, "a v2 instance passing", func() bool { return passingVersions(t, p.registry, svc)["v2"] >= 1 })
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v2", 3, strategy)), 200)
	webtest.WaitFor(t, 30*time.Second, "the rollout at 3 replicas", func() bool {
		ro := decode[ledger.Rollout](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollout", ""), 200))
		return ro.Bounds != nil && ro.Bounds.Replicas == 3 || !ro.Active()
	})
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", demoSpec(app, p.registry, svc, "v3", 3, strategy)), 200)
	ro := waitRollout(t, n.url, "web", 2*time.Minute)
	time.Sleep(200 * time.Millisecond)
	stop()
	if ro.Phase != ledger.PhaseSucceeded || ro.To.Version != "v3" || ro.From.Version != "v2" {
		t.Fatalf("rollout = %+v, want v2 → v3 Succeeded", ro)
	}
	hist := decode[struct{ Items []ledger.Rollout }](t, expect(t, call(t, "GET", n.url+"/v1/scalers/web/rollouts", ""), 200)).Items
	if len(hist) != 2 || hist[1].Phase != ledger.PhaseSuperseded || hist[1].To.Version != "v2" {
		t.Fatalf("history = %+v, want v3 Succeeded after v2 Superseded", hist)
	}
	if got := passingVersions(t, p.registry, svc); got["v3"] != 3 || len(got) != 1 {
		t.Fatalf("passing by version = %v, want 3 of v3 only", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.maxRunning > 3+1 {
		t.Errorf("%d processes ran at once, over 3+1", f.maxRunning)
	}
	for id, pids := range f.pids {
		if len(pids) != 1 {
			t.Errorf("instance %s ran as pids %v", id, pids)
		}
	}
	t.Logf("at most %d processes, at least %d passing; rollout %d started %d, stopped %d", f.maxRunning, f.minPassing, ro.ID, ro.Started, ro.Stopped)
}
