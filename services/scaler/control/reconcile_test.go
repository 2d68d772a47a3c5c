package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/sdk"
	registrysvc "github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

var quiet = slog.New(slog.DiscardHandler)

// registryAt is the registry at url, through the Go SDK.
func registryAt(t *testing.T, url string) sdk.Services {
	t.Helper()
	c, err := sdk.New(url)
	if err != nil {
		t.Fatal(err)
	}
	return c.Services()
}

// harness is one scaler replica's log and state machine, real and over
// an in-process NATS, with a real registry, and a loop whose driver is a
// recording one (the system being scaled is the only thing stood in
// for).
type harness struct {
	log  *qlog.Log
	m    *ledger.Machine
	loop *Loop
	drv  *recordingDriver
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := qlogtest.StartServer(t)
	regURL := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := registrysvc.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 4, PresenceInterval: 200 * time.Millisecond}
		// Set one by one: they are promoted from the settings every
		// replicated service shares, wherever those are declared.
		s.ReplicaID, s.StreamReplicas, s.SnapshotEvery, s.ShutdownTimeout = "registry-0", 1, 100_000, time.Second
		return registrysvc.Serve(ctx, s, ln, srv.Connect(t), nil, quiet)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := srv.Connect(t)
	snaps, err := qlogsvc.Snapshots(ctx, nc, nil, "scaler", 1)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{m: ledger.New(0), drv: &recordingDriver{current: 1}}
	h.log, err = qlog.Open(ctx, qlog.Config{Service: "scaler", ReplicaID: "r0", Voters: []string{"r0"}, Conn: nc,
		StreamReplicas: 1, Snapshots: snaps, SnapshotEvery: 100_000, Logger: quiet}, h.m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.log.Close() })
	if err := h.log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	h.loop = &Loop{Log: h.log, Machine: h.m, Replica: "r0", Logger: quiet, Metrics: metrics.NewStore(time.Minute),
		Registry:  registryAt(t, regURL),
		NewDriver: func(driver.Spec, driver.Deps) (driver.Driver, error) { return h.drv, nil }}
	return h
}

// lead starts a term of l under token, as lead does once elected.
func (h *harness) lead(t *testing.T, l *Loop, token int64) (*term, context.Context) {
	t.Helper()
	ctx, depose := context.WithCancelCause(context.Background())
	t.Cleanup(func() { depose(nil) })
	tm := newTerm(l, token, "", ctx.Done(), depose)
	if _, err := tm.propose(ctx, ledger.Command{Op: ledger.OpLead}); err != nil {
		t.Fatalf("lead under token %d: %v", token, err)
	}
	return tm, ctx
}

// apply proposes a client's command (a put or a delete).
func (h *harness) apply(t *testing.T, c ledger.Command) {
	t.Helper()
	b, _ := json.Marshal(c)
	if _, err := h.log.Propose(context.Background(), b, qlog.ProposeOptions{}); err != nil {
		t.Fatal(err)
	}
}

// put puts a scaler of service name on target 10 gateway_rps a replica,
// syncing every 200ms.
func (h *harness) put(t *testing.T, name string) {
	t.Helper()
	spec := ledger.Spec{Service: name,
		Spec: hpa.Spec{MinReplicas: new(1), MaxReplicas: 10, SyncPeriod: wire.Duration(200 * time.Millisecond),
			Metrics: []hpa.Metric{{Name: "gateway_rps", Target: hpa.Target{Type: hpa.AverageValue, Value: 10}}}},
		Driver: driver.Spec{Type: driver.TypeWebhook, WebhookSpec: driver.WebhookSpec{URL: "http://127.0.0.1:1/scale", Secret: "s"}}}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	h.apply(t, ledger.Command{Op: ledger.OpPut, Name: name, Spec: &spec})
}

func (h *harness) get(name string) *ledger.Scaler {
	var sc *ledger.Scaler
	_ = h.log.Read(context.Background(), qlog.Serializable, func(int64) error { sc = h.m.Get(name); return nil })
	return sc
}

// recordingDriver is the system being scaled: it reports current and
// records every Scale call.
type recordingDriver struct {
	mu         sync.Mutex
	current    int
	currentErr error
	scales     []scaleCall
	closed     int
}

type scaleCall struct {
	replicas int
	token    int64
}

func (d *recordingDriver) Current(context.Context) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.current, d.currentErr
}

func (d *recordingDriver) Scale(_ context.Context, replicas int, token int64) (driver.Result, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.scales = append(d.scales, scaleCall{replicas, token})
	prev := d.current
	d.current = replicas
	return driver.Result{Previous: prev, Replicas: replicas}, nil
}

func (d *recordingDriver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed++
	return nil
}

func (d *recordingDriver) calls() []scaleCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.scales)
}

// TestReconcileScales: observe, decide, record under the term's token,
// then (and only then) the BeforeScale hook and the driver call, and the
// driver's answer recorded.
func TestReconcileScales(t *testing.T) {
	h := newHarness(t)
	h.put(t, "web")
	h.loop.Metrics.Add(time.Now(), metrics.Sample{Service: "web", Instance: "gateway-test", Name: "gateway_rps", Value: 45})
	var hooked bool
	h.loop.BeforeScale = func(name string, token int64) {
		hooked = true
		d := h.get("web").Status.LastDecision
		if d == nil || d.DesiredReplicas != 5 || d.Token != token || d.Actuation != nil {
			t.Errorf("at BeforeScale the last decision is %+v, want 1 → 5 recorded under token %d, not yet actuated", d, token)
		}
		if c := h.drv.calls(); len(c) != 0 {
			t.Errorf("driver called before BeforeScale: %+v", c)
		}
	}
	tm, _ := h.lead(t, h.loop, 7)
	after, err := tm.Reconcile(context.Background(), "web")
	if err != nil || after != 200*time.Millisecond {
		t.Fatalf("Reconcile(web) = %v, %v, want 200ms, nil", after, err)
	}
	if !hooked {
		t.Fatal("BeforeScale not called")
	}
	if c := h.drv.calls(); !slices.Equal(c, []scaleCall{{5, 7}}) {
		t.Fatalf("driver calls = %+v, want one: 5 under token 7", c)
	}
	d := h.get("web").Status.LastDecision
	if d.Actuation == nil || d.Actuation.Result == nil || d.Actuation.Result.Replicas != 5 || d.Observed["gateway_rps"] != 45 {
		t.Fatalf("last decision = %+v, want the driver's answer (5) and observed 45", d)
	}
	// At 5 replicas the load is on target: a decision, no driver call.
	if _, err := tm.Reconcile(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if c := h.drv.calls(); len(c) != 1 {
		t.Fatalf("driver calls = %+v after a steady reconcile, want still one", c)
	}

	// Gone: nothing to requeue, and its driver closed.
	h.apply(t, ledger.Command{Op: ledger.OpDelete, Name: "web"})
	after, err = tm.Reconcile(context.Background(), "web")
	if err != nil || after != 0 {
		t.Fatalf("Reconcile(deleted) = %v, %v, want 0, nil", after, err)
	}
	if h.drv.closed != 1 || len(tm.targets) != 0 {
		t.Fatalf("closed %d drivers, %d targets kept, want 1 and 0", h.drv.closed, len(tm.targets))
	}
}

// TestReconcileRecordsFailedObservation: an observation that fails is a
// decision that could not be made, recorded with HPA's condition, and
// the error is returned for the caller to log and back off.
func TestReconcileRecordsFailedObservation(t *testing.T) {
	h := newHarness(t)
	tm, _ := h.lead(t, h.loop, 1)
	tests := []struct {
		name      string
		spoil     func(l *Loop, d *recordingDriver)
		condition string
		reason    string
		message   string
	}{
		{"driver not built", func(l *Loop, _ *recordingDriver) {
			l.NewDriver = func(driver.Spec, driver.Deps) (driver.Driver, error) { return nil, errors.New("no such kind") }
		}, "AbleToScale", "FailedGetScale", "driver: no such kind"},
		{"count unreadable", func(_ *Loop, d *recordingDriver) { d.currentErr = errors.New("gone") },
			"AbleToScale", "FailedGetScale", "read the replica count: gone"},
		{"registry unreachable", func(l *Loop, _ *recordingDriver) {
			l.Registry = registryAt(t, "http://127.0.0.1:1")
		}, "ScalingActive", "FailedGetInstances", "list the instances of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loop := *h.loop
			drv := &recordingDriver{current: 1}
			loop.NewDriver = func(driver.Spec, driver.Deps) (driver.Driver, error) { return drv, nil }
			tt.spoil(&loop, drv)
			tm.Loop = &loop
			name := strings.ReplaceAll(tt.name, " ", "-")
			h.put(t, name)
			after, err := tm.Reconcile(context.Background(), name)
			if err == nil || !strings.Contains(err.Error(), tt.message) || after != 200*time.Millisecond {
				t.Fatalf("Reconcile = %v, %v, want 200ms and an error with %q", after, err, tt.message)
			}
			st := h.get(name).Status
			i := slices.IndexFunc(st.Conditions, func(c hpa.Condition) bool { return c.Type == tt.condition })
			if st.LastDecision == nil || !strings.Contains(st.LastDecision.Error, tt.message) || i < 0 || st.Conditions[i].Status || st.Conditions[i].Reason != tt.reason {
				t.Fatalf("status = %+v, want the failure recorded with %s false %s", st, tt.condition, tt.reason)
			}
			if c := drv.calls(); len(c) != 0 {
				t.Fatalf("driver calls = %+v, want none", c)
			}
		})
	}
}

// TestReconcileFencedEndsTerm: once a newer leader led, the old term's
// decision is refused, the term is deposed with errFenced and the driver
// is never called.
func TestReconcileFencedEndsTerm(t *testing.T) {
	h := newHarness(t)
	h.put(t, "web")
	h.loop.Metrics.Add(time.Now(), metrics.Sample{Service: "web", Instance: "gateway-test", Name: "gateway_rps", Value: 45})
	old, oldCtx := h.lead(t, h.loop, 1)
	next := *h.loop
	next.Replica = "r1"
	h.lead(t, &next, 2)
	_, err := old.Reconcile(oldCtx, "web")
	if !errors.Is(err, errFenced) {
		t.Fatalf("Reconcile under the old token = %v, want errFenced", err)
	}
	if cause := context.Cause(oldCtx); !errors.Is(cause, errFenced) {
		t.Fatalf("old term's cause = %v, want errFenced", cause)
	}
	if c := h.drv.calls(); len(c) != 0 {
		t.Fatalf("driver calls = %+v, want none", c)
	}
}

// TestFollowQueuesChanges: a term queues every scaler when it starts,
// then each one put or deleted, and nothing for its own decisions.
func TestFollowQueuesChanges(t *testing.T) {
	h := newHarness(t)
	h.put(t, "a")
	tm, ctx := h.lead(t, h.loop, 1)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- tm.follow(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("follow = %v after its context ended, want context.Canceled", err)
		}
	}()
	take := func(want string) {
		t.Helper()
		if k := get(t, tm.queue); k != want {
			t.Fatalf("queued %q, want %q", k, want)
		}
		tm.queue.Done(want)
	}
	take("a") // listed at the start
	h.put(t, "b")
	take("b")                                         // put
	if _, err := tm.Reconcile(ctx, "b"); err != nil { // a decision: not a change to follow
		t.Fatal(err)
	}
	h.apply(t, ledger.Command{Op: ledger.OpDelete, Name: "a"})
	take("a") // deleted
	if n := tm.queue.Len(); n != 0 {
		t.Fatalf("%d more keys queued, want none (a decision is no change to follow)", n)
	}
}
