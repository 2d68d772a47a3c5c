// Package discovery keeps the gateway's view of the services it routes
// to: one registry watch per service in use (never a lookup per request),
// feeding that service's balancer pool with its passing instances.
package discovery

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/registry/client"
)

// Discovery owns the watches. Pool starts one on first use; Run stops
// the ones no request used for IdleAfter.
type Discovery struct {
	Registry *client.Client
	Options  balancer.Options
	Logger   *slog.Logger
	// Self lists the host:port addresses that reach this gateway; an
	// instance at one of them is left out, so no route can loop back.
	Self []string
	// FirstWait bounds how long the first request for a service waits
	// for its first instance set. 0 means 2s.
	FirstWait time.Duration
	// IdleAfter stops a service's watch that no request used for that
	// long. 0 means 10m.
	IdleAfter time.Duration

	mu       sync.RWMutex
	ctx      context.Context // Run's; nil before Run
	services map[string]*service
	wg       sync.WaitGroup
}

type service struct {
	pool     *balancer.Pool
	ready    chan struct{} // closed at the first instance set
	once     sync.Once
	cancel   context.CancelFunc
	lastUsed atomic.Int64 // Unix nanoseconds
}

// Run serves watches until ctx ends, then stops them all.
func (d *Discovery) Run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	if d.services == nil {
		d.services = map[string]*service{}
	}
	d.mu.Unlock()
	idle := cmpOr(d.IdleAfter, 10*time.Minute)
	tick := time.NewTicker(min(idle/2, time.Minute))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.mu.Lock()
			for name, s := range d.services {
				s.cancel()
				delete(d.services, name)
			}
			d.mu.Unlock()
			d.wg.Wait()
			return
		case <-tick.C:
			d.mu.Lock()
			for name, s := range d.services {
				if time.Since(time.Unix(0, s.lastUsed.Load())) > idle {
					s.cancel()
					delete(d.services, name)
				}
			}
			d.mu.Unlock()
		}
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Pool returns the service's pool, starting its watch if needed and
// waiting (up to FirstWait or ctx) for the first instance set. The pool
// may be empty: the service has no passing instance.
func (d *Discovery) Pool(ctx context.Context, name string) *balancer.Pool {
	d.mu.RLock()
	s := d.services[name]
	d.mu.RUnlock()
	if s == nil {
		s = d.start(name)
	}
	s.lastUsed.Store(time.Now().UnixNano())
	select {
	case <-s.ready:
	default:
		t := time.NewTimer(cmpOr(d.FirstWait, 2*time.Second))
		defer t.Stop()
		select {
		case <-s.ready:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return s.pool
}

// start starts a service's watch unless another request just did.
func (d *Discovery) start(name string) *service {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.services[name]; s != nil {
		return s
	}
	if d.ctx == nil || d.ctx.Err() != nil {
		// Not running: nothing to route to.
		s := &service{pool: balancer.NewPool(d.Options), ready: make(chan struct{}), cancel: func() {}}
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

func (d *Discovery) watch(ctx context.Context, name string, s *service) {
	self := map[string]bool{}
	for _, a := range d.Self {
		self[a] = true
	}
	_ = d.Registry.Watch(ctx, name, client.Query{Status: catalog.Passing}, func(set catalog.InstanceSet) {
		list := make([]balancer.Instance, 0, len(set.Instances))
		for _, inst := range set.Instances {
			if self[net.JoinHostPort(inst.Address, strconv.Itoa(inst.Port))] {
				d.Logger.Warn("leaving out an instance at the gateway's own address", "service", name, "instance", inst.ID)
				continue
			}
			list = append(list, balancer.Instance{ID: inst.ID, Address: inst.Address, Port: inst.Port,
				Zone: inst.Zone, Version: inst.Version, Weight: inst.Weight})
		}
		s.pool.Update(list)
		s.once.Do(func() { close(s.ready) })
		d.Logger.Debug("instances updated", "service", name, "passing", len(list), "revision", set.Revision)
	})
}

// Pools returns the pools in use, by service, for metrics.
func (d *Discovery) Pools() map[string]*balancer.Pool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make(map[string]*balancer.Pool, len(d.services))
	for name, s := range d.services {
		out[name] = s.pool
	}
	return out
}
