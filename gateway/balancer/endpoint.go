package balancer

import (
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// Endpoint is one instance in a Pool with its statistics. The proxy calls
// Start when it sends a request to the endpoint and Done when the request
// ends; the pool keeps the same *Endpoint for an ID across updates.
type Endpoint struct {
	pool *Pool
	key  string               // ID, or host:port when the ID is empty
	info atomic.Pointer[info] // replaced when an Update changes the instance

	inflight    atomic.Int64
	consecutive atomic.Int64 // failures in a row
	// until is the end of the current ejection on the pool clock; 0 when the
	// endpoint is not ejected. It is set under pool.mu and cleared by
	// whoever first sees it expire.
	until atomic.Int64

	// ewma is the peak-EWMA latency estimate and the time of its last
	// update in one word (see estimate), so that Done updates it with one
	// compare-and-swap and Pick reads a consistent pair; 0 before the first
	// sample.
	ewma atomic.Uint64

	// Guarded by pool.mu.
	ejections int   // ejections in a row: the next lasts ejections+1 times the base
	lastEnd   int64 // end of the last ejection
	detached  bool  // removed from the pool by an Update

	rrCurrent int64 // guarded by pool.rrMu: nginx's current_weight
}

type info struct {
	inst     Instance
	hostPort string
	scheme   string
}

func (e *Endpoint) set(in Instance) {
	if old := e.info.Load(); old != nil && old.inst == in {
		return
	}
	scheme := in.Scheme
	if scheme == "" {
		scheme = "http"
	}
	e.info.Store(&info{inst: in, hostPort: net.JoinHostPort(in.Address, strconv.Itoa(in.Port)), scheme: scheme})
}

// Instance returns the instance as of the last Update, with its weight
// normalized to 1..1000.
func (e *Endpoint) Instance() Instance { return e.info.Load().inst }

// HostPort returns the instance's address and port joined for dialing.
func (e *Endpoint) HostPort() string { return e.info.Load().hostPort }

// Scheme returns the scheme the instance is reached with: http or https.
func (e *Endpoint) Scheme() string { return e.info.Load().scheme }

// Start records that a request to the endpoint begins.
func (e *Endpoint) Start() { e.inflight.Add(1) }

// InFlight returns the number of requests started and not yet done.
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// Done records that a request to the endpoint ended after latency, failed
// when it got a 5xx or no response at all. It feeds the latency estimate and
// outlier detection: enough failures in a row eject the endpoint.
func (e *Endpoint) Done(latency time.Duration, failed bool) {
	e.inflight.Add(-1)
	p := e.pool
	e.observe(p.clock(), latency, failed)
	if failed {
		if e.consecutive.Add(1) >= int64(p.opt.Outlier.Consecutive) {
			p.eject(e)
		}
	} else if e.consecutive.Load() != 0 {
		e.consecutive.Store(0)
	}
}

// Ejected reports whether outlier detection has taken the endpoint out of
// the pool for now.
func (e *Endpoint) Ejected() bool { return e.ejectedAt(e.pool.clock()) }

// EWMA returns the current peak-EWMA latency estimate; 0 before the first
// sample.
func (e *Endpoint) EWMA() time.Duration {
	return time.Duration(estimate(e.ewma.Load()).at(e.pool.clock()))
}

// ejectedAt reports whether the endpoint is ejected at now, clearing an
// expired ejection (ejections end lazily, when someone looks).
func (e *Endpoint) ejectedAt(now int64) bool {
	u := e.until.Load()
	if u == 0 {
		return false
	}
	if u > now {
		return true
	}
	if e.until.CompareAndSwap(u, 0) {
		e.pool.ejected.Add(-1)
	}
	return false
}

// eject takes e out of the pool unless that would eject more than the
// allowed share. A refused ejection leaves the failure count as it is, so
// the next failure asks again.
func (p *Pool) eject(e *Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock()
	if e.detached || e.ejectedAt(now) {
		return
	}
	eps := p.state.Load().eps
	// The epsilon keeps 0.29×100 from rounding down to 28. Ejecting a
	// pool's only instance would change nothing but the metrics: panic mode
	// would pick it anyway.
	allowed := max(1, int(p.opt.Outlier.MaxEjectedShare*float64(len(eps))+1e-9))
	if len(eps) <= 1 {
		allowed = 0
	}
	ejected := 0
	for _, x := range eps {
		if x.ejectedAt(now) {
			ejected++
		}
	}
	if ejected >= allowed {
		return
	}

	// As Envoy does, the multiplier goes down by one for every base
	// ejection time the endpoint has spent back in the pool, so an instance
	// that recovered for good starts again from the base time.
	o := p.opt.Outlier
	if e.ejections > 0 && now > e.lastEnd {
		e.ejections = max(0, e.ejections-int((now-e.lastEnd)/int64(o.BaseEjection)))
	}
	if time.Duration(e.ejections)*o.BaseEjection < o.MaxEjection {
		e.ejections++
	}
	d := min(time.Duration(e.ejections)*o.BaseEjection, o.MaxEjection)
	e.lastEnd = max(now+int64(d), 1)
	e.consecutive.Store(0)
	e.until.Store(e.lastEnd)
	p.ejected.Add(1)
}

// Peak EWMA, as in Finagle's PeakEwma and Linkerd's balancer: the estimate
// jumps to any sample above it and otherwise moves toward samples by a
// weight that depends on the time since the last one, so it forgets at the
// same pace whatever the request rate. Between samples it decays toward
// zero, so an endpoint that was slow and is no longer picked is tried again
// after a while.
const decayTime = 10 * time.Second

func (e *Endpoint) observe(now int64, latency time.Duration, failed bool) {
	rtt := float64(max(latency, 0))
	for {
		old := estimate(e.ewma.Load())
		v := rtt
		if old != 0 {
			w := old.weight(now)
			cur := old.value() * w
			switch {
			case rtt > cur:
			case failed:
				// A failure that came back fast says nothing about how fast
				// the instance serves: it must not make a failing instance
				// look attractive.
				return
			default:
				v = cur + rtt*(1-w)
			}
		}
		if e.ewma.CompareAndSwap(uint64(old), uint64(newEstimate(v, now))) {
			return
		}
	}
}

// estimate packs a latency estimate with the time it was made: the high
// half is the estimate in nanoseconds as a float32 (7 digits are plenty for
// a heuristic), bit 31 marks a sample, and the low 31 bits are the pool
// clock in units of 2²⁰ns (about 1ms; decay over 1ms is 10⁻⁴, too little to
// matter). The stamp wraps every 26 days, and differences are taken modulo
// that: an estimate left without samples for longer reads as younger than it
// is, which costs one sample to correct.
type estimate uint64

const (
	stampShift = 20
	sampledBit = 1 << 31
	stampMask  = sampledBit - 1
)

func newEstimate(v float64, now int64) estimate {
	return estimate(uint64(math.Float32bits(float32(v)))<<32 | sampledBit | uint64(now>>stampShift)&stampMask)
}

func (x estimate) value() float64 { return float64(math.Float32frombits(uint32(x >> 32))) }

// weight is the share of the estimate left at now: e^(−elapsed/τ).
func (x estimate) weight(now int64) float64 {
	dt := (uint64(now>>stampShift) - uint64(x)) & stampMask
	if dt == 0 {
		return 1
	}
	return math.Exp(-float64(dt<<stampShift) / float64(decayTime))
}

// at is the estimate decayed to now, in nanoseconds; 0 without samples.
func (x estimate) at(now int64) float64 {
	if x == 0 {
		return 0
	}
	return x.value() * x.weight(now)
}

// cheaper reports whether a's peak-EWMA cost is below b's. A cost is the
// latency estimate decayed to now times the requests in flight per unit of
// weight, plus one (with weight 1, Finagle's latency × (pending+1); the +1 is
// per unit of weight so that idle members of different weights cost the
// same and the weighted draw decides). Decaying both to now multiplies each
// by e^(−now/τ) and the factor cancels: only the difference between the
// stamps counts, so a pick needs neither the clock nor a second exp.
func cheaper(a, b *member) bool {
	xa, xb := estimate(a.ep.ewma.Load()), estimate(b.ep.ewma.Load())
	ina, inb := a.ep.inflight.Load(), b.ep.inflight.Load()
	if ra, rb := rank(xa, ina), rank(xb, inb); ra != rb || ra != sampled {
		return ra < rb || ra == rb && ra == unanswered && ina < inb
	}
	ca := xa.value() * float64(ina+a.w) / float64(a.w)
	cb := xb.value() * float64(inb+b.w) / float64(b.w)
	// b's estimate relative to a's: e^((stamp_b − stamp_a)/τ), the stamp
	// difference read as a signed 31-bit number.
	if d := int64(int32(uint32(xb-xa)<<1) >> 1); d != 0 {
		cb *= math.Exp(min(max(float64(d<<stampShift)/float64(decayTime), -700), 700))
	}
	return ca < cb
}

// Ranks of peak-EWMA costs, cheapest first: an endpoint never tried is
// tried at once; one with a first request in flight and no answer yet
// (Finagle's penalty) gets no other until it answers.
const (
	untried = iota
	sampled
	unanswered
)

func rank(x estimate, inflight int64) int {
	switch {
	case x != 0:
		return sampled
	case inflight <= 0:
		return untried
	}
	return unanswered
}
