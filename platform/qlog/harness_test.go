package qlog_test

// Shared machinery for the linearizability and fault tests: a recorded
// history of register operations checked with porcupine, a load generator
// whose every goroutine is owned and joined, a set of replicas that can be
// killed and restarted, and small helpers that wait on conditions with
// deadlines instead of sleeping.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// ---- the register model -------------------------------------------------

// kvInput is one client call: a put (which also returns the previous value,
// so every put is a read too) or a get.
type kvInput struct {
	Op    string // "put" or "get"
	Key   string
	Value string // for put
}

// kvOutput is what the call returned. For a put, Value and Exists describe
// the previous value (qlogtest.Reply.Prev/Exists).
type kvOutput struct {
	Value  string
	Exists bool
	// Unknown marks a put whose Propose failed: it may or may not have
	// taken effect, and its reply is unknown. Its return time is the end
	// of the history, so the checker may place it anywhere after its call
	// or treat it as never applied.
	Unknown bool
}

type regState struct {
	Value  string
	Exists bool
}

// registerModel is a map of registers, partitioned by key so each key is
// checked as a single register.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(regState), input.(kvInput), output.(kvOutput)
		switch in.Op {
		case "get":
			return out.Value == s.Value && out.Exists == s.Exists, s
		case "put":
			next := regState{Value: in.Value, Exists: true}
			if out.Unknown {
				return true, next
			}
			return out.Value == s.Value && out.Exists == s.Exists, next
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		switch {
		case in.Op == "get":
			return fmt.Sprintf("get(%s) -> %q %v", in.Key, out.Value, out.Exists)
		case out.Unknown:
			return fmt.Sprintf("put(%s, %s) -> ?", in.Key, in.Value)
		default:
			return fmt.Sprintf("put(%s, %s) -> prev %q %v", in.Key, in.Value, out.Value, out.Exists)
		}
	},
	DescribeState: func(state any) string {
		s := state.(regState)
		return fmt.Sprintf("%q %v", s.Value, s.Exists)
	},
}

// ---- the recorded history -----------------------------------------------

// history records operations with call and return times taken from one
// monotonic clock.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func newHistory() *history { return &history{start: time.Now()} }

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in kvInput, call, ret int64, out kvOutput) {
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
	h.mu.Unlock()
}

// put proposes key=value through l and records the call. A nil error means
// the write was acknowledged.
func (h *history) put(client int, l *qlog.Log, key, value string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := h.now()
	res, err := l.Propose(ctx, qlogtest.Put(key, value), qlog.ProposeOptions{})
	ret := h.now()
	if err != nil {
		// Whatever the error, the entry may have been stored: its outcome
		// is unknown (a proposal that never left is a special case).
		h.add(client, kvInput{Op: "put", Key: key, Value: value}, call, -1, kvOutput{Unknown: true})
		return err
	}
	var reply qlogtest.Reply
	if err := json.Unmarshal(res.Value, &reply); err != nil {
		return fmt.Errorf("reply %q: %w", res.Value, err)
	}
	h.add(client, kvInput{Op: "put", Key: key, Value: value}, call, ret, kvOutput{Value: reply.Prev, Exists: reply.Exists})
	return nil
}

// get reads key through r with a linearizable read and records it. A read
// that failed is not recorded: it had no effect and returned nothing.
func (h *history) get(client int, r *replica, key string, timeout time.Duration) (string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		v  string
		ok bool
	)
	call := h.now()
	err := r.log.Read(ctx, qlog.Linearizable, func(int64) error {
		v, ok = r.sm.Get(key)
		return nil
	})
	ret := h.now()
	if err != nil {
		return "", false, err
	}
	h.add(client, kvInput{Op: "get", Key: key}, call, ret, kvOutput{Value: v, Exists: ok})
	return v, ok, nil
}

// getAll reads keys in one linearizable read through r and records one get
// per key, all with that read's interval.
func (h *history) getAll(client int, r *replica, keys []string, timeout time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := make(map[string]string, len(keys))
	call := h.now()
	err := r.log.Read(ctx, qlog.Linearizable, func(int64) error {
		for _, k := range keys {
			if v, ok := r.sm.Get(k); ok {
				got[k] = v
			}
		}
		return nil
	})
	ret := h.now()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		v, ok := got[k]
		h.add(client, kvInput{Op: "get", Key: k}, call, ret, kvOutput{Value: v, Exists: ok})
	}
	return got, nil
}

// operations returns the history ready for the checker: unknown puts end
// at the end of the history, and unknown puts whose value nobody ever
// observed are dropped. Dropping them is exact, not an approximation: a
// write whose unique value no read and no later put's prev ever returned
// can be linearized after everything else, so the history is linearizable
// with it iff it is without it. It keeps the checker's search small when a
// fault leaves many proposals with unknown outcomes.
func (h *history) operations() (ops []porcupine.Operation, unknown, dropped int) {
	h.mu.Lock()
	all := slices.Clone(h.ops)
	h.mu.Unlock()
	type kv struct{ k, v string }
	observed := map[kv]bool{}
	var end int64
	for _, op := range all {
		end = max(end, op.Return, op.Call)
		out := op.Output.(kvOutput)
		if !out.Unknown && out.Exists {
			observed[kv{op.Input.(kvInput).Key, out.Value}] = true
		}
	}
	for _, op := range all {
		if op.Output.(kvOutput).Unknown {
			unknown++
			in := op.Input.(kvInput)
			if !observed[kv{in.Key, in.Value}] {
				dropped++
				continue
			}
			op.Return = end + 1
		}
		ops = append(ops, op)
	}
	return ops, unknown, dropped
}

// checkLinearizable runs porcupine on the history and fails t unless it is
// linearizable. On failure it writes a visualization and logs its path.
func checkLinearizable(t *testing.T, h *history) {
	t.Helper()
	ops, unknown, dropped := h.operations()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, ops, 60*time.Second)
	t.Logf("porcupine: %v on %d operations (%d puts with unknown outcome, %d of them never observed and left out) in %v",
		res, len(ops), unknown, dropped, time.Since(start).Round(time.Millisecond))
	switch res {
	case porcupine.Ok:
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("qlog-%s-%d.html", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
		if err := porcupine.VisualizePath(registerModel, info, path); err == nil {
			t.Errorf("history is NOT linearizable; visualization: %s", path)
		} else {
			t.Errorf("history is NOT linearizable (visualization failed: %v)", err)
		}
	default:
		t.Errorf("porcupine could not decide within its timeout (result %v)", res)
	}
}

// ---- replicas that can be killed and restarted --------------------------

// testLogger collects the replicas' logs in memory and prints them if the
// test fails. (Writing to t.Log directly could race with the end of the
// test: NATS callbacks may log after Close.)
type logSink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logSink) {
	sink := &logSink{}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("QLOG_TEST_LOGS") != "" {
			t.Logf("qlog logs:\n%s", sink.String())
		}
	})
	return slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelInfo})), sink
}

// openLog opens a replica on nc with sm, retrying while the stream cannot
// be created yet (a fresh cluster still electing its JetStream leader),
// and waits until it is ready.
func openLog(t *testing.T, nc *nats.Conn, cfg qlog.Config, sm qlog.StateMachine) *qlog.Log {
	t.Helper()
	cfg.Conn = nc
	if cfg.Service == "" {
		cfg.Service = "test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		l   *qlog.Log
		err error
	)
	for {
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		l, err = qlog.Open(octx, cfg, sm)
		ocancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		t.Logf("Open(%s): %v; retrying", cfg.ReplicaID, err)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.ReplicaID, err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady(%s): %v", cfg.ReplicaID, err)
	}
	return l
}

// group is a set of voters that the load generator picks from. A slot is
// nil while its replica is down.
type group struct {
	mu   sync.Mutex
	reps []*replica
	ncs  []*nats.Conn
}

func (g *group) pick(rng *rand.Rand) *replica {
	g.mu.Lock()
	defer g.mu.Unlock()
	var up []*replica
	for _, r := range g.reps {
		if r != nil {
			up = append(up, r)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[rng.IntN(len(up))]
}

func (g *group) at(i int) *replica {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reps[i]
}

func (g *group) set(i int, r *replica, nc *nats.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reps[i], g.ncs[i] = r, nc
}

func (g *group) all() []*replica {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reps)
}

// kill takes replica i out of the group, then closes its Log and its
// connection, as a crashed process would lose both.
func (g *group) kill(i int) {
	g.mu.Lock()
	r, nc := g.reps[i], g.ncs[i]
	g.reps[i], g.ncs[i] = nil, nil
	g.mu.Unlock()
	r.log.Close()
	nc.Close()
}

// voterNames returns r0..r<n-1>.
func voterNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("r%d", i)
	}
	return out
}

// ---- load ---------------------------------------------------------------

// load runs writers that put unique keys w<i>-<n> (to count lost writes)
// and clients that put and get a few shared keys (to give the checker
// contention), all recorded in one history, until stopped.
type load struct {
	h       *history
	g       *group
	timeout time.Duration
	stop    chan struct{}
	wg      sync.WaitGroup
	acked   atomic.Int64 // acknowledged puts
	failed  atomic.Int64 // puts with unknown outcome
	reads   atomic.Int64

	mu        sync.Mutex
	ackedKeys map[string]string // unique key -> value, acknowledged
	ackedVia  map[string]int    // replica ID -> acknowledged puts proposed through it
}

const opTimeout = 10 * time.Second

// startLoad starts the load; each operation gives up after timeout (a put
// that gives up has an unknown outcome).
func startLoad(h *history, g *group, writers, clients, sharedKeys int, timeout time.Duration) *load {
	ld := &load{h: h, g: g, timeout: timeout, stop: make(chan struct{}), ackedKeys: map[string]string{}, ackedVia: map[string]int{}}
	for i := range writers {
		ld.wg.Add(1)
		go ld.writer(i)
	}
	for j := range clients {
		ld.wg.Add(1)
		go ld.client(writers+j, sharedKeys)
	}
	return ld
}

func (ld *load) stopped() bool {
	select {
	case <-ld.stop:
		return true
	default:
		return false
	}
}

// pause keeps the load modest and backs off after errors; it is pacing,
// not an assertion.
func (ld *load) pause(d time.Duration) {
	select {
	case <-ld.stop:
	case <-time.After(d):
	}
}

func (ld *load) writer(id int) {
	defer ld.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for n := 0; !ld.stopped(); n++ {
		r := ld.g.pick(rng)
		if r == nil {
			ld.pause(20 * time.Millisecond)
			continue
		}
		key := fmt.Sprintf("w%d-%d", id, n)
		val := key + "@" + r.log.ReplicaID()
		if err := ld.h.put(id, r.log, key, val, ld.timeout); err != nil {
			ld.failed.Add(1)
			ld.pause(50 * time.Millisecond)
			continue
		}
		ld.acked.Add(1)
		ld.mu.Lock()
		ld.ackedKeys[key] = val
		ld.ackedVia[r.log.ReplicaID()]++
		ld.mu.Unlock()
		ld.pause(2 * time.Millisecond)
	}
}

func (ld *load) client(id, sharedKeys int) {
	defer ld.wg.Done()
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for n := 0; !ld.stopped(); n++ {
		r := ld.g.pick(rng)
		if r == nil {
			ld.pause(20 * time.Millisecond)
			continue
		}
		key := fmt.Sprintf("s%d", rng.IntN(sharedKeys))
		if rng.IntN(2) == 0 {
			if err := ld.h.put(id, r.log, key, fmt.Sprintf("c%d-%d", id, n), ld.timeout); err != nil {
				ld.failed.Add(1)
				ld.pause(50 * time.Millisecond)
				continue
			}
			ld.acked.Add(1)
		} else {
			if _, _, err := ld.h.get(id, r, key, ld.timeout); err != nil {
				ld.pause(50 * time.Millisecond)
				continue
			}
			ld.reads.Add(1)
		}
		ld.pause(2 * time.Millisecond)
	}
}

// finish stops the load and waits for every goroutine of it.
func (ld *load) finish() {
	close(ld.stop)
	ld.wg.Wait()
}

// ackedThrough returns how many unique puts proposed through replica id
// were acknowledged.
func (ld *load) ackedThrough(id string) int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.ackedVia[id]
}

func (ld *load) acknowledged() map[string]string {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return maps.Clone(ld.ackedKeys)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// verifyNoLoss reads every acknowledged unique key, and the shared keys,
// back through each replica in one linearizable read per replica (recorded
// in the history), and fails for every acknowledged write that is missing
// or has another value. It returns how many unknown-outcome writes turned
// out to have taken effect.
func verifyNoLoss(t *testing.T, h *history, reps []*replica, acked map[string]string, sharedKeys int, unknownKeys []string) {
	t.Helper()
	keys := make([]string, 0, len(acked)+sharedKeys)
	for k := range acked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i := range sharedKeys {
		keys = append(keys, fmt.Sprintf("s%d", i))
	}
	keys = append(keys, unknownKeys...)
	for i, r := range reps {
		if err := r.log.Ready(); err != nil {
			t.Errorf("replica %s not ready at the end: %v", r.log.ReplicaID(), err)
			continue
		}
		got, err := h.getAll(1000+i, r, keys, 30*time.Second)
		if err != nil {
			t.Errorf("final read through %s: %v", r.log.ReplicaID(), err)
			continue
		}
		lost := 0
		for k, want := range acked {
			if v, ok := got[k]; !ok || v != want {
				if lost < 5 {
					t.Errorf("acknowledged write %s=%s on %s: got %q, present %v", k, want, r.log.ReplicaID(), v, ok)
				}
				lost++
			}
		}
		applied := 0
		for _, k := range unknownKeys {
			if _, ok := got[k]; ok {
				applied++
			}
		}
		t.Logf("replica %s at revision %d: %d acknowledged unique writes, lost %d; %d of %d unknown-outcome unique writes took effect",
			r.log.ReplicaID(), r.log.Revision(), len(acked), lost, applied, len(unknownKeys))
		if lost > 0 {
			t.Errorf("replica %s lost %d acknowledged writes", r.log.ReplicaID(), lost)
		}
	}
}

// unknownUniqueKeys lists the unique keys whose puts had unknown outcomes.
func unknownUniqueKeys(h *history) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, op := range h.ops {
		in := op.Input.(kvInput)
		if op.Output.(kvOutput).Unknown && strings.HasPrefix(in.Key, "w") {
			out = append(out, in.Key)
		}
	}
	return out
}
