package qlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// memSnapshots is an in-memory SnapshotStore that keeps every snapshot, so
// a test can compare their bytes.
type memSnapshots struct {
	mu    sync.Mutex
	snaps []qlog.Snapshot
}

func (m *memSnapshots) SaveSnapshot(_ context.Context, s qlog.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Data, s.Checksum = bytes.Clone(s.Data), bytes.Clone(s.Checksum)
	m.snaps = append(m.snaps, s)
	return nil
}

func (m *memSnapshots) NewestSnapshots(_ context.Context, service string, limit int) ([]qlog.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []qlog.Snapshot
	for _, s := range m.snaps {
		if s.Service == service {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b qlog.Snapshot) int { return int(b.Revision - a.Revision) })
	return out[:min(limit, len(out))], nil
}

func (m *memSnapshots) at(rev int64) (qlog.Snapshot, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.snaps {
		if s.Revision == rev {
			return s, true
		}
	}
	return qlog.Snapshot{}, false
}

// recordingSM is Registers that also records every entry it applied and
// the result, for replaying the log by hand.
type recordingSM struct {
	*qlogtest.Registers
	entries []qlog.Entry
	results [][]byte
}

func (r *recordingSM) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	e.Cmd = bytes.Clone(e.Cmd)
	res, evs := r.Registers.Apply(e)
	r.entries = append(r.entries, e)
	r.results = append(r.results, bytes.Clone(res))
	return res, evs
}

// mixedLoad proposes a mix of every Registers command from several
// goroutines through the given logs: puts, TTL puts, CAS that succeed and
// fail, deletes, expiries (some due, some raced by renewals) and
// idempotent retries, so that the log holds batches from several
// proposers and every code path of Apply and the dedupe table.
func mixedLoad(t *testing.T, logs []*qlog.Log, phase string, seed uint64) (okExpires int) {
	t.Helper()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			l := logs[g%len(logs)]
			lastVal, lastRev := map[string]string{}, map[string]int64{}
			prop := func(cmd []byte, idem string) (qlog.Result, qlogtest.Reply, bool) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				res, err := l.Propose(ctx, cmd, qlog.ProposeOptions{IdempotencyKey: idem})
				if err != nil {
					t.Errorf("Propose(%s): %v", cmd, err)
					return res, qlogtest.Reply{}, false
				}
				var reply qlogtest.Reply
				if err := json.Unmarshal(res.Value, &reply); err != nil {
					t.Errorf("reply %q: %v", res.Value, err)
					return res, reply, false
				}
				return res, reply, true
			}
			for n := range 25 {
				k := fmt.Sprintf("k%d", rng.IntN(6))
				v := fmt.Sprintf("%s-%d-%d", phase, g, n)
				switch rng.IntN(6) {
				case 0:
					if res, _, ok := prop(qlogtest.Put(k, v), ""); ok {
						lastVal[k], lastRev[k] = v, res.Revision
					}
				case 1:
					ttl := time.Duration(1+rng.IntN(20)) * time.Millisecond
					if res, _, ok := prop(qlogtest.PutTTL(k, v, ttl), ""); ok {
						lastVal[k], lastRev[k] = v, res.Revision
					}
				case 2:
					if res, reply, ok := prop(qlogtest.CAS(k, lastVal[k], v), ""); ok && reply.OK {
						lastVal[k], lastRev[k] = v, res.Revision
					}
				case 3:
					prop(qlogtest.Delete(k), "")
				case 4:
					if _, reply, ok := prop(qlogtest.Expire(k, lastRev[k]), ""); ok && reply.OK {
						mu.Lock()
						okExpires++
						mu.Unlock()
					}
				case 5:
					idem := fmt.Sprintf("idem-%s-%d-%d", phase, g, n)
					first, _, ok1 := prop(qlogtest.Put(k, v), idem)
					again, _, ok2 := prop(qlogtest.Put(k, v+"-retry"), idem)
					if ok1 && ok2 && (!again.Duplicate || again.Revision != first.Revision) {
						t.Errorf("retry with idempotency key %s = %+v, want a duplicate of revision %d", idem, again, first.Revision)
					}
				}
			}
		}()
	}
	wg.Wait()
	return okExpires
}

// TestSnapshotsDeterministic applies one log on several replicas, by
// different routes (the two voters that wrote it live, two observers that
// replay it from the start, one that restores a mid-way snapshot and
// replays the tail), and requires byte-identical snapshots at the same
// revision. Then it replays the recorded entries into fresh Registers by
// hand: same results, same events, same snapshot bytes, with and without a
// snapshot/restore in the middle.
func TestSnapshotsDeterministic(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	voters := []string{"r0", "r1"}
	cfg := func(id string, store qlog.SnapshotStore) qlog.Config {
		// Snapshots only when asked, so that every one compared is at a
		// revision the test chose.
		return qlog.Config{ReplicaID: id, Voters: voters, Snapshots: store, SnapshotEvery: 1 << 40, SnapshotInterval: time.Hour, Logger: logger}
	}
	conn := func() *nats.Conn { return srv.Connect(t) }

	stores := map[string]*memSnapshots{}
	logs := map[string]*qlog.Log{}
	rec := &recordingSM{Registers: qlogtest.NewRegisters()}
	stores["r0"] = &memSnapshots{}
	logs["r0"] = openLog(t, conn(), cfg("r0", stores["r0"]), rec)
	stores["r1"] = &memSnapshots{}
	logs["r1"] = openLog(t, conn(), cfg("r1", stores["r1"]), qlogtest.NewRegisters())

	expires := mixedLoad(t, []*qlog.Log{logs["r0"], logs["r1"]}, "one", 1)
	mid, err := logs["r0"].TakeSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	midSnap, _ := stores["r0"].at(mid)
	expires += mixedLoad(t, []*qlog.Log{logs["r1"], logs["r0"]}, "two", 2)
	if t.Failed() {
		t.FailNow()
	}

	for _, id := range []string{"o1", "o2"} {
		stores[id] = &memSnapshots{}
		logs[id] = openLog(t, conn(), cfg(id, stores[id]), qlogtest.NewRegisters())
	}
	stores["o3"] = &memSnapshots{snaps: []qlog.Snapshot{midSnap}}
	logs["o3"] = openLog(t, conn(), cfg("o3", stores["o3"]), qlogtest.NewRegisters())

	// Every replica catches up to the end of the log (a linearizable read
	// waits for it), then snapshots there.
	var final int64
	for _, id := range []string{"r0", "r1", "o1", "o2", "o3"} {
		if err := logs[id].Read(context.Background(), qlog.Linearizable, func(rev int64) error {
			final = max(final, rev)
			return nil
		}); err != nil {
			t.Fatalf("Read on %s: %v", id, err)
		}
	}
	var ref []byte
	for _, id := range []string{"r0", "r1", "o1", "o2", "o3"} {
		rev, err := logs[id].TakeSnapshot(context.Background())
		if err != nil || rev != final {
			t.Fatalf("TakeSnapshot on %s = %d, %v; want %d", id, rev, err, final)
		}
		s, ok := stores[id].at(final)
		if !ok {
			t.Fatalf("%s stored no snapshot at %d", id, final)
		}
		if ref == nil {
			ref = s.Data
			continue
		}
		if !bytes.Equal(s.Data, ref) {
			t.Errorf("snapshot of %s at revision %d differs from r0's:\n%s\nvs\n%s", id, final, s.Data, ref)
		}
	}
	t.Logf("5 replicas (2 live voters, 2 full replays, 1 from the snapshot at %d) agree byte for byte at revision %d (%d bytes; %d expiries applied)",
		mid, final, len(ref), expires)

	// Replay by hand what r0 applied.
	var (
		entries []qlog.Entry
		results [][]byte
		live    bytes.Buffer
	)
	if err := logs["r0"].Read(context.Background(), qlog.Serializable, func(int64) error {
		entries, results = slices.Clone(rec.entries), slices.Clone(rec.results)
		return rec.Snapshot(&live)
	}); err != nil {
		t.Fatal(err)
	}
	replay := func(sm *qlogtest.Registers, es []qlog.Entry, offset int) []qlog.Event {
		var evs []qlog.Event
		for i, e := range es {
			res, ev := sm.Apply(e)
			if !bytes.Equal(res, results[offset+i]) {
				t.Fatalf("replayed revision %d gave %s, the live replica %s", e.Revision, res, results[offset+i])
			}
			evs = append(evs, ev...)
		}
		return evs
	}
	snapshot := func(sm *qlogtest.Registers) []byte {
		var b bytes.Buffer
		if err := sm.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := qlogtest.NewRegisters(), qlogtest.NewRegisters()
	evA, evB := replay(a, entries, 0), replay(b, entries, 0)
	if !bytes.Equal(snapshot(a), snapshot(b)) || !bytes.Equal(snapshot(a), live.Bytes()) {
		t.Fatalf("two replays of %d entries and the live state machine disagree:\n%s\n%s\n%s", len(entries), snapshot(a), snapshot(b), live.Bytes())
	}
	ja, _ := json.Marshal(evA)
	jb, _ := json.Marshal(evB)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("two replays gave different events")
	}
	// Snapshot half-way, restore into a fresh machine, replay the rest.
	half := len(entries) / 2
	c := qlogtest.NewRegisters()
	replay(c, entries[:half], 0)
	d := qlogtest.NewRegisters()
	if err := d.Restore(bytes.NewReader(snapshot(c))); err != nil {
		t.Fatal(err)
	}
	replay(d, entries[half:], half)
	if !bytes.Equal(snapshot(d), live.Bytes()) {
		t.Fatalf("restore at entry %d and replay of the rest differs from the live state:\n%s\n%s", half, snapshot(d), live.Bytes())
	}
	t.Logf("replayed %d recorded entries twice and across a restore: identical results, events and snapshots", len(entries))
}

func (m *memSnapshots) revisions() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var revs []int64
	for _, s := range m.snaps {
		revs = append(revs, s.Revision)
	}
	return revs
}
