package balancer

import (
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/gateway/route"
)

// benchPool has n instances over three zones, two versions and weights 1 to
// 3, each with a few requests in flight so that ring-hash checks its bound.
func benchPool(n int) *Pool {
	p := NewPool(Options{Zone: "z0"})
	ins := make([]Instance, n)
	for i := range ins {
		ins[i] = Instance{ID: fmt.Sprintf("i-%03d", i), Address: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Port: 8080,
			Zone: fmt.Sprintf("z%d", i%3), Version: fmt.Sprintf("v%d", i%2), Weight: 1 + i%3}
	}
	p.Update(ins)
	for i, e := range p.Endpoints() {
		for range i % 4 {
			e.Start()
		}
		e.Done(time.Duration(1+i%7)*time.Millisecond, false)
		e.Start()
	}
	return p
}

var keys = func() []string {
	out := make([]string, 1024)
	for i := range out {
		out[i] = fmt.Sprintf("user-%d", i)
	}
	return out
}()

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, policy := range policies {
			b.Run(fmt.Sprintf("%s/n=%d", policy, n), func(b *testing.B) {
				p := benchPool(n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					p.Pick(Request{Policy: policy, HashKey: keys[i&1023]})
					i++
				}
			})
		}
	}
}

// Variants of the request on 10 instances with least-request (ring-hash for
// its own path): what a zone, a version, a retry and an ejection cost.
func BenchmarkPickRequest(b *testing.B) {
	for _, tc := range []struct {
		name  string
		setup func(p *Pool) Request
	}{
		{"zone other than the pool's", func(*Pool) Request { return Request{Zone: "z1"} }},
		{"version", func(*Pool) Request { return Request{Version: "v1"} }},
		{"exclude one", func(p *Pool) Request { return Request{Exclude: p.Endpoints()[:1]} }},
		{"one ejected", func(p *Pool) Request {
			e := p.Endpoints()[0]
			for range 5 {
				e.Start()
				e.Done(time.Millisecond, true)
			}
			return Request{}
		}},
		{"ring-hash exclude one", func(p *Pool) Request {
			return Request{Policy: route.RingHash, HashKey: "user-1", Exclude: []*Endpoint{p.Pick(Request{Policy: route.RingHash, HashKey: "user-1"})}}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			p := benchPool(10)
			r := tc.setup(p)
			b.ReportAllocs()
			for b.Loop() {
				p.Pick(r)
			}
		})
	}
}

// The proxy's whole use per request, from every P at once: pick, start,
// done (with the real clock).
func BenchmarkPickParallel(b *testing.B) {
	for _, policy := range policies {
		b.Run(policy, func(b *testing.B) {
			p := benchPool(10)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					e := p.Pick(Request{Policy: policy, HashKey: keys[i&1023]})
					e.Start()
					e.Done(time.Millisecond, false)
					i++
				}
			})
		})
	}
}

func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			p := benchPool(n)
			ins := make([]Instance, 0, n)
			for _, e := range p.Endpoints() {
				ins = append(ins, e.Instance())
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Update(ins)
			}
		})
	}
}
