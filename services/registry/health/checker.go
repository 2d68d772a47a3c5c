package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// Checker runs this replica's share of the active checks and proposes the
// status changes it sees.
type Checker struct {
	Log       *qlog.Log
	Machine   *catalog.Machine
	ReplicaID string
	Presence  *Presence
	Prober    *Prober
	// Guard travels with every report (catalog.Guard); nil turns it off.
	Guard *catalog.Guard
	// Concurrency bounds the probes in flight.
	Concurrency int
	Logger      *slog.Logger
	// Registerer receives the checker's metrics; nil skips them.
	Registerer prometheus.Registerer
	// By returns the id of the token the replica runs with, asked at
	// every report proposed, which records it as the By of the instances
	// it changes (none if nil).
	By func(ctx context.Context) string
}

// reconcileEvery is how often the checker re-reads the catalog and the
// live replicas to adjust the checks it runs.
const reconcileEvery = 500 * time.Millisecond

// batchWindow is how long reports are gathered into one proposal.
const batchWindow = 50 * time.Millisecond

type runner struct {
	task   catalog.CheckTask
	cancel context.CancelFunc
}

type metrics struct {
	probes *prometheus.CounterVec
	owned  prometheus.Gauge
	writes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "steward_registry_probes_total",
			Help: "Active check probes run by this replica, by result."}, []string{"status"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "steward_registry_checks_owned",
			Help: "Active checks this replica is responsible for."}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{Name: "steward_registry_status_changes_proposed_total",
			Help: "Status changes this replica proposed from its probes."}),
	}
	if reg != nil {
		reg.MustRegister(m.probes, m.owned, m.writes)
	}
	return m
}

// Run runs checks until ctx ends, then waits for its probes to stop.
func (c *Checker) Run(ctx context.Context) {
	m := newMetrics(c.Registerer)
	sem := make(chan struct{}, max(c.Concurrency, 1))
	reports := make(chan catalog.Item, 256)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.propose(ctx, reports, m)
	}()
	running := map[string]*runner{}
	defer func() {
		for _, r := range running {
			r.cancel()
		}
		wg.Wait()
	}()
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	for {
		var tasks []catalog.CheckTask
		if err := c.Log.Read(ctx, qlog.Serializable, func(int64) error {
			tasks = c.Machine.ActiveChecks()
			return nil
		}); err == nil {
			c.reconcile(ctx, tasks, running, sem, reports, m, &wg)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.Presence.Changed():
		}
	}
}

// reconcile starts the checks this replica now owns and stops the rest.
func (c *Checker) reconcile(ctx context.Context, tasks []catalog.CheckTask, running map[string]*runner, sem chan struct{}, reports chan<- catalog.Item, m metrics, wg *sync.WaitGroup) {
	live := c.Presence.Live()
	owned := map[string]bool{}
	for _, t := range tasks {
		key := t.Key()
		if Owner(key, live) != c.ReplicaID {
			continue
		}
		owned[key] = true
		if r := running[key]; r != nil {
			if r.task.Revision == t.Revision {
				continue
			}
			r.cancel() // the check was redefined
		}
		rctx, cancel := context.WithCancel(ctx)
		running[key] = &runner{task: t, cancel: cancel}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(rctx, t, sem, reports, m)
		}()
	}
	for key, r := range running {
		if !owned[key] {
			r.cancel()
			delete(running, key)
		}
	}
	m.owned.Set(float64(len(running)))
}

// run probes one check every interval, starting at once (a check that just
// moved here must not wait), and reports a status that differs from the
// one the catalog holds.
func (c *Checker) run(ctx context.Context, t catalog.CheckTask, sem chan struct{}, reports chan<- catalog.Item, m metrics) {
	tick := time.NewTicker(t.Check.Interval.Std())
	defer tick.Stop()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		rep := c.Prober.Probe(ctx, t.Check)
		<-sem
		if ctx.Err() != nil {
			return
		}
		m.probes.WithLabelValues(string(rep.Status)).Inc()
		if len(rep.Output) > catalog.MaxOutputBytes {
			rep.Output = rep.Output[:catalog.MaxOutputBytes]
		}
		if c.differs(ctx, t, rep) {
			select {
			case reports <- catalog.Item{Service: t.Service, ID: t.ID, Since: t.Revision, Report: &rep}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// differs reports whether rep's status differs from what the catalog holds
// for the check (a held result counts as held).
func (c *Checker) differs(ctx context.Context, t catalog.CheckTask, rep catalog.Report) bool {
	var cur *catalog.Instance
	if err := c.Log.Read(ctx, qlog.Serializable, func(int64) error {
		cur = c.Machine.Instance(t.Service, t.ID)
		return nil
	}); err != nil || cur == nil || cur.CheckRevision != t.Revision {
		return false
	}
	held := cur.Status
	if cur.Held != nil {
		held = cur.Held.Status
	}
	return held != rep.Status || cur.Output == catalog.AwaitingFirstCheck
}

// propose gathers reports for batchWindow and proposes them as one
// command; a failed proposal is dropped, since the next probe finds the
// catalog still differing and reports again.
func (c *Checker) propose(ctx context.Context, reports <-chan catalog.Item, m metrics) {
	for {
		var batch []catalog.Item
		select {
		case <-ctx.Done():
			return
		case it := <-reports:
			batch = append(batch, it)
		}
		deadline := time.After(batchWindow)
	gather:
		for len(batch) < 512 {
			select {
			case it := <-reports:
				batch = append(batch, it)
			case <-deadline:
				break gather
			case <-ctx.Done():
				return
			}
		}
		var by string
		if c.By != nil {
			by = c.By(ctx)
		}
		cmd, _ := json.Marshal(catalog.Command{Op: "report", Items: batch, Guard: c.Guard, By: by})
		if _, err := c.Log.Propose(ctx, cmd, qlog.ProposeOptions{}); err != nil {
			if ctx.Err() == nil {
				c.Logger.Warn("proposing check results failed", "items", len(batch), "err", err)
			}
			continue
		}
		m.writes.Add(float64(len(batch)))
	}
}
