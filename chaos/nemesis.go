package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// faultRecord is one fault the nemesis injected.
type faultRecord struct {
	Kind   string
	Target string
	Start  time.Time
	Healed time.Time
	End    time.Time // the end of its recovery window
	// Recovered: every replica of every service ready and a config write
	// acknowledged through every config replica after the heal, before End.
	Recovered bool
	Note      string
}

// A fault injects itself and returns what it hit and how to heal it; the
// nemesis holds it for hold, then heals. A rolling restart is all inject
// (hold 0, nothing to heal); it names its target first with s.target.
type fault struct {
	kind   string
	hold   time.Duration
	inject func(ctx context.Context, s *suite, rng *rand.Rand) (target string, heal func(context.Context) string, err error)
}

// Hold times: how long each fault stays before it is healed.
const (
	holdShort     = 6 * time.Second
	holdLong      = 12 * time.Second
	recoveryLimit = 45 * time.Second
	quietBetween  = 3 * time.Second
)

var faults = []fault{
	{"kill-replica", holdShort, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		p := s.randomReplica(rng)
		p.Kill()
		return p.Name, func(context.Context) string { p.Restart(); return "" }, nil
	}},
	{"pause-replica", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		p := s.randomReplica(rng)
		p.Pause()
		return p.Name, func(context.Context) string { p.Resume(); return "" }, nil
	}},
	{"kill-nats", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		p := s.c.role("nats")[rng.IntN(s.c.nodes())]
		p.Kill()
		return p.Name, func(context.Context) string { p.Restart(); return "" }, nil
	}},
	{"pause-stream-leader", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		leader, err := s.c.streamLeader(ctx, configStream)
		if err != nil {
			return "", nil, fmt.Errorf("find the leader of %s: %w", configStream, err)
		}
		p := s.c.role("nats")[leader]
		p.Pause()
		return p.Name + " (leader of " + configStream + ")", func(context.Context) string { p.Resume(); return "" }, nil
	}},
	{"partition-minority", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		// A node that does not lead the config stream, if one is known.
		leader, _ := s.c.streamLeader(ctx, configStream)
		i := rng.IntN(s.c.nodes())
		if i == leader {
			i = (i + 1) % s.c.nodes()
		}
		return s.isolate(ctx, i, "")
	}},
	{"partition-leader", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		leader, err := s.c.streamLeader(ctx, configStream)
		if err != nil {
			return "", nil, fmt.Errorf("find the leader of %s: %w", configStream, err)
		}
		return s.isolate(ctx, leader, " (leader of "+configStream+", in the minority)")
	}},
	{"partition-bridge", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		b := rng.IntN(s.c.nodes())
		x, y := (b+1)%s.c.nodes(), (b+2)%s.c.nodes()
		heal := func(ctx context.Context) string { return errString(s.c.net.heal(ctx)) }
		if err := errors.Join(s.c.net.cut(ctx, x, y), s.c.net.cut(ctx, y, x)); err != nil {
			return "", heal, err
		}
		return fmt.Sprintf("n%d sees n%d and n%d, which do not see each other", b, x, y), heal, nil
	}},
	{"net-loss", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		i := rng.IntN(s.c.nodes())
		heal := func(ctx context.Context) string { return errString(s.c.net.heal(ctx)) }
		what, err := s.c.net.loss(ctx, i, 20)
		if err != nil {
			return "", heal, err
		}
		return fmt.Sprintf("n%d: %s", i, what), heal, nil
	}},
	{"net-slow", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		i := rng.IntN(s.c.nodes())
		heal := func(ctx context.Context) string { return errString(s.c.net.heal(ctx)) }
		what, err := s.c.net.slow(ctx, i)
		if err != nil {
			return "", heal, err
		}
		return fmt.Sprintf("n%d: %s", i, what), heal, nil
	}},
	{"rolling-restart", 0, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		role := serviceRoles[rng.IntN(len(serviceRoles))]
		s.target("every " + role + " replica in turn")
		for _, p := range s.c.role(role) {
			p.Term(10 * time.Second)
			deadline := time.Now().Add(30 * time.Second)
			for !s.c.ready(ctx, role, p.node) {
				if time.Now().After(deadline) {
					return role, nil, fmt.Errorf("%s not ready 30 s after its restart", p.Name)
				}
				if !sleepCtx(ctx, 100*time.Millisecond) {
					return role, nil, ctx.Err()
				}
			}
		}
		return "every " + role + " replica in turn", nil, nil
	}},
	{"disk-full", holdLong, func(ctx context.Context, s *suite, rng *rand.Rand) (string, func(context.Context) string, error) {
		fill := filepath.Join(s.c.diskDir, "chaos-fill")
		heal := func(ctx context.Context) string { return s.freeDisk(ctx, fill) }
		n, err := fillDisk(fill)
		if err != nil {
			return "", heal, err
		}
		return fmt.Sprintf("n%d's JetStream store (%s tmpfs, %d MiB written to fill it)", diskNode, diskNodeSize, n>>20), heal, nil
	}},
}

// configStream is the config service's JetStream stream.
const configStream = "STEWARD_CONFIG"

func faultKinds() []string {
	var out []string
	for _, f := range faults {
		out = append(out, f.kind)
	}
	return out
}

func knownFault(kind string) bool { return slices.Contains(faultKinds(), kind) }

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// randomReplica picks one replica of one service.
func (s *suite) randomReplica(rng *rand.Rand) *proc {
	role := serviceRoles[rng.IntN(len(serviceRoles))]
	return s.c.role(role)[rng.IntN(s.c.nodes())]
}

// isolate cuts node i off from every other node.
func (s *suite) isolate(ctx context.Context, i int, what string) (string, func(context.Context) string, error) {
	heal := func(ctx context.Context) string { return errString(s.c.net.heal(ctx)) }
	var others []int
	for j := range s.c.nodes() {
		if j != i {
			others = append(others, j)
		}
	}
	if err := s.c.net.cut(ctx, i, others...); err != nil {
		return "", heal, err
	}
	return fmt.Sprintf("n%d alone%s", i, what), heal, nil
}

// fillDisk writes zeros to path until the file system is full (bounded by
// 1 GiB) and returns how much it wrote.
func fillDisk(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for n < 1<<30 {
		m, err := f.Write(buf)
		n += int64(m)
		if err != nil {
			return n, nil // ENOSPC: full
		}
	}
	return n, errors.New("the disk node's store did not fill after 1 GiB")
}

// freeDisk removes the fill, then waits for the disk node's NATS to have
// JetStream again; if it does not within 20 s, it restarts that NATS
// server and says so.
func (s *suite) freeDisk(ctx context.Context, fill string) string {
	if err := os.Remove(fill); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err.Error()
	}
	url := fmt.Sprintf("http://%s:%d/healthz?js-enabled-only=true", s.c.net.nodes[diskNode], natsMonitorPort)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := s.c.get(ctx, url, time.Second); err == nil && code == http.StatusOK {
			return ""
		}
		if !sleepCtx(ctx, 250*time.Millisecond) {
			return ""
		}
	}
	p := s.c.role("nats")[diskNode]
	p.Kill()
	p.Restart()
	return fmt.Sprintf("JetStream on n%d was still unhealthy 20 s after the disk was freed; nats-%d restarted", diskNode, diskNode)
}

// nemesis runs faults one at a time, in a shuffled cycle over the kinds
// enabled, starting none after until (the fault under way finishes its
// hold and recovery): inject, hold, heal, wait for recovery, rest. It
// stops at once when ctx ends (Ctrl-C), healing first.
func (s *suite) nemesis(ctx context.Context, until time.Time, cfg *configWorkload) {
	rng := rand.New(rand.NewPCG(uint64(s.o.seed), 0xfa17))
	var kinds []fault
	for _, f := range faults {
		if len(s.o.faults) == 0 || slices.Contains(s.o.faults, f.kind) {
			kinds = append(kinds, f)
		}
	}
	// A quiet start: the baseline the first fault is measured against.
	if !sleepCtx(ctx, 5*time.Second) {
		return
	}
	for ctx.Err() == nil && time.Now().Before(until) {
		rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, f := range kinds {
			if ctx.Err() != nil || !time.Now().Before(until) {
				return
			}
			s.inject(ctx, f, rng, cfg)
			if !sleepCtx(ctx, quietBetween) {
				return
			}
		}
	}
}

// inject runs one fault to its end. Healing happens even when ctx ended.
func (s *suite) inject(ctx context.Context, f fault, rng *rand.Rand, cfg *configWorkload) {
	rec := faultRecord{Kind: f.kind, Start: time.Now()}
	s.logf("nemesis: %s ...", f.kind)
	s.mu.Lock()
	s.current = &faultRecord{Kind: f.kind, Start: rec.Start}
	s.mu.Unlock()
	target, heal, err := f.inject(ctx, s, rng)
	s.target(target)
	rec.Target = target
	if err != nil && ctx.Err() == nil {
		rec.Note = "inject: " + err.Error()
		s.logf("nemesis: %s: %v", f.kind, err)
	} else if err == nil {
		sleepCtx(ctx, f.hold)
	}
	if heal != nil {
		if note := heal(context.WithoutCancel(ctx)); note != "" {
			rec.Note = joinNote(rec.Note, note)
			s.logf("nemesis: %s heal: %s", f.kind, note)
		}
	}
	rec.Healed = time.Now()
	rec.Recovered = s.waitRecovered(ctx, rec.Healed, cfg)
	rec.End = time.Now()
	s.logf("nemesis: %s on %s: healed after %s, recovered: %v in %s", f.kind, target,
		rec.Healed.Sub(rec.Start).Round(time.Millisecond), rec.Recovered, rec.End.Sub(rec.Healed).Round(time.Millisecond))
	s.mu.Lock()
	s.faults = append(s.faults, rec)
	s.current = nil
	s.mu.Unlock()
}

// target names what the fault under way hit.
func (s *suite) target(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != nil && t != "" {
		s.current.Target = t
	}
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// waitRecovered waits until every replica is ready and every config
// replica acknowledged a write sent after healed, up to recoveryLimit.
func (s *suite) waitRecovered(ctx context.Context, healed time.Time, cfg *configWorkload) bool {
	deadline := healed.Add(recoveryLimit)
	for time.Now().Before(deadline) {
		if cfg.recoveredAll(healed) && s.c.allReady(ctx) {
			return true
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return false
		}
	}
	return false
}

// recoveredAll reports whether every config replica acknowledged a write
// sent after t.
func (w *configWorkload) recoveredAll(t time.Time) bool {
	for node := range w.s.c.nodes() {
		if _, ok := w.firstAckAfter(node, t); !ok {
			return false
		}
	}
	return true
}

// firstAckAfter is when node first acknowledged a write sent at or after t.
func (w *configWorkload) firstAckAfter(node int, t time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, a := range w.writeAcks[node] {
		if !a.call.Before(t) {
			return a.ret, true
		}
	}
	return time.Time{}, false
}

// healAll undoes whatever a fault may have left (after an interrupted
// hold): partitions, qdiscs, paused and held-down processes, the disk fill.
func (s *suite) healAll(ctx context.Context) {
	_ = s.c.net.heal(ctx)
	for _, p := range s.c.procs {
		p.Resume()
		p.Restart()
	}
	if s.c.diskDir != "" {
		_ = os.Remove(filepath.Join(s.c.diskDir, "chaos-fill"))
	}
}
