// Package balancer picks the upstream instance for each gateway request.
//
// A Pool holds one service's passing instances and chooses among them by
// policy (least-request, round-robin, ring-hash, peak-EWMA), preferring the
// request's or the gateway's zone, restricted to one version when a route
// splits traffic, and skipping the instances that passive outlier detection
// has ejected. Per-instance statistics (in-flight, latency, failures,
// ejection) live on the Endpoint and survive updates of the instance set.
//
// The package does no I/O and starts no goroutines: the proxy reports each
// request's start and outcome through Endpoint.Start and Endpoint.Done, and
// time comes from the injected clock.
package balancer

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

// Instance is one passing instance of a service.
type Instance struct {
	ID      string
	Address string
	Port    int
	Zone    string
	Version string
	// Scheme is how the instance is reached, "http" or "https" (the
	// registry's catalog.Instance.Scheme); empty is http.
	Scheme string
	// Weight is the instance's share of the traffic relative to the others,
	// 1 to 1000; 0 (or less) is 1 and more than 1000 is 1000.
	Weight int
}

const maxWeight = 1000

// Outlier configures passive outlier detection (Envoy's consecutive-5xx
// detector): an instance that fails Consecutive requests in a row leaves the
// pool for a while, longer each time it comes back and fails again.
type Outlier struct {
	// Consecutive is the number of consecutive failures (5xx or connection
	// failures) that ejects an instance; 0 is 5.
	Consecutive int
	// BaseEjection is the length of a first ejection; the n-th ejection in
	// a row lasts n times as long, up to MaxEjection. 0 is 30s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection; 0 is 5m.
	MaxEjection time.Duration
	// MaxEjectedShare is the share of the pool that may be ejected at once,
	// though one instance always may be unless it is the only one; 0 is 0.5.
	MaxEjectedShare float64
}

// Options configures a Pool.
type Options struct {
	Outlier Outlier
	// Zone is the gateway's zone, preferred when a request names none.
	Zone string
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// Request describes what one pick is for.
type Request struct {
	// Policy is a route.* policy name; "" (or an unknown name) is
	// least-request.
	Policy string
	// HashKey is the ring-hash key; empty falls back to least-request.
	HashKey string
	// Zone is the preferred zone; "" is the pool's Options.Zone, and both
	// empty is no preference.
	Zone string
	// Version restricts the pick to instances of this version; "" is any.
	Version string
	// Exclude lists the endpoints this request already tried: they are
	// avoided while any other candidate is available.
	Exclude []*Endpoint
}

// Pool balances one service's instances. It is safe for concurrent use.
//
// Pick works on an immutable snapshot of the instance set that Update
// replaces whole, so picking takes no lock except round-robin's.
type Pool struct {
	opt   Options
	epoch time.Time // zero of the pool clock, in nanoseconds since epoch
	state atomic.Pointer[state]
	// ejected counts the endpoints with an ejection not yet seen to expire;
	// while it is 0, Pick neither reads the clock nor checks ejections.
	ejected atomic.Int64
	mu      sync.Mutex // serializes Update and ejections

	_    [64]byte   // keep rrMu, taken by retries under round-robin, off the lines Pick reads
	rrMu sync.Mutex // guards Endpoint.rrCurrent
}

// NewPool returns an empty pool.
func NewPool(o Options) *Pool {
	if o.Now == nil {
		o.Now = time.Now
	}
	out := &o.Outlier
	if out.Consecutive <= 0 {
		out.Consecutive = 5
	}
	if out.BaseEjection <= 0 {
		out.BaseEjection = 30 * time.Second
	}
	if out.MaxEjection <= 0 {
		out.MaxEjection = 5 * time.Minute
	}
	if out.MaxEjectedShare <= 0 {
		out.MaxEjectedShare = 0.5
	}
	out.MaxEjectedShare = min(out.MaxEjectedShare, 1)
	p := &Pool{opt: o, epoch: o.Now()}
	p.state.Store(p.build(nil))
	return p
}

// clock is the pool's time: nanoseconds since NewPool on the injected clock
// (monotonic with time.Now).
func (p *Pool) clock() int64 { return int64(p.opt.Now().Sub(p.epoch)) }

// Update replaces the instance set. Endpoints whose ID is still present keep
// their statistics and their ejection (and pick up changed fields); removed
// ones leave the pool, and a later instance with their ID starts afresh.
// Instances without an ID are keyed by host:port; of two with the same ID the
// later wins.
func (p *Pool) Update(instances []Instance) {
	p.mu.Lock()
	defer p.mu.Unlock()

	latest := make(map[string]Instance, len(instances))
	for _, in := range instances {
		in.Weight = min(max(in.Weight, 1), maxWeight)
		latest[key(in)] = in
	}
	old := p.state.Load()
	kept := make(map[string]*Endpoint, len(old.eps))
	for _, e := range old.eps {
		kept[e.key] = e
	}
	eps := make([]*Endpoint, 0, len(latest))
	for k, in := range latest {
		e := kept[k]
		if e == nil {
			e = &Endpoint{pool: p, key: k}
		}
		delete(kept, k)
		e.set(in)
		eps = append(eps, e)
	}
	slices.SortFunc(eps, func(a, b *Endpoint) int { return cmp.Compare(a.key, b.key) })

	for _, e := range kept {
		// A request still in flight may call Done on a removed endpoint:
		// detached keeps it from being ejected and counted again.
		e.detached = true
		if u := e.until.Load(); u != 0 && e.until.CompareAndSwap(u, 0) {
			p.ejected.Add(-1)
		}
	}
	// Smooth round robin starts over on the new set, as nginx does on reload.
	p.rrMu.Lock()
	for _, e := range eps {
		e.rrCurrent = 0
	}
	p.rrMu.Unlock()

	p.state.Store(p.build(eps))
}

func key(in Instance) string {
	if in.ID != "" {
		return in.ID
	}
	return net.JoinHostPort(in.Address, strconv.Itoa(in.Port))
}

// Pick returns the endpoint for a request, or nil when the pool has no
// instance (of the requested version). Among the instances of the version
// it prefers, in order:
//
//  1. available ones (not ejected, not excluded) in the preferred zone;
//  2. available ones in any zone;
//  3. the least loaded one that is not ejected: the request has tried them
//     all, and trying one again beats failing;
//  4. Envoy's panic mode: every instance is ejected, so balance across them
//     anyway, still avoiding the excluded ones if it can.
//
// Within a step the policy chooses: least-request (the default) and
// peak-EWMA draw two and keep the less loaded; round-robin follows nginx's
// smooth weighted sequence; ring-hash keeps a HashKey on one instance while
// its load allows.
//
// Pick does not allocate, once the set's ring (ring-hash) or schedule
// (round-robin) is built by the first such pick after an Update.
func (p *Pool) Pick(r Request) *Endpoint {
	s := p.state.Load()
	g := s.any
	if r.Version != "" {
		if g = s.versions[r.Version]; g == nil {
			return nil
		}
	}
	if len(g.all.m) == 0 {
		return nil
	}
	pref := g.local
	if r.Zone != "" && r.Zone != p.opt.Zone {
		pref = g.zones[r.Zone]
	}
	if pref == g.all {
		pref = nil
	}
	f := filter{p: p, exclude: r.Exclude}
	if p.ejected.Load() != 0 {
		f.ejection = true
		f.clock()
	}
	if pref != nil {
		if e := p.pick(pref, &r, &f); e != nil {
			return e
		}
	}
	if e := p.pick(g.all, &r, &f); e != nil {
		return e
	}

	// Every candidate is ejected or excluded.
	if pref != nil {
		if e := pref.leastLoaded(&f); e != nil {
			return e
		}
	}
	if e := g.all.leastLoaded(&f); e != nil {
		return e
	}
	f.ejection = false
	if pref != nil {
		if e := p.pick(pref, &r, &f); e != nil {
			return e
		}
	}
	if e := p.pick(g.all, &r, &f); e != nil {
		return e
	}
	f.exclude = nil
	return p.pick(g.all, &r, &f)
}

func (p *Pool) pick(s *set, r *Request, f *filter) *Endpoint {
	switch r.Policy {
	case route.RoundRobin:
		return p.roundRobin(s, f)
	case route.PeakEWMA:
		return s.peakEWMA(f)
	case route.RingHash:
		if r.HashKey != "" {
			return s.ringHash(r.HashKey, f)
		}
	}
	return s.leastRequest(f)
}

// Endpoints returns the current endpoints sorted by ID.
func (p *Pool) Endpoints() []*Endpoint { return slices.Clone(p.state.Load().eps) }

// Versions returns the distinct non-empty versions of the current instances,
// sorted: the versions a Request may ask for.
func (p *Pool) Versions() []string { return slices.Clone(p.state.Load().versionNames) }

// HasVersion reports whether some current instance has version v, without
// the copy Versions makes: for choosing a split's version per request.
func (p *Pool) HasVersion(v string) bool {
	_, ok := p.state.Load().versions[v]
	return ok
}

// Len returns the number of current instances.
func (p *Pool) Len() int { return len(p.state.Load().eps) }

// filter decides which members of a set a pick may return.
type filter struct {
	p       *Pool
	exclude []*Endpoint
	// ejection is set when some endpoint may be ejected: only then does ok
	// compare ejections with the clock.
	ejection bool
	now      int64
	hasNow   bool
}

// clock reads the pool clock once per pick.
func (f *filter) clock() int64 {
	if !f.hasNow {
		f.now, f.hasNow = f.p.clock(), true
	}
	return f.now
}

// all reports whether every member passes, so the policies may skip ok.
func (f *filter) all() bool { return !f.ejection && len(f.exclude) == 0 }

func (f *filter) ok(e *Endpoint) bool {
	if f.ejection && e.ejectedAt(f.now) {
		return false
	}
	return !slices.Contains(f.exclude, e)
}

// state is an immutable snapshot of the instance set.
type state struct {
	eps          []*Endpoint       // sorted by key
	any          *group            // candidates of every version
	versions     map[string]*group // by non-empty version
	versionNames []string          // sorted
}

// group is the candidates for one version (or for all), whole and by zone.
type group struct {
	all *set
	// local is the pool zone's part: nil when the pool has no zone or no
	// candidate is in it.
	local *set
	zones map[string]*set // by non-empty zone
}

// set is one list of candidates in key order, with what the policies
// precompute over it.
type set struct {
	m     []member
	cum   []int64 // cum[i] is the weight of m[:i+1]; nil when the weights are equal
	total int64   // sum of the weights
	// Built by the first pick that needs them: an Update costs nothing for
	// the policies no route uses.
	ring     atomic.Pointer[ring]
	schedule atomic.Pointer[schedule]
}

type member struct {
	ep *Endpoint
	w  int64 // weight, 1 to 1000
}

func (p *Pool) build(eps []*Endpoint) *state {
	s := &state{eps: eps, any: newGroup(eps, p.opt.Zone), versions: map[string]*group{}}
	byVersion := map[string][]*Endpoint{}
	for _, e := range eps {
		if v := e.info.Load().inst.Version; v != "" {
			byVersion[v] = append(byVersion[v], e)
		}
	}
	for v, list := range byVersion {
		s.versions[v] = newGroup(list, p.opt.Zone)
		s.versionNames = append(s.versionNames, v)
	}
	slices.Sort(s.versionNames)
	return s
}

func newGroup(eps []*Endpoint, zone string) *group {
	g := &group{all: newSet(eps), zones: map[string]*set{}}
	byZone := map[string][]*Endpoint{}
	for _, e := range eps {
		if z := e.info.Load().inst.Zone; z != "" {
			byZone[z] = append(byZone[z], e)
		}
	}
	for z, list := range byZone {
		if len(list) == len(eps) {
			g.zones[z] = g.all
		} else {
			g.zones[z] = newSet(list)
		}
	}
	if zone != "" {
		g.local = g.zones[zone]
	}
	return g
}

func newSet(eps []*Endpoint) *set {
	s := &set{m: make([]member, len(eps))}
	uniform := true
	for i, e := range eps {
		w := int64(e.info.Load().inst.Weight)
		s.m[i] = member{ep: e, w: w}
		s.total += w
		uniform = uniform && w == s.m[0].w
	}
	if !uniform {
		s.cum = make([]int64, len(eps))
		var sum int64
		for i, m := range s.m {
			sum += m.w
			s.cum[i] = sum
		}
	}
	return s
}

// leastLoaded returns the member with the fewest requests in flight per unit
// of weight that is not ejected (excluded ones allowed), or nil.
func (s *set) leastLoaded(f *filter) *Endpoint {
	var best *member
	for i := range s.m {
		m := &s.m[i]
		if f.ejection && m.ep.ejectedAt(f.now) {
			continue
		}
		if best == nil || lighter(m, best) {
			best = m
		}
	}
	if best == nil {
		return nil
	}
	return best.ep
}

// lighter reports whether a has fewer requests in flight per unit of weight
// than b (cross-multiplied to stay in integers).
func lighter(a, b *member) bool {
	return a.ep.inflight.Load()*b.w < b.ep.inflight.Load()*a.w
}
