package qlog_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestLinearizable runs concurrent clients against three voters, each
// operation through a random replica, and checks the recorded history of
// puts (which return the previous value) and default (linearizable) reads
// with porcupine.
func TestLinearizable(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	voters := voterNames(3)
	g := &group{reps: make([]*replica, len(voters)), ncs: make([]*nats.Conn, len(voters))}
	for i, id := range voters {
		nc := srv.Connect(t)
		sm := qlogtest.NewRegisters()
		l := openLog(t, nc, qlog.Config{ReplicaID: id, Voters: voters, Logger: logger}, sm)
		g.set(i, &replica{log: l, sm: sm}, nc)
	}

	const (
		clients      = 8
		opsPerClient = 40
		keys         = 4
	)
	h := newHistory()
	var (
		wg                   sync.WaitGroup
		puts, unknown, reads atomic.Int64
		readErrs             atomic.Int64
		firstErrMu           sync.Mutex
		firstErr             error
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
			for n := range opsPerClient {
				r := g.pick(rng)
				key := fmt.Sprintf("k%d", rng.IntN(keys))
				var err error
				if rng.IntN(2) == 0 {
					if err = h.put(c, r.log, key, fmt.Sprintf("c%d-%d", c, n), opTimeout); err != nil {
						unknown.Add(1)
					} else {
						puts.Add(1)
					}
				} else {
					if _, _, err = h.get(c, r, key, opTimeout); err != nil {
						readErrs.Add(1)
					} else {
						reads.Add(1)
					}
				}
				if err != nil {
					firstErrMu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					firstErrMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	// A final read of every key through every replica pins down where each
	// register ended.
	all := make([]string, keys)
	for i := range all {
		all[i] = fmt.Sprintf("k%d", i)
	}
	for i, r := range g.all() {
		if _, err := h.getAll(100+i, r, all, opTimeout); err != nil {
			t.Fatalf("final read through %s: %v", r.log.ReplicaID(), err)
		}
	}
	t.Logf("%d clients, %d ops in %v: %d acknowledged puts, %d puts with unknown outcome, %d reads, %d failed reads",
		clients, clients*opsPerClient, took.Round(time.Millisecond), puts.Load(), unknown.Load(), reads.Load(), readErrs.Load())
	// Without faults nothing should fail; an error here is a finding in
	// itself, even though the history stays checkable.
	if firstErr != nil {
		t.Errorf("an operation failed without any fault: %v", firstErr)
	}
	checkLinearizable(t, h)
}

// TestRegisterModelRejectsViolations is the checker's own control: the
// model and the unknown-outcome handling must reject histories that are
// not linearizable, or the tests above could not fail.
func TestRegisterModelRejectsViolations(t *testing.T) {
	put := func(client int, key, val string, call, ret int64, prev string, exists bool) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: kvInput{Op: "put", Key: key, Value: val}, Call: call, Return: ret,
			Output: kvOutput{Value: prev, Exists: exists}}
	}
	unknownPut := func(client int, key, val string, call int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: kvInput{Op: "put", Key: key, Value: val}, Call: call, Return: -1,
			Output: kvOutput{Unknown: true}}
	}
	get := func(client int, key string, call, ret int64, val string, exists bool) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: kvInput{Op: "get", Key: key}, Call: call, Return: ret,
			Output: kvOutput{Value: val, Exists: exists}}
	}
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"read after write", []porcupine.Operation{put(0, "x", "a", 0, 10, "", false), get(1, "x", 20, 30, "a", true)}, porcupine.Ok},
		{"stale read", []porcupine.Operation{put(0, "x", "a", 0, 10, "", false), get(1, "x", 20, 30, "", false)}, porcupine.Illegal},
		{"concurrent read may miss", []porcupine.Operation{put(0, "x", "a", 0, 30, "", false), get(1, "x", 10, 20, "", false)}, porcupine.Ok},
		{"lost acknowledged write", []porcupine.Operation{put(0, "x", "a", 0, 10, "", false), put(1, "x", "b", 20, 30, "", false)}, porcupine.Illegal},
		{"read goes back in time", []porcupine.Operation{
			put(0, "x", "a", 0, 10, "", false), put(0, "x", "b", 20, 100, "a", true),
			get(1, "x", 30, 40, "b", true), get(2, "x", 50, 60, "a", true),
		}, porcupine.Illegal},
		{"unknown write seen", []porcupine.Operation{unknownPut(0, "x", "a", 0), get(1, "x", 20, 30, "a", true)}, porcupine.Ok},
		{"unknown write never seen", []porcupine.Operation{unknownPut(0, "x", "a", 0), get(1, "x", 20, 30, "", false)}, porcupine.Ok},
		{"unknown write seen then undone", []porcupine.Operation{
			unknownPut(0, "x", "a", 0), get(1, "x", 20, 30, "a", true), get(1, "x", 40, 50, "", false),
		}, porcupine.Illegal},
		{"read of a value never written", []porcupine.Operation{get(1, "x", 20, 30, "z", true)}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			h.ops = tt.ops
			ops, _, _ := h.operations()
			if got := porcupine.CheckOperationsTimeout(registerModel, ops, 10*time.Second); got != tt.want {
				t.Fatalf("CheckOperations = %v, want %v", got, tt.want)
			}
		})
	}
}
