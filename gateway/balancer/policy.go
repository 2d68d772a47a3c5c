package balancer

import (
	"math/rand/v2"
	"sync/atomic"
)

// leastRequest is the power of two random choices (Mitzenmacher; Envoy's
// LEAST_REQUEST, Finagle's P2C): draw two candidates and take the one with
// fewer requests in flight per unit of weight. Candidates are drawn in
// proportion to their weights and a tie keeps the first, so an idle pool
// spreads by weight and a busy one by load.
func (s *set) leastRequest(f *filter) *Endpoint {
	i, j, ok := s.choose2(f)
	if !ok {
		return nil
	}
	if lighter(&s.m[j], &s.m[i]) {
		return s.m[j].ep
	}
	return s.m[i].ep
}

// peakEWMA is P2C over the peak-EWMA cost (Finagle, Linkerd): latency-aware,
// so a slow instance gets less traffic before it fails outright.
func (s *set) peakEWMA(f *filter) *Endpoint {
	i, j, ok := s.choose2(f)
	if !ok {
		return nil
	}
	if i != j && cheaper(&s.m[j], &s.m[i]) {
		return s.m[j].ep
	}
	return s.m[i].ep
}

// tries bounds the rejection sampling of choose2 before it counts the
// candidates instead.
const tries = 8

// choose2 draws two members that f allows, each with probability in
// proportion to its weight, distinct when it can. ok is false when f allows
// none.
//
// The random numbers come from math/rand/v2's top-level functions, which
// use the runtime's per-thread generator: no lock, no allocation.
func (s *set) choose2(f *filter) (i, j int, ok bool) {
	n := len(s.m)
	if n == 0 {
		return 0, 0, false
	}
	if f.all() {
		if n == 1 {
			return 0, 0, true
		}
		x := rand.Uint64()
		if s.cum == nil {
			i, j = bounded(uint32(x), n), bounded(uint32(x>>32), n-1)
			if j >= i {
				j++
			}
			return i, j, true
		}
		i, j = s.draw(uint32(x)), s.draw(uint32(x>>32))
		if j == i {
			j = s.draw(rand.Uint32())
		}
		return i, j, true
	}

	// Some members may be ejected or excluded: draw from all of them and
	// reject those, which keeps the draw weighted among the rest and costs
	// little while most are allowed.
	i = -1
	for range tries {
		if k := s.draw(rand.Uint32()); f.ok(s.m[k].ep) {
			i = k
			break
		}
	}
	if i < 0 {
		return s.choose2Counted(f)
	}
	j = i
	for range min(n-1, tries) {
		if k := s.draw(rand.Uint32()); k != i && f.ok(s.m[k].ep) {
			j = k
			break
		}
	}
	return i, j, true
}

// choose2Counted is choose2 by walking the members, for when most are
// rejected.
func (s *set) choose2Counted(f *filter) (i, j int, ok bool) {
	var total int64
	for k := range s.m {
		if f.ok(s.m[k].ep) {
			total += s.m[k].w
		}
	}
	if total == 0 {
		return 0, 0, false
	}
	x := rand.Uint64()
	i, j = s.walk(f, uint32(x), total), s.walk(f, uint32(x>>32), total)
	if i < 0 || j < 0 {
		return 0, 0, false // an ejection raced the count
	}
	return i, j, true
}

// walk returns the allowed member at weighted position x of total.
func (s *set) walk(f *filter, x uint32, total int64) int {
	t := int64(uint64(x) * uint64(total) >> 32)
	for k := range s.m {
		if f.ok(s.m[k].ep) {
			if t < s.m[k].w {
				return k
			}
			t -= s.m[k].w
		}
	}
	return -1
}

// draw returns the member at weighted position x (uniform over 2³²) of the
// whole set.
func (s *set) draw(x uint32) int {
	if s.cum == nil {
		return bounded(x, len(s.m))
	}
	t := int64(uint64(x) * uint64(s.total) >> 32)
	lo, hi := 0, len(s.cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if s.cum[mid] > t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// bounded maps x, uniform over 2³², to [0, n) (Lemire's multiply-shift; the
// bias is n/2³², negligible).
func bounded(x uint32, n int) int { return int(uint64(x) * uint64(n) >> 32) }

// roundRobin is nginx's smooth weighted round robin
// (ngx_http_upstream_get_peer): every candidate's current weight grows by
// its weight, the largest wins and drops by the total. For weights 5, 1, 1
// it goes a a b a c a a: the heavy one interleaved, never in a burst.
//
// When every member of the set is a candidate, the pick reads the set's
// precomputed schedule, lock-free. Otherwise it runs nginx's loop over the
// candidates under the pool's lock; only the candidates' current weights
// move, so picks over disjoint sets (two versions of a split, two zones)
// each keep their own exact sequence.
func (p *Pool) roundRobin(s *set, f *filter) *Endpoint {
	all := f.all()
	if all {
		if sc := s.scheduleOf(); len(sc.seq) > 0 {
			return s.m[sc.seq[(sc.next.Add(1)-1)%uint64(len(sc.seq))]].ep
		}
	}
	p.rrMu.Lock()
	defer p.rrMu.Unlock()
	var best *member
	var total int64
	for k := range s.m {
		m := &s.m[k]
		if !all && !f.ok(m.ep) {
			continue
		}
		m.ep.rrCurrent += m.w
		total += m.w
		if best == nil || m.ep.rrCurrent > best.ep.rrCurrent {
			best = m
		}
	}
	if best == nil {
		return nil
	}
	best.ep.rrCurrent -= total
	return best.ep
}

// schedule is one period of a set's smooth weighted round robin. The
// sequence for weights w repeats after sum(w)/gcd(w) picks (every current
// weight is back to 0), and is the same as for w/gcd(w).
type schedule struct {
	next atomic.Uint64
	seq  []int32 // member indexes; empty when the period is too long to keep
}

// maxSchedule bounds a schedule (32 KiB); longer periods, from many
// instances with unrelated weights, take the locked loop.
const maxSchedule = 1 << 13

func (s *set) scheduleOf() *schedule {
	if sc := s.schedule.Load(); sc != nil {
		return sc
	}
	s.schedule.CompareAndSwap(nil, newSchedule(s.m))
	return s.schedule.Load()
}

func newSchedule(m []member) *schedule {
	var g, total int64
	for _, x := range m {
		g = gcd(g, x.w)
	}
	for _, x := range m {
		total += x.w / g
	}
	sc := &schedule{}
	if total > maxSchedule {
		return sc
	}
	sc.seq = make([]int32, total)
	current := make([]int64, len(m))
	for k := range sc.seq {
		best := 0
		for i, x := range m {
			current[i] += x.w / g
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		sc.seq[k] = int32(best)
	}
	return sc
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
