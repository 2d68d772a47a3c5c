package balancer

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam,
// Google 2017; Envoy's hash_balance_factor, HAProxy's hash-balance-factor):
// a key goes to the first endpoint clockwise from its hash on a ring of
// virtual nodes, unless that endpoint already carries more than c times its
// fair share of the requests in flight; then it spills to the next one. Keys
// stay put while loads allow, and removing an endpoint moves only its keys.
const (
	vnodesPerInstance = 100     // at the set's mean weight
	maxVnodes         = 1 << 16 // per ring: beyond 655 instances each gets fewer
	// The load factor c = 1.25 as a fraction, to keep the bound in integers.
	loadNum, loadDen = 5, 4
)

type ring struct {
	hash []uint64 // sorted
	at   []int32  // at[i] is the member that owns hash[i]
}

// ringOf returns the set's ring, building it on first use.
func (s *set) ringOf() *ring {
	if r := s.ring.Load(); r != nil {
		return r
	}
	s.ring.CompareAndSwap(nil, newRing(s))
	return s.ring.Load()
}

// newRing places each member's virtual nodes at xxhash("ID#k"): positions
// depend on the ID alone, so a ring without one member is the same ring with
// that member's nodes taken out. Members get vnodes in proportion to their
// weight; with unequal weights a removal that moves the mean weight shifts
// a few nodes of the others too.
func newRing(s *set) *ring {
	// An instance's share of the ring strays from its weight's by about
	// 1/√per (10% at 100 nodes; bounded loads even out what that skews).
	// per does not depend on the number of instances below the cap, so
	// adding or removing one leaves the others' nodes where they were.
	per := vnodesPerInstance
	if len(s.m)*per > maxVnodes {
		per = max(1, maxVnodes/len(s.m))
	}
	mean := float64(s.total) / float64(len(s.m))
	type vnode struct {
		hash uint64
		at   int32
	}
	vs := make([]vnode, 0, len(s.m)*(per+1))
	var buf []byte
	for i, m := range s.m {
		n := max(1, int(math.Round(float64(per)*float64(m.w)/mean)))
		for k := range n {
			buf = strconv.AppendInt(append(append(buf[:0], m.ep.key...), '#'), int64(k), 10)
			vs = append(vs, vnode{xxhash.Sum64(buf), int32(i)})
		}
	}
	// A tie between two nodes' hashes goes to the first member by ID, the
	// same on every gateway.
	slices.SortFunc(vs, func(a, b vnode) int { return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.at, b.at)) })
	r := &ring{hash: make([]uint64, len(vs)), at: make([]int32, len(vs))}
	for i, v := range vs {
		r.hash[i], r.at[i] = v.hash, v.at
	}
	return r
}

func (s *set) ringHash(key string, f *filter) *Endpoint {
	r := s.ringOf()
	n := len(r.hash)
	if n == 0 {
		return nil
	}
	h := xxhash.Sum64String(key)
	i, _ := slices.BinarySearch(r.hash, h)
	if i == n {
		i = 0
	}
	all := f.all()
	var first *member
	load, weight := int64(-1), int64(0)
	prev := int32(-1)
	for range n {
		at := r.at[i]
		if i++; i == n {
			i = 0
		}
		if at == prev {
			continue
		}
		prev = at
		m := &s.m[at]
		if !all && !f.ok(m.ep) {
			continue
		}
		if first == nil {
			first = m
		}
		in := m.ep.inflight.Load()
		if in <= 0 {
			return m.ep // under any bound: no need to add up the loads
		}
		if load < 0 {
			load, weight = s.load(f)
		}
		// The capacity is ceil(c·(load+1)·w/W): the requests in flight plus
		// this one, shared by weight, times c. As in the paper a member that
		// has reached it is full, so the test is in < ceil(x), which for an
		// integer in is in < x.
		if loadDen*weight*in < loadNum*(load+1)*m.w {
			return m.ep
		}
	}
	// Loads moved under the walk; the first candidate is still the
	// consistent answer.
	if first == nil {
		return nil
	}
	return first.ep
}

// load adds up the requests in flight and the weights of the members f
// allows.
func (s *set) load(f *filter) (inflight, weight int64) {
	all := f.all()
	for k := range s.m {
		if all || f.ok(s.m[k].ep) {
			inflight += s.m[k].ep.inflight.Load()
			weight += s.m[k].w
		}
	}
	return inflight, weight
}
