// Package control is the scaler's reconcile loop. Every replica runs it;
// it campaigns in the election service and only the leader reconciles,
// as a Kubernetes controller does: a work queue of scaler names, fed by
// the log's put and deleted events and by each scaler's sync period, and
// workers that Reconcile one name at a time. Reconcile reads the
// driver's replica count, the service's instances from the registry and
// the metrics (observe), calls hpa.Decide (decide), records the
// decision in the log under the term's fencing token (record) and, when
// the decision scales, calls the driver with that token and records what
// the driver did (actuate). A scaler whose template changed has a
// rollout (rollout.go): it is stepped every rolloutTick between
// decisions, each step recorded as an intent before it is acted on.
//
// Fencing, in three layers. The log refuses a decision or an actuation
// whose token is older than the newest leader's (ledger.Machine), so a
// deposed leader cannot record anything once its successor has; a driver
// is called only after the decision it carries out was recorded, and
// only while the leadership's Done is open; and the driver refuses a
// token older than the newest it saw, on its side (the webhook's receiver
// gets the token too). The remaining window, a leader paused between its
// record and its driver call for longer than the lease's margin, is closed
// only by receivers that fence, as Kleppmann's argument says it must be.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// Loop is one replica's control loop.
type Loop struct {
	Log     *qlog.Log
	Machine *ledger.Machine
	// Elections campaigns for Election as Replica with lease TTL.
	Elections sdk.Elections
	Election  string
	Replica   string
	TTL       time.Duration
	// Registry lists the instances of the scaled services.
	Registry sdk.Services
	Metrics  *metrics.Store
	// ScrapeClient carries the scrapes of instances' metrics (the
	// Scraper's own client if nil).
	ScrapeClient *http.Client
	// DriverClient carries the webhook drivers' calls (driver.Deps.
	// HTTPClient; the driver's own client if nil).
	DriverClient *http.Client
	// NewDriver builds a scaler's driver (driver.New if nil).
	NewDriver func(driver.Spec, driver.Deps) (driver.Driver, error)
	Logger    *slog.Logger
	// Now reads the clock (time.Now if nil).
	Now func() time.Time
	// By returns the id of the token the loop runs with, asked at every
	// command the loop proposes, which records it as its By (none if
	// nil). It is asked each time, not once, because the token can be
	// revoked or the auth state not yet read.
	By func(ctx context.Context) string
	// BeforeScale, if set, is called after a decision that scales was
	// recorded and the leadership checked, right before the driver call:
	// tests pause a leader there.
	BeforeScale func(name string, token int64)
	// BeforeRolloutAction, if set, is called after a rollout's intent was
	// recorded and the leadership checked, right before the driver acts
	// on it: tests depose a leader there.
	BeforeRolloutAction func(name string, token int64, act ledger.Action)
	// Drain is how long an instance a rollout stops is out of the
	// registry before it is stopped (DefaultDrain if 0).
	Drain time.Duration
	// Routes is the config service, where a canary's traffic weights
	// are written as a gateway route document under the leadership's
	// fence (a canary cannot run without it).
	Routes *sdk.Client
}

// Run campaigns and, while this replica leads, reconciles; it returns
// when ctx ends.
func (l *Loop) Run(ctx context.Context) {
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lead, err := l.Elections.Campaign(ctx, l.Election, l.Replica, sdk.CampaignOptions{TTL: l.TTL, Value: map[string]string{"replica": l.Replica}})
		if err != nil {
			if ctx.Err() == nil {
				l.Logger.Warn("scaler campaign failed", "election", l.Election, "err", err)
				sleep(ctx, backoff)
				backoff = min(2*backoff, 5*time.Second)
			}
			continue
		}
		backoff = 100 * time.Millisecond
		l.Logger.Info("scaler leadership won", "election", l.Election, "token", lead.Token(), "term", lead.Term())
		err = l.lead(ctx, lead)
		l.Logger.Info("scaler leadership over", "token", lead.Token(), "why", err)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		_ = lead.Resign(rctx)
		cancel()
	}
}

// Reconciliation is driven by a work queue of scaler names, as a
// Kubernetes controller's is: a name is queued when the scaler is put or
// deleted (the log's events), when its sync period has passed since its
// last reconcile, and after an error with a backoff of its own.
const (
	// workers is how many scalers are reconciled at once; the queue
	// never hands one scaler to two of them.
	workers = 8
	// retryBase and retryLimit bound the backoff after a failed
	// reconcile; a scaler is retried no later than its sync period.
	retryBase  = 100 * time.Millisecond
	retryLimit = 5 * time.Minute
)

// term is one leadership: its token and what its workers share.
type term struct {
	*Loop
	token int64
	// fence is the leadership's fence (sdk.Leadership.Fence): writes to
	// other services carry it, so a deposed leader's are refused.
	fence string
	done  <-chan struct{}
	// depose ends the term early: the log refused this token, or
	// cannot be watched.
	depose context.CancelCauseFunc
	queue  *queue

	mu sync.Mutex
	// targets holds what the term keeps per scaler between reconciles;
	// a target's fields are only touched by the worker holding its name.
	targets map[string]*target
}

// target is what a term keeps for one scaler between its reconciles.
type target struct {
	drv driver.Driver
	// drvSpec is the spec drv was built from, as JSON.
	drvSpec []byte
	// scraper is this scaler's own, so that its counter memory covers
	// exactly the service's instances.
	scraper *metrics.Scraper
	// nextDecide is when the next decision is due, for the generation
	// decidedGen; a rollout is stepped more often than that.
	nextDecide time.Time
	decidedGen int64
	// lastReport is the last rollout report recorded, as JSON.
	lastReport string
	// judgedAt is when the term last judged the scaler's canary.
	judgedAt time.Time
	// splitClearedFor is the rolling update whose service this term has
	// cleared of a canary's traffic split.
	splitClearedFor int64
	// splitService is the service whose traffic a canary of the scaler
	// splits (weights in force), to remove the split if the scaler is
	// deleted mid-rollout.
	splitService string
}

// errFenced ends a term whose token the log refused.
var errFenced = errors.New("the log has seen a newer leader")

func newTerm(l *Loop, token int64, fence string, done <-chan struct{}, depose context.CancelCauseFunc) *term {
	return &term{Loop: l, token: token, fence: fence, done: done, depose: depose,
		queue: newQueue(retryBase, retryLimit), targets: map[string]*target{}}
}

// lead reconciles every scaler until the leadership ends.
func (l *Loop) lead(ctx context.Context, lead *sdk.Leadership) error {
	lctx, depose := context.WithCancelCause(ctx)
	defer depose(nil)
	go func() {
		select {
		case <-lead.Done():
			depose(lead.Err())
		case <-lctx.Done():
		}
	}()
	t := newTerm(l, lead.Token(), lead.Fence(), lctx.Done(), depose)
	// The first command of a term raises the fence, so the previous
	// leader's late commands are refused from here on, and it waits for
	// this replica to have applied everything ordered before it.
	if _, err := t.propose(lctx, ledger.Command{Op: ledger.OpLead}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() { t.work(lctx) })
	}
	// follow returns when the term ends, or ends it: a log that cannot
	// be watched leaves nothing to reconcile from.
	depose(t.follow(lctx))
	t.queue.ShutDown()
	wg.Wait()
	t.closeAll()
	return context.Cause(lctx)
}

// follow queues every scaler, then each one the log says was put or
// deleted, until ctx ends or the log fails. A watch that fell behind is
// started again, and everything queued again: level-based, a missed
// event costs one reconcile, never a scaler forgotten.
func (t *term) follow(ctx context.Context) error {
	for {
		// The watch starts before the listing, so that nothing put in
		// between is missed.
		w, err := t.Log.Watch(0, func(ev qlog.Event) bool { return ev.Type == ledger.EventPut || ev.Type == ledger.EventDeleted })
		if err != nil {
			return fmt.Errorf("watch the scalers: %w", err)
		}
		var names []string
		if err := t.Log.Read(ctx, qlog.Serializable, func(int64) error { names = t.Machine.Names(); return nil }); err != nil {
			return fmt.Errorf("list the scalers: %w", err)
		}
		for _, n := range names {
			t.queue.Add(n)
		}
		for {
			evs, err := w.NextRevision(ctx)
			if errors.Is(err, qlog.ErrWatchLagged) {
				break
			}
			if err != nil {
				return fmt.Errorf("watch the scalers: %w", err)
			}
			for _, ev := range evs {
				t.queue.Add(ev.Key)
			}
		}
	}
}

// work reconciles the scalers the queue hands it until the queue shuts
// down. It is the one place a failed reconcile is logged.
func (t *term) work(ctx context.Context) {
	for {
		name, ok := t.queue.Get()
		if !ok {
			return
		}
		after, err := t.Reconcile(ctx, name)
		if err != nil {
			if ctx.Err() == nil {
				t.Logger.Warn("scaler reconcile failed", "scaler", name, "token", t.token, "err", err)
			}
			// Of the two delays the earlier wins: the backoff, but
			// never longer than the sync period.
			t.queue.AddRateLimited(name)
		} else {
			t.queue.Forget(name)
		}
		if after > 0 {
			t.queue.AddAfter(name, after)
		}
		t.queue.Done(name)
	}
}

// Reconcile makes one decision for the named scaler and carries it out:
// observe (the driver's count, the registry's instances, the metrics),
// decide, record the decision under the term's token and, when it was
// recorded and scales, actuate. requeueAfter is the scaler's sync
// period, or 0 when it is gone. An observation that fails is recorded
// as a decision that could not be made, with HPA's condition for it, and
// returned.
func (t *term) Reconcile(ctx context.Context, name string) (requeueAfter time.Duration, err error) {
	var (
		work ledger.Work
		ok   bool
	)
	if err := t.Log.Read(ctx, qlog.Serializable, func(int64) error { work, ok = t.Machine.Work(name); return nil }); err != nil {
		return 0, fmt.Errorf("read the scaler: %w", err)
	}
	if !ok {
		return 0, t.forget(ctx, name)
	}
	requeueAfter = time.Duration(work.Spec.SyncPeriod)
	if requeueAfter <= 0 {
		requeueAfter = hpa.DefaultSyncPeriod
	}
	tg := t.target(name)
	if cs := work.Rollout.CanaryStatus(); cs != nil && len(cs.Weights) > 0 && work.Rollout.Active() {
		tg.splitService = work.Spec.Service
	}
	if rolling(work) {
		if due := tg.nextDecide.Sub(t.now()); due > 0 && tg.decidedGen == work.Generation {
			// Between decisions: only the rollout, at the count the
			// last decision set.
			drv, err := t.driver(tg, name, work)
			if err == nil {
				err = t.rollOut(ctx, tg, drv, name, work, work.Status.DesiredReplicas)
			}
			return min(due, rolloutTick), err
		}
	}
	obs, err := t.observe(ctx, tg, name, work)
	if oe, ok := errors.AsType[*observeError](err); ok {
		return requeueAfter, t.recordFailure(ctx, name, work, oe)
	}
	if err != nil {
		return requeueAfter, err
	}
	d, st := decide(work, obs)
	rev, err := t.record(ctx, name, work, obs, d, st)
	if err != nil {
		return requeueAfter, err
	}
	tg.nextDecide, tg.decidedGen = t.now().Add(requeueAfter), work.Generation
	if rolling(work) {
		// The rollout carries the count out: new instances up to it,
		// old ones down to none.
		if _, ok := obs.drv.(versioned); ok || rev == 0 {
			return min(requeueAfter, rolloutTick), t.rollOut(ctx, tg, obs.drv, name, work, d.DesiredReplicas)
		}
		err = t.rollOut(ctx, tg, obs.drv, name, work, d.DesiredReplicas)
		if err != nil || !d.Scale() {
			return min(requeueAfter, rolloutTick), err
		}
	}
	if f, ok := obs.drv.(following); ok && targetTemplate(work).Image != "" && !rolling(work) {
		// Outside a rollout the workload is kept on the spec's image
		// (the first PUT's, or one changed behind the scaler's back); a
		// patch only when it differs.
		if _, err := f.RollOut(ctx, targetTemplate(work), t.token); err != nil {
			return requeueAfter, fmt.Errorf("set the image: %w", err)
		}
	}
	if rev == 0 || !d.Scale() {
		return requeueAfter, nil
	}
	return requeueAfter, t.actuate(ctx, obs.drv, name, work.Spec.Service, d, rev)
}

// observation is what a decision is made from.
type observation struct {
	drv driver.Driver
	in  hpa.Input
	// observed is each metric's service-wide quantity, recorded with
	// the decision.
	observed map[string]float64
}

// observeError is an observation that failed, with the HPA condition
// that says so in the status.
type observeError struct {
	condition, reason string
	err               error
}

func (e *observeError) Error() string { return e.err.Error() }
func (e *observeError) Unwrap() error { return e.err }

// observe reads the scaler's driver, its service's instances in the
// registry and their metrics.
func (t *term) observe(ctx context.Context, tg *target, name string, work ledger.Work) (observation, error) {
	drv, err := t.driver(tg, name, work)
	if err != nil {
		return observation{}, &observeError{"AbleToScale", "FailedGetScale", fmt.Errorf("driver: %w", err)}
	}
	listed, _, err := t.Registry.Instances(ctx, work.Spec.Service, sdk.Query{})
	if err != nil {
		return observation{}, &observeError{"ScalingActive", "FailedGetInstances", fmt.Errorf("list the instances of %s in the registry: %w", work.Spec.Service, err)}
	}
	instances := catalogInstances(listed)
	current, err := drv.Current(ctx)
	switch {
	case errors.Is(err, driver.ErrUnknown):
		// A webhook that has not been acknowledged yet: the registry's
		// count is the best there is.
		current = len(instances)
	case err != nil:
		return observation{}, &observeError{"AbleToScale", "FailedGetScale", fmt.Errorf("read the replica count: %w", err)}
	}
	if _, ok := drv.(versioned); ok && work.Rollout.Active() && work.Status.DesiredReplicas > 0 {
		// Mid-rollout the driver runs the surge too: the count that
		// scales is the one in force, as a Deployment's spec.replicas.
		current = work.Status.DesiredReplicas
	}
	now := notBefore(t.now(), work.State)
	if tg.scraper == nil {
		tg.scraper = metrics.NewScraper(t.ScrapeClient)
	}
	samples, errs := tg.scraper.Scrape(ctx, instances, now)
	// A failed scrape is not a failed observation: that instance's
	// metrics are missing, and Decide works with what there is.
	for _, e := range errs {
		t.Logger.Debug("scrape failed", "scaler", name, "err", e)
	}
	t.Metrics.Add(now, samples...)
	keep := make(map[string]bool, len(instances))
	for _, inst := range instances {
		keep[inst.ID] = true
	}
	tg.scraper.Forget(keep)
	obs := observation{drv: drv, observed: map[string]float64{},
		in: hpa.Input{Now: now, CurrentReplicas: current, Metrics: map[string]hpa.Observation{}}}
	if o, ok := drv.(interface{ OwnsReplicas() bool }); ok {
		obs.in.Owned = o.OwnsReplicas()
	}
	for _, inst := range instances {
		obs.in.Instances = append(obs.in.Instances, hpa.Instance{ID: inst.ID, Ready: inst.Status == catalog.Passing})
	}
	for _, m := range work.Spec.Metrics {
		o, ok := t.Metrics.Observe(now, work.Spec.Service, m, instances)
		if !ok {
			continue
		}
		obs.in.Metrics[m.Name] = o
		obs.observed[m.Name] = total(o)
	}
	return obs, nil
}

// decide is the pure step: the decision and the state it leaves.
func decide(work ledger.Work, obs observation) (hpa.Decision, hpa.State) {
	return hpa.Decide(work.Spec.Spec, work.State, obs.in)
}

// record records the decision under the term's token and returns its
// revision, or 0 when the log did not record it: the spec changed since
// it was read (stale) or the scaler is gone, and the next reconcile
// decides afresh.
func (t *term) record(ctx context.Context, name string, work ledger.Work, obs observation, d hpa.Decision, st hpa.State) (int64, error) {
	res, err := t.propose(ctx, ledger.Command{Op: ledger.OpDecide, Name: name, Generation: work.Generation, SpecRevision: work.SpecRevision,
		Decision: &ledger.Decision{Observed: obs.observed, Decision: d}, State: &st})
	if err != nil {
		return 0, err
	}
	t.Logger.Debug("decided", "scaler", name, "token", t.token, "status", res.Status, "current", d.CurrentReplicas, "desired", d.DesiredReplicas, "reason", d.Reason)
	if res.Status != ledger.Recorded || res.Scaler == nil || res.Scaler.Status.LastDecision == nil {
		return 0, nil
	}
	return res.Scaler.Status.LastDecision.Revision, nil
}

// actuate calls the driver to carry out the decision recorded at rev,
// while the term lasts, and records what the driver did.
func (t *term) actuate(ctx context.Context, drv driver.Driver, name, service string, d hpa.Decision, rev int64) error {
	select {
	case <-t.done:
		return context.Cause(ctx)
	default:
	}
	if t.BeforeScale != nil {
		t.BeforeScale(name, t.token)
	}
	act := ledger.Actuation{Replicas: d.DesiredReplicas}
	r, err := drv.Scale(ctx, d.DesiredReplicas, t.token)
	if err != nil {
		act.Error = err.Error()
		err = fmt.Errorf("scale to %d: %w", d.DesiredReplicas, err)
	} else {
		act.Result = &r
		t.Logger.Info("scaled", "scaler", name, "token", t.token, "service", service, "from", r.Previous, "to", r.Replicas, "reason", d.Reason)
	}
	// Record the outcome even if the term just ended: the log refuses it
	// then, and the successor reads the count from the driver.
	_, perr := t.propose(context.WithoutCancel(ctx), ledger.Command{Op: ledger.OpActuate, Name: name, DecisionRevision: rev, Actuation: &act})
	return errors.Join(err, perr)
}

// recordFailure records a decision that could not be made (the driver
// could not be built or read, the registry could not be asked), so that
// the status says why, and returns the cause with any error recording
// it.
func (t *term) recordFailure(ctx context.Context, name string, work ledger.Work, cause *observeError) error {
	d := hpa.Decision{At: notBefore(t.now(), work.State), CurrentReplicas: work.Status.CurrentReplicas, DesiredReplicas: work.Status.CurrentReplicas,
		Reason: "no decision: " + cause.Error(), Error: cause.Error(),
		Conditions: []hpa.Condition{{Type: cause.condition, Status: false, Reason: cause.reason, Message: cause.Error()}}}
	_, err := t.propose(ctx, ledger.Command{Op: ledger.OpDecide, Name: name, Generation: work.Generation, SpecRevision: work.SpecRevision,
		Decision: &ledger.Decision{Decision: d}, State: &work.State})
	return errors.Join(cause, err)
}

// propose sends a leader's command under this term's token and decodes
// the result; a fenced result deposes the term.
func (t *term) propose(ctx context.Context, c ledger.Command) (ledger.Result, error) {
	c.Replica, c.Token = t.Replica, t.token
	if t.By != nil {
		c.By = t.By(ctx)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return ledger.Result{}, err
	}
	res, err := t.Log.Propose(ctx, b, qlog.ProposeOptions{})
	if err != nil {
		return ledger.Result{}, err
	}
	var out ledger.Result
	if err := json.Unmarshal(res.Value, &out); err != nil {
		return ledger.Result{}, fmt.Errorf("decode result: %w", err)
	}
	if out.Status == ledger.Fenced {
		t.depose(errFenced)
		return out, fmt.Errorf("%w: %s", errFenced, out.Detail)
	}
	return out, nil
}

// target returns the named scaler's target, made if new.
func (t *term) target(name string) *target {
	t.mu.Lock()
	defer t.mu.Unlock()
	tg := t.targets[name]
	if tg == nil {
		tg = &target{}
		t.targets[name] = tg
	}
	return tg
}

// forget closes and drops what the term kept for a scaler that is gone.
// A canary's split of a scaler deleted mid-rollout is removed with it.
func (t *term) forget(ctx context.Context, name string) error {
	t.mu.Lock()
	tg := t.targets[name]
	delete(t.targets, name)
	t.mu.Unlock()
	if tg == nil {
		return nil
	}
	t.closeDriver(tg, name)
	if tg.splitService != "" && t.Routes != nil {
		if err := t.clearWeights(ctx, tg.splitService); err != nil {
			// Kept, so that the retry removes it.
			t.target(name).splitService = tg.splitService
			return err
		}
	}
	return nil
}

// closeAll closes every driver of the term, once its workers are done.
func (t *term) closeAll() {
	t.mu.Lock()
	targets := t.targets
	t.targets = map[string]*target{}
	t.mu.Unlock()
	for name, tg := range targets {
		t.closeDriver(tg, name)
	}
}

// driver returns the scaler's driver, built again when its spec changed
// other than in its template (a new template is rolled out by the same
// driver, which is told it).
func (t *term) driver(tg *target, name string, work ledger.Work) (driver.Driver, error) {
	spec := work.Spec
	b, _ := json.Marshal(spec.Driver.WithoutTemplate())
	if tg.drv != nil && string(b) == string(tg.drvSpec) {
		if td, ok := tg.drv.(templated); ok {
			td.SetTemplate(targetTemplate(work))
		}
		return tg.drv, nil
	}
	t.closeDriver(tg, name)
	newDriver := t.NewDriver
	if newDriver == nil {
		newDriver = driver.New
	}
	d, err := newDriver(spec.Driver, driver.Deps{Service: spec.Service, Logger: t.Logger.With("scaler", name), HTTPClient: t.DriverClient})
	if err != nil {
		return nil, err
	}
	tg.drv, tg.drvSpec = d, b
	if td, ok := d.(templated); ok {
		td.SetTemplate(targetTemplate(work))
	}
	return d, nil
}

// closeDriver closes tg's driver. A close that fails is logged: the
// scaler is gone or its driver replaced, and no caller could do more.
func (t *term) closeDriver(tg *target, name string) {
	if c, ok := tg.drv.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Logger.Warn("closing a driver failed", "scaler", name, "err", err)
		}
	}
	tg.drv, tg.drvSpec = nil, nil
}

func (t *term) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// notBefore returns now, or the newest time the state recorded if that
// is later: Decide's clock must not go backwards, and a new leader's
// clock may be behind its predecessor's.
func notBefore(now time.Time, st hpa.State) time.Time {
	latest := st.Since
	for _, r := range st.Recommendations {
		latest = later(latest, r.At)
	}
	for _, evs := range [][]hpa.ScaleEvent{st.ScaleUpEvents, st.ScaleDownEvents} {
		for _, e := range evs {
			latest = later(latest, e.At)
		}
	}
	return later(now, latest)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// total is an observation's service-wide quantity: its value, or the sum
// of its samples.
func total(o hpa.Observation) float64 {
	if o.Value != nil {
		return *o.Value
	}
	var sum float64
	for _, s := range o.Samples {
		sum += s.Value
	}
	return sum
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// catalogInstances are the registry's instances as the scaler's metrics
// take them: what scraping and matching samples read (where an instance
// is and how to reach it, its identity and its status).
func catalogInstances(list []api.Instance) []catalog.Instance {
	out := make([]catalog.Instance, len(list))
	for i, in := range list {
		out[i] = catalog.Instance{Service: in.Service, ID: in.Id, Address: in.Address, Port: in.Port,
			Tags: in.Tags, Metadata: in.Metadata, Weight: in.Weight, Status: catalog.Status(in.Status)}
		if in.Zone != nil {
			out[i].Zone = *in.Zone
		}
		if in.Version != nil {
			out[i].Version = *in.Version
		}
	}
	return out
}
