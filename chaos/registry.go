package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The registry workload: clients register instances with TTL checks and
// keep heartbeating every one of them; a watcher polls their statuses.
// Checked: every acknowledged registration is on every replica at the
// end, and no instance that kept heartbeating turned critical.
const (
	registryClients      = 3
	instancesPerClient   = 5
	registryService      = "chaos-reg"
	registryTTL          = 5 * time.Second
	heartbeatEvery       = time.Second
	registerEvery        = 6 * time.Second
	registryDeregisterIn = "1h"
)

// instanceJSON is the part of a registry instance the checkers read.
type instanceJSON struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	StatusSince time.Time `json:"statusSince"`
	Held        any       `json:"held,omitempty"`
}

// beats is what one instance's client knows: each acknowledged renewal
// (the registration, then heartbeats), when it was sent and acknowledged,
// and each heartbeat that failed, to explain a violation.
type beats struct {
	renewals []renewal
	failed   []attempt
}

type renewal struct{ sent, acked time.Time }

// attempt is one heartbeat that failed: to which replica, when, how long
// it took and what came back.
type attempt struct {
	node int
	sent time.Time
	took time.Duration
	what string
}

// failedBetween describes the failed heartbeats sent in [from, to).
func (b *beats) failedBetween(from, to time.Time) string {
	var out []string
	for _, a := range b.failed {
		if !a.sent.Before(from) && a.sent.Before(to) {
			out = append(out, fmt.Sprintf("%s registry-%d %s after %s", a.sent.Format("15:04:05.000"), a.node, a.what, a.took.Round(time.Millisecond)))
		}
	}
	if len(out) == 0 {
		return "no failed heartbeat sent since"
	}
	return "failed heartbeats sent since: " + strings.Join(out, "; ")
}

// lastBefore is the latest renewal sent before t, and the latest one
// acknowledged before t (so applied before anything proposed at t).
func (b *beats) lastBefore(t time.Time) (sent, acked renewal, ok bool) {
	for _, r := range b.renewals {
		if r.sent.Before(t) && r.sent.After(sent.sent) {
			sent = r
		}
		if r.acked.Before(t) && r.sent.After(acked.sent) {
			acked = r
		}
	}
	return sent, acked, !sent.sent.IsZero()
}

type registryWorkload struct {
	s *suite

	mu       sync.Mutex
	counts   counts
	acked    map[string]*beats // by instance ID
	critical map[string]instanceJSON
}

func newRegistryWorkload(s *suite) *registryWorkload {
	return &registryWorkload{s: s, acked: map[string]*beats{}, critical: map[string]instanceJSON{}}
}

func (w *registryWorkload) run(ctx context.Context, wg *sync.WaitGroup) {
	for id := range registryClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.client(ctx, id, wg)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.watch(ctx)
	}()
}

func (w *registryWorkload) tally(r reply, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.counts.tally(r, ok)
}

// client registers an instance every registerEvery, up to
// instancesPerClient, each then heartbeated by its own agent.
func (w *registryWorkload) client(ctx context.Context, id int, wg *sync.WaitGroup) {
	rng := rand.New(rand.NewPCG(uint64(w.s.o.seed), 0x4e6+uint64(id)))
	for n := 0; n < instancesPerClient && ctx.Err() == nil; {
		inst := fmt.Sprintf("reg-%d-%d", id, n)
		if !w.register(ctx, rng, inst) {
			sleepCtx(ctx, time.Second)
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.agent(ctx, inst, rand.New(rand.NewPCG(uint64(w.s.o.seed), rng.Uint64())))
		}()
		sleepCtx(ctx, registerEvery)
	}
}

// register puts an instance (the address is the bridge's: the registry
// never probes a TTL check).
func (w *registryWorkload) register(ctx context.Context, rng *rand.Rand, inst string) bool {
	body := fmt.Sprintf(`{"address":%q,"port":9,"check":{"ttl":%q,"deregisterAfter":%q}}`, w.s.c.net.bridgeIP, registryTTL, registryDeregisterIn)
	call := time.Now()
	r := w.s.do(ctx, http.MethodPut, w.instanceURL(rng.IntN(w.s.c.nodes()), inst), nil, []byte(body), opTimeout)
	ok := r.err == nil && r.status == http.StatusOK
	if ctx.Err() == nil {
		w.tally(r, ok)
	}
	if ok {
		w.mu.Lock()
		w.acked[inst] = &beats{renewals: []renewal{{sent: call, acked: time.Now()}}}
		w.mu.Unlock()
	}
	return ok
}

// agent heartbeats one instance every heartbeatEvery, as an instance's
// agent would.
func (w *registryWorkload) agent(ctx context.Context, inst string, rng *rand.Rand) {
	for sleepCtx(ctx, heartbeatEvery) {
		w.s.heartbeat(ctx, rng, registryService, inst, func(r reply, ok bool, node int, sent time.Time) {
			w.tally(r, ok)
			now := time.Now()
			w.mu.Lock()
			b := w.acked[inst]
			if ok {
				b.renewals = append(b.renewals, renewal{sent: sent, acked: now})
			} else {
				b.failed = append(b.failed, attempt{node: node, sent: sent, took: now.Sub(sent), what: r.String()})
			}
			w.mu.Unlock()
		})
	}
}

// heartbeat renews inst's TTL check: a heartbeat that fails or takes over
// a second goes to the next replica at once, each replica tried at most
// once. Every attempt is reported to seen (unless the run ended under it).
func (s *suite) heartbeat(ctx context.Context, rng *rand.Rand, service, inst string, seen func(r reply, ok bool, node int, sent time.Time)) {
	node := rng.IntN(s.c.nodes())
	for range s.c.nodes() {
		sent := time.Now()
		r := s.do(ctx, http.MethodPut, s.c.url("registry", node)+"/v1/services/"+service+"/instances/"+inst+"/heartbeat", nil, nil, time.Second)
		if ctx.Err() != nil {
			return
		}
		ok := r.err == nil && r.status == http.StatusOK
		seen(r, ok, node, sent)
		if ok {
			return
		}
		node = (node + 1) % s.c.nodes()
	}
}

func (w *registryWorkload) instanceURL(node int, inst string) string {
	return w.s.c.url("registry", node) + "/v1/services/" + registryService + "/instances/" + inst
}

// watch polls the instances every 250 ms from every replica, reading each
// replica's own applied state (serializable: it answers during a write
// stall too), and keeps every critical status it sees, once per instance
// and status change. A critical spell shorter than the poll can be missed.
func (w *registryWorkload) watch(ctx context.Context) {
	for sleepCtx(ctx, 250*time.Millisecond) {
		for node := range w.s.c.nodes() {
			list, err := w.list(ctx, node, "serializable")
			if err != nil {
				continue
			}
			w.mu.Lock()
			for _, in := range list {
				if in.Status == "critical" {
					key := in.ID + "@" + in.StatusSince.Format(time.RFC3339Nano)
					if _, seen := w.critical[key]; !seen {
						w.critical[key] = in
						w.s.logf("registry: %s turned critical at %s (seen on registry-%d)", in.ID, in.StatusSince.Format("15:04:05.000"), node)
					}
				}
			}
			w.mu.Unlock()
		}
	}
}

// list reads the workload's instances from one replica.
func (w *registryWorkload) list(ctx context.Context, node int, consistency string) ([]instanceJSON, error) {
	u := w.s.c.url("registry", node) + "/v1/services/" + registryService + "/instances"
	if consistency != "" {
		u += "?consistency=" + consistency
	}
	r := w.s.do(ctx, http.MethodGet, u, nil, nil, 2*time.Second)
	if r.err != nil || r.status != http.StatusOK {
		return nil, fmt.Errorf("registry-%d: %d %s %v", node, r.status, r.body, r.err)
	}
	var out []instanceJSON
	err := json.Unmarshal(r.body, &out)
	return out, err
}

// longestGap describes the longest time any instance went between the
// sending of two acknowledged renewals (the margin left to its TTL),
// with the fault under way when it ended. Called with w.mu held.
func (w *registryWorkload) longestGap() string {
	var (
		worst time.Duration
		id    string
		until time.Time
	)
	for inst, b := range w.acked {
		for i := 1; i < len(b.renewals); i++ {
			if gap := b.renewals[i].sent.Sub(b.renewals[i-1].sent); gap > worst {
				worst, id, until = gap, inst, b.renewals[i].sent
			}
		}
	}
	if id == "" {
		return "no instance renewed twice"
	}
	return fmt.Sprintf("longest time between acknowledged renewals %s (%s, until %s, %s; %s)",
		worst.Round(time.Millisecond), id, until.Format("15:04:05.000"), w.s.faultAt(until), w.acked[id].failedBetween(until.Add(-worst), until))
}

// check judges the statuses seen and the final listings.
func (w *registryWorkload) check(ctx context.Context) counts {
	// The final listings first (outside the lock: they are requests).
	finals := make([][]instanceJSON, w.s.c.nodes())
	errs := make([]error, w.s.c.nodes())
	for node := range w.s.c.nodes() {
		finals[node], errs[node] = w.list(ctx, node, "serializable")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.counts
	for node, list := range finals {
		if errs[node] != nil {
			c.Violations++
			c.Notes = append(c.Notes, "could not list at the end: "+errs[node].Error())
			continue
		}
		have := map[string]bool{}
		for _, in := range list {
			have[in.ID] = true
		}
		for _, id := range slices.Sorted(mapKeys(w.acked)) {
			if !have[id] {
				c.Violations++
				c.Notes = append(c.Notes, fmt.Sprintf("LOST: registration of %s was acknowledged but registry-%d does not list it", id, node))
			}
		}
	}
	for _, key := range slices.Sorted(mapKeys(w.critical)) {
		in := w.critical[key]
		b, ok := w.acked[in.ID]
		if !ok {
			continue
		}
		_, acked, ok := b.lastBefore(in.StatusSince)
		since := in.StatusSince.Format("15:04:05.000")
		switch {
		case !ok:
		case !acked.sent.IsZero() && in.StatusSince.Before(acked.sent.Add(registryTTL)):
			// That heartbeat was applied before the expiry was even
			// proposed, and the expiry came less than a TTL after it.
			c.Violations++
			c.Notes = append(c.Notes, fmt.Sprintf("%s turned critical at %s although a heartbeat sent %s before had been acknowledged %s before (TTL %s)",
				in.ID, since, in.StatusSince.Sub(acked.sent).Round(time.Millisecond), in.StatusSince.Sub(acked.acked).Round(time.Millisecond), registryTTL))
		default:
			c.Violations++
			c.Notes = append(c.Notes, fmt.Sprintf("%s turned critical at %s while its client kept heartbeating: the last heartbeat acknowledged before it was sent %s before (TTL %s; %s); %s",
				in.ID, since, in.StatusSince.Sub(acked.sent).Round(time.Millisecond), registryTTL, w.s.faultAt(in.StatusSince), b.failedBetween(acked.sent, in.StatusSince)))
		}
	}
	c.Notes = append(c.Notes, fmt.Sprintf("%d instances registered, %d critical episodes seen; %s", len(w.acked), len(w.critical), w.longestGap()))
	return c
}
