// Package control is the scaler's reconcile loop. Every replica runs it;
// it campaigns in the election service and only the leader reconciles.
// For each scaler, once per sync period, the leader reads the driver's
// replica count, the service's instances from the registry and the
// metrics, calls autoscale.Decide, records the decision in the log under
// its fencing token and, when the decision scales, calls the driver with
// that token and records what the driver did.
//
// Fencing, in three layers. The log refuses a decision or an actuation
// whose token is older than the newest leader's (scalers.Machine), so a
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
	elections "github.com/stewardhq/steward/services/election/client"
	"github.com/stewardhq/steward/services/registry/catalog"
	registry "github.com/stewardhq/steward/services/registry/client"
	"github.com/stewardhq/steward/services/scaler/autoscale"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/metrics"
	"github.com/stewardhq/steward/services/scaler/scalers"
)

// Loop is one replica's control loop.
type Loop struct {
	Log     *qlog.Log
	Machine *scalers.Machine
	// Elections campaigns for Election as Replica with lease TTL.
	Elections *elections.Client
	Election  string
	Replica   string
	TTL       time.Duration
	// Registry lists the instances of the scaled services.
	Registry *registry.Client
	Metrics  *metrics.Store
	// ScrapeClient carries the scrapes of instances' metrics (the
	// Scraper's own client if nil).
	ScrapeClient *http.Client
	// NewDriver builds a scaler's driver (driver.New if nil).
	NewDriver func(driver.Spec, driver.Deps) (driver.Driver, error)
	Logger    *slog.Logger
	// Now reads the clock (time.Now if nil).
	Now func() time.Time
	// BeforeScale, if set, is called after a decision that scales was
	// recorded and the leadership checked, right before the driver call:
	// tests pause a leader there.
	BeforeScale func(name string, token int64)
}

// Run campaigns and, while this replica leads, reconciles; it returns
// when ctx ends.
func (l *Loop) Run(ctx context.Context) {
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		lead, err := l.Elections.Campaign(ctx, l.Election, l.Replica, elections.Options{TTL: l.TTL, Value: map[string]string{"replica": l.Replica}})
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

// leadership is what the workers of one term share.
type leadership struct {
	*Loop
	token int64
	done  <-chan struct{}
	// depose ends the term early: the log refused this token.
	depose context.CancelCauseFunc
}

// errFenced ends a term whose token the log refused.
var errFenced = errors.New("the log has seen a newer leader")

// lead reconciles every scaler until the leadership ends.
func (l *Loop) lead(ctx context.Context, lead *elections.Leadership) error {
	lctx, depose := context.WithCancelCause(ctx)
	defer depose(nil)
	go func() {
		select {
		case <-lead.Done():
			depose(lead.Err())
		case <-lctx.Done():
		}
	}()
	t := &leadership{Loop: l, token: lead.Token(), done: lctx.Done(), depose: depose}
	// The first command of a term raises the fence, so the previous
	// leader's late commands are refused from here on, and it waits for
	// this replica to have applied everything ordered before it.
	if _, err := t.propose(lctx, scalers.Command{Op: scalers.OpLead}); err != nil {
		return err
	}
	workers := map[string]*worker{}
	var wg sync.WaitGroup
	defer func() {
		for _, w := range workers {
			w.stop()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var names []string
		_ = l.Log.Read(lctx, qlog.Serializable, func(int64) error { names = l.Machine.Names(); return nil })
		keep := make(map[string]bool, len(names))
		for _, n := range names {
			keep[n] = true
			if w := workers[n]; w != nil {
				select {
				case <-w.exited:
					// It saw the scaler gone (deleted and put again
					// within a tick): a new one takes over.
				default:
					continue
				}
			}
			w := &worker{leadership: t, name: n, exited: make(chan struct{})}
			var wctx context.Context
			wctx, w.cancel = context.WithCancel(lctx)
			workers[n] = w
			wg.Add(1)
			go func() { defer wg.Done(); defer close(w.exited); w.run(wctx) }()
		}
		for n, w := range workers {
			if !keep[n] {
				w.stop()
				delete(workers, n)
			}
		}
		select {
		case <-lctx.Done():
			return context.Cause(lctx)
		case <-tick.C:
		}
	}
}

// propose sends a leader's command under this term's token and decodes
// the result; a fenced result deposes the term.
func (t *leadership) propose(ctx context.Context, c scalers.Command) (scalers.Result, error) {
	c.Replica, c.Token = t.Replica, t.token
	b, err := json.Marshal(c)
	if err != nil {
		return scalers.Result{}, err
	}
	res, err := t.Log.Propose(ctx, b, qlog.ProposeOptions{})
	if err != nil {
		return scalers.Result{}, err
	}
	var out scalers.Result
	if err := json.Unmarshal(res.Value, &out); err != nil {
		return scalers.Result{}, fmt.Errorf("decode result: %w", err)
	}
	if out.Status == scalers.Fenced {
		t.depose(errFenced)
		return out, fmt.Errorf("%w: %s", errFenced, out.Detail)
	}
	return out, nil
}

// worker reconciles one scaler for one term.
type worker struct {
	*leadership
	name   string
	cancel context.CancelFunc
	// exited is closed when run returns.
	exited chan struct{}
	drv    driver.Driver
	// drvSpec is the spec drv was built from, as JSON.
	drvSpec []byte
	// scraper is this scaler's own, so that its counter memory covers
	// exactly the service's instances.
	scraper *metrics.Scraper
}

func (w *worker) stop() { w.cancel() }

func (w *worker) run(ctx context.Context) {
	defer w.closeDriver()
	log := w.Logger.With("scaler", w.name, "token", w.token)
	for {
		var (
			work scalers.Work
			ok   bool
		)
		_ = w.Log.Read(ctx, qlog.Serializable, func(int64) error { work, ok = w.Machine.Work(w.name); return nil })
		if !ok {
			return
		}
		if err := w.sync(ctx, log, work); err != nil && ctx.Err() == nil {
			log.Warn("scaler sync failed", "err", err)
		}
		period := time.Duration(work.Spec.SyncPeriod)
		if period <= 0 {
			period = autoscale.DefaultSyncPeriod
		}
		if !sleep(ctx, period) {
			return
		}
	}
}

// sync makes one decision and carries it out.
func (w *worker) sync(ctx context.Context, log *slog.Logger, work scalers.Work) error {
	drv, err := w.driver(work.Spec)
	if err != nil {
		return w.recordFailure(ctx, work, "AbleToScale", "FailedGetScale", fmt.Errorf("driver: %w", err))
	}
	instances, _, err := w.Registry.Instances(ctx, work.Spec.Service, registry.Query{})
	if err != nil {
		return w.recordFailure(ctx, work, "ScalingActive", "FailedGetInstances", fmt.Errorf("list the instances of %s in the registry: %w", work.Spec.Service, err))
	}
	current, err := drv.Current(ctx)
	switch {
	case errors.Is(err, driver.ErrUnknown):
		// A webhook that has not been acknowledged yet: the registry's
		// count is the best there is.
		current = len(instances)
	case err != nil:
		return w.recordFailure(ctx, work, "AbleToScale", "FailedGetScale", fmt.Errorf("read the replica count: %w", err))
	}
	now := notBefore(w.now(), work.State)
	if w.scraper == nil {
		w.scraper = metrics.NewScraper(w.ScrapeClient)
	}
	samples, errs := w.scraper.Scrape(ctx, instances, now)
	for _, e := range errs {
		log.Debug("scrape failed", "err", e)
	}
	w.Metrics.Add(now, samples...)
	keep := make(map[string]bool, len(instances))
	for _, inst := range instances {
		keep[inst.ID] = true
	}
	w.scraper.Forget(keep)
	in := autoscale.Input{Now: now, CurrentReplicas: current, Metrics: map[string]autoscale.Observation{}}
	if o, ok := drv.(interface{ OwnsReplicas() bool }); ok {
		in.Owned = o.OwnsReplicas()
	}
	for _, inst := range instances {
		in.Instances = append(in.Instances, autoscale.Instance{ID: inst.ID, Ready: inst.Status == catalog.Passing})
	}
	observed := map[string]float64{}
	for _, m := range work.Spec.Metrics {
		obs, ok := w.Metrics.Observe(now, work.Spec.Service, m, instances)
		if !ok {
			continue
		}
		in.Metrics[m.Name] = obs
		observed[m.Name] = total(obs)
	}
	d, st := autoscale.Decide(work.Spec.Spec, work.State, in)
	res, err := w.propose(ctx, scalers.Command{Op: scalers.OpDecide, Name: w.name, Generation: work.Generation, SpecRevision: work.SpecRevision,
		Decision: &scalers.Decision{Observed: observed, Decision: d}, State: &st})
	if err != nil {
		return err
	}
	log.Debug("decided", "status", res.Status, "current", d.CurrentReplicas, "desired", d.DesiredReplicas, "reason", d.Reason)
	if res.Status != scalers.Recorded || res.Scaler == nil || res.Scaler.Status.LastDecision == nil {
		// Stale (the spec changed) or deleted: the next sync decides
		// afresh.
		return nil
	}
	if !d.Scale() {
		return nil
	}
	rev := res.Scaler.Status.LastDecision.Revision
	select {
	case <-w.done:
		return context.Cause(ctx)
	default:
	}
	if w.BeforeScale != nil {
		w.BeforeScale(w.name, w.token)
	}
	act := scalers.Actuation{Replicas: d.DesiredReplicas}
	r, err := drv.Scale(ctx, d.DesiredReplicas, w.token)
	if err != nil {
		act.Error = err.Error()
		log.Warn("driver call failed", "replicas", d.DesiredReplicas, "err", err)
	} else {
		act.Result = &r
		log.Info("scaled", "service", work.Spec.Service, "from", r.Previous, "to", r.Replicas, "reason", d.Reason)
	}
	// Record the outcome even if the term just ended: the log refuses it
	// then, and the successor reads the count from the driver.
	_, perr := w.propose(context.WithoutCancel(ctx), scalers.Command{Op: scalers.OpActuate, Name: w.name, DecisionRevision: rev, Actuation: &act})
	return errors.Join(err, perr)
}

// recordFailure records a decision that could not be made (the driver
// could not be built or read, the registry could not be asked), so that
// the status says why, with HPA's condition for it.
func (w *worker) recordFailure(ctx context.Context, work scalers.Work, condition, reason string, cause error) error {
	d := autoscale.Decision{At: notBefore(w.now(), work.State), CurrentReplicas: work.Status.CurrentReplicas, DesiredReplicas: work.Status.CurrentReplicas,
		Reason: "no decision: " + cause.Error(), Error: cause.Error(),
		Conditions: []autoscale.Condition{{Type: condition, Status: false, Reason: reason, Message: cause.Error()}}}
	_, err := w.propose(ctx, scalers.Command{Op: scalers.OpDecide, Name: w.name, Generation: work.Generation, SpecRevision: work.SpecRevision,
		Decision: &scalers.Decision{Decision: d}, State: &work.State})
	return errors.Join(cause, err)
}

// driver returns the scaler's driver, built again when its spec changed.
func (w *worker) driver(spec scalers.Spec) (driver.Driver, error) {
	b, _ := json.Marshal(spec.Driver)
	if w.drv != nil && string(b) == string(w.drvSpec) {
		return w.drv, nil
	}
	w.closeDriver()
	newDriver := w.NewDriver
	if newDriver == nil {
		newDriver = driver.New
	}
	d, err := newDriver(spec.Driver, driver.Deps{Service: spec.Service, Logger: w.Logger.With("scaler", w.name)})
	if err != nil {
		return nil, err
	}
	w.drv, w.drvSpec = d, b
	return d, nil
}

func (w *worker) closeDriver() {
	if c, ok := w.drv.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			w.Logger.Warn("closing a driver failed", "scaler", w.name, "err", err)
		}
	}
	w.drv, w.drvSpec = nil, nil
}

func (w *worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// notBefore returns now, or the newest time the state recorded if that
// is later: Decide's clock must not go backwards, and a new leader's
// clock may be behind its predecessor's.
func notBefore(now time.Time, st autoscale.State) time.Time {
	latest := st.Since
	for _, r := range st.Recommendations {
		latest = later(latest, r.At)
	}
	for _, evs := range [][]autoscale.ScaleEvent{st.ScaleUpEvents, st.ScaleDownEvents} {
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
func total(o autoscale.Observation) float64 {
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
