package health

import (
	"context"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Presence tells which replicas are alive to run checks. Each replica
// publishes its ID on a NATS subject every interval and says goodbye when
// it stops; one not heard from for three intervals is presumed dead. It is
// deliberately outside the log: it only decides who probes, and two
// replicas probing the same target for a moment is harmless.
type Presence struct {
	self     string
	interval time.Duration
	mu       sync.Mutex
	seen     map[string]time.Time
	changed  chan struct{}
}

// leavePrefix marks a goodbye.
const leavePrefix = "-"

// StartPresence joins the replicas announcing on subject and runs until ctx
// ends; done is closed once it has said goodbye.
func StartPresence(ctx context.Context, nc *nats.Conn, subject, self string, interval time.Duration, logger *slog.Logger) (p *Presence, done <-chan struct{}, err error) {
	p = &Presence{self: self, interval: interval, seen: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		id := string(m.Data)
		p.mu.Lock()
		defer p.mu.Unlock()
		if gone, ok := strings.CutPrefix(id, leavePrefix); ok {
			delete(p.seen, gone)
			p.notify()
			return
		}
		if _, known := p.seen[id]; !known {
			p.notify()
		}
		p.seen[id] = time.Now()
	})
	if err != nil {
		return nil, nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer func() {
			_ = sub.Unsubscribe()
			if err := nc.Publish(subject, []byte(leavePrefix+self)); err == nil {
				_ = nc.FlushTimeout(time.Second)
			}
		}()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if err := nc.Publish(subject, []byte(self)); err != nil {
				logger.Warn("presence announcement failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return p, ch, nil
}

func (p *Presence) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled when a replica joins or leaves.
func (p *Presence) Changed() <-chan struct{} { return p.changed }

// Live returns the replicas presumed alive, this one included, sorted.
func (p *Presence) Live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := map[string]bool{p.self: true}
	cutoff := time.Now().Add(-3 * p.interval)
	for id, at := range p.seen {
		if at.After(cutoff) {
			live[id] = true
		} else {
			delete(p.seen, id)
		}
	}
	return slices.Sorted(maps.Keys(live))
}

// Owner picks the replica that runs the check named key by rendezvous
// hashing: every replica that sees the same live set picks the same owner,
// and a replica leaving moves only its own checks.
func Owner(key string, live []string) string {
	var best string
	var top uint64
	for _, id := range live {
		h := fnv.New64a()
		_, _ = h.Write([]byte(id))
		_, _ = h.Write([]byte{0})
		_, _ = h.Write([]byte(key))
		if v := mix(h.Sum64()); best == "" || v > top {
			best, top = id, v
		}
	}
	return best
}

// mix is splitmix64's finaliser: FNV alone barely changes its high bits
// when keys differ only at the end, which would skew the assignment.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
