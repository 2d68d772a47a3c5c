// Package discovery keeps the gateway's view of the services it routes
// to: one blocking query on the registry's service list, and one registry
// watch per listed service in use (never a lookup per request), feeding
// that service's balancer pool with its passing instances. What it holds
// is bounded by what the registry holds, never by what clients ask for: a
// name the registry does not list costs nothing.
package discovery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// Discovery owns the list query and the watches. Pool starts a listed
// service's watch on first use; Run follows the list, stops the watches
// of services that left it and those no request used for IdleAfter.
type Discovery struct {
	// Registry is given every registry replica (STEWARD_REGISTRY_URL):
	// the list query and the watches move to another when the one in use
	// fails, and carry on from their last index there.
	Registry sdk.Services
	Options  balancer.Options
	Logger   *slog.Logger
	// Self lists the host:port addresses that reach this gateway; an
	// instance at one of them is left out, so no route can loop back.
	Self []string
	// FirstWait bounds how long a request waits for the first service
	// list, and for a service's first instance set. 0 means 2s.
	FirstWait time.Duration
	// IdleAfter stops a service's watch that no request used for that
	// long. 0 means 10m.
	IdleAfter time.Duration
	// ListWait is how long one blocking query on the service list waits
	// for a change. 0 means 5m, the registry's longest.
	ListWait time.Duration
	// ListEvery is the least time between two reads of the service list.
	// The list's index moves with every change to any instance, so on a
	// busy registry the query would answer at once, again and again;
	// waiting gathers those changes into one read. 0 means 500ms, the
	// longest a new service waits to be routed.
	ListEvery time.Duration

	mu       sync.RWMutex
	ctx      context.Context // Run's; nil before Run
	known    map[string]bool // the services the registry lists
	listed   chan struct{}   // closed once the first list arrived
	services map[string]*service
	wg       sync.WaitGroup
	once     sync.Once
	empty    *balancer.Pool // what an unknown service routes to
}

type service struct {
	pool     *balancer.Pool
	ready    chan struct{} // closed at the first instance set
	once     sync.Once
	cancel   context.CancelFunc
	lastUsed atomic.Int64 // Unix nanoseconds
}

func (d *Discovery) init() {
	d.once.Do(func() {
		d.listed = make(chan struct{})
		d.known = map[string]bool{}
		d.services = map[string]*service{}
		d.empty = balancer.NewPool(d.Options)
	})
}

// Run follows the service list and serves watches until ctx ends, then
// stops them all.
func (d *Discovery) Run(ctx context.Context) {
	d.init()
	d.mu.Lock()
	d.ctx = ctx
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.followList(ctx)
	}()
	idle := cmpOr(d.IdleAfter, 10*time.Minute)
	tick := time.NewTicker(min(idle/2, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for name := range d.services {
				d.stop(name)
			}
			d.mu.Unlock()
			d.wg.Wait()
			return
		case <-tick.C:
			d.mu.Lock()
			for name, s := range d.services {
				if time.Since(time.Unix(0, s.lastUsed.Load())) > idle {
					d.stop(name)
				}
			}
			d.mu.Unlock()
		}
	}
}

// stop ends a service's watch; d.mu is held.
func (d *Discovery) stop(name string) {
	d.services[name].cancel()
	delete(d.services, name)
}

// followList keeps known equal to the registry's service list: a
// blocking query that answers at each change, retried with backoff while
// the registry cannot be reached.
func (d *Discovery) followList(ctx context.Context) {
	wait, every := cmpOr(d.ListWait, 5*time.Minute), cmpOr(d.ListEvery, 500*time.Millisecond)
	var index int64
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		// A connection that died without a word must not hold the
		// query forever: give the registry its wait and a margin.
		qctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
		next := time.After(every)
		list, at, err := d.Registry.ListAfter(qctx, index, wait)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.Logger.Warn("the registry's service list could not be read; retrying", "err", err, "in", backoff)
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if at < index {
			// The registry's index went back (a replica behind the
			// last one asked, or a restored one): start over.
			at = 0
		}
		index = at
		d.setKnown(list)
		select {
		case <-ctx.Done():
		case <-next:
		}
	}
}

// setKnown takes a new service list: a service that left it has its watch
// stopped (its instances are gone, and a request for it is now a 404).
func (d *Discovery) setKnown(list []api.ServiceSummary) {
	known := make(map[string]bool, len(list))
	for _, svc := range list {
		known[svc.Name] = true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.known = known
	for name := range d.services {
		if !known[name] {
			d.stop(name)
		}
	}
	select {
	case <-d.listed:
	default:
		close(d.listed)
		d.Logger.Info("service list read from the registry", "services", len(list))
	}
}

// ErrNoList is Ready's answer until the first service list arrived.
var ErrNoList = errors.New("waiting for the registry's service list")

// Ready reports whether the gateway has the registry's service list.
func (d *Discovery) Ready() error {
	d.init()
	select {
	case <-d.listed:
		return nil
	default:
		return ErrNoList
	}
}

// Known reports whether the registry lists service, waiting (up to
// FirstWait or ctx) for the first list if there is none yet.
func (d *Discovery) Known(ctx context.Context, service string) bool {
	d.init()
	d.await(ctx, d.listed)
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.known[service]
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Pool returns the service's pool, starting its watch if needed and
// waiting (up to FirstWait or ctx) for the first instance set. The pool
// may be empty: the service has no passing instance, or the registry
// does not list it (then no watch is started).
func (d *Discovery) Pool(ctx context.Context, name string) *balancer.Pool {
	if !d.Known(ctx, name) {
		return d.empty
	}
	d.mu.RLock()
	s := d.services[name]
	d.mu.RUnlock()
	if s == nil {
		s = d.start(name)
	}
	s.lastUsed.Store(time.Now().UnixNano())
	d.await(ctx, s.ready)
	return s.pool
}

// await waits until ch is closed, for FirstWait at most, or until ctx
// ends.
func (d *Discovery) await(ctx context.Context, ch <-chan struct{}) {
	select {
	case <-ch:
		return
	default:
	}
	t := time.NewTimer(cmpOr(d.FirstWait, 2*time.Second))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// start starts a listed service's watch unless another request just did.
func (d *Discovery) start(name string) *service {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.services[name]; s != nil {
		return s
	}
	if d.ctx == nil || d.ctx.Err() != nil || !d.known[name] {
		// Not running, or the service just left the list: nothing to
		// route to.
		s := &service{pool: d.empty, ready: make(chan struct{}), cancel: func() {}}
		close(s.ready)
		return s
	}
	wctx, cancel := context.WithCancel(d.ctx)
	s := &service{pool: balancer.NewPool(d.Options), ready: make(chan struct{}), cancel: cancel}
	d.services[name] = s
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.watch(wctx, name, s)
	}()
	return s
}

// watch feeds s's pool with the passing instances of service name until
// ctx ends. The SDK's watch resumes a broken stream on its own; one that
// ends with an error (a token refused, say) is started again, with
// backoff, as the service's instances must keep being followed.
func (d *Discovery) watch(ctx context.Context, name string, s *service) {
	self := map[string]bool{}
	for _, a := range d.Self {
		self[a] = true
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		for set, err := range d.Registry.Watch(ctx, name, sdk.Query{Status: api.Passing}) {
			if err != nil {
				if ctx.Err() == nil {
					d.Logger.Warn("the registry's watch of a service failed; retrying", "service", name, "err", err, "in", backoff)
				}
				break
			}
			backoff = 100 * time.Millisecond
			list := d.instances(name, set.Instances, self)
			s.pool.Update(list)
			s.once.Do(func() { close(s.ready) })
			d.Logger.Debug("instances updated", "service", name, "passing", len(list), "revision", set.Revision)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// instances are a service's instances as its balancer pool takes them,
// without those at one of the gateway's own addresses.
func (d *Discovery) instances(name string, set []api.Instance, self map[string]bool) []balancer.Instance {
	list := make([]balancer.Instance, 0, len(set))
	for _, inst := range set {
		if self[net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port))] {
			d.Logger.Warn("leaving out an instance at the gateway's own address", "service", name, "instance", inst.Id)
			continue
		}
		scheme := "http"
		if inst.Metadata[sdk.SchemeKey] == "https" {
			scheme = "https"
		}
		list = append(list, balancer.Instance{ID: inst.Id, Address: inst.Address, Port: inst.Port,
			Zone: deref(inst.Zone), Version: deref(inst.Version), Scheme: scheme, Weight: inst.Weight})
	}
	return list
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Pools returns the pools in use, by service, for metrics: one per
// watch.
func (d *Discovery) Pools() map[string]*balancer.Pool {
	d.init()
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make(map[string]*balancer.Pool, len(d.services))
	for name, s := range d.services {
		out[name] = s.pool
	}
	return out
}

// Listed is how many services the registry lists.
func (d *Discovery) Listed() int {
	d.init()
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.known)
}
