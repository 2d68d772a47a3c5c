package qlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// replica is one Log with its state machine, for tests.
type replica struct {
	log *qlog.Log
	sm  *qlogtest.Registers
}

func openReplica(t *testing.T, nc *nats.Conn, cfg qlog.Config) *replica {
	t.Helper()
	cfg.Conn = nc
	if cfg.Service == "" {
		cfg.Service = "test"
	}
	sm := qlogtest.NewRegisters()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := qlog.Open(ctx, cfg, sm)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.ReplicaID, err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady(%s): %v", cfg.ReplicaID, err)
	}
	return &replica{log: l, sm: sm}
}

func (r *replica) get(t *testing.T, c qlog.Consistency, key string) (string, bool, int64) {
	t.Helper()
	var (
		v   string
		ok  bool
		rev int64
	)
	err := r.log.Read(context.Background(), c, func(revision int64) error {
		v, ok = r.sm.Get(key)
		rev = revision
		return nil
	})
	if err != nil {
		t.Fatalf("Read(%s): %v", key, err)
	}
	return v, ok, rev
}

func propose(t *testing.T, l *qlog.Log, cmd []byte, key string) (qlog.Result, qlogtest.Reply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := l.Propose(ctx, cmd, qlog.ProposeOptions{IdempotencyKey: key})
	if err != nil {
		t.Fatalf("Propose(%s): %v", cmd, err)
	}
	var reply qlogtest.Reply
	if err := json.Unmarshal(res.Value, &reply); err != nil {
		t.Fatalf("reply %q: %v", res.Value, err)
	}
	return res, reply
}

func TestProposeReadWatch(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0"})

	w, err := r.log.Watch(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, reply := propose(t, r.log, qlogtest.Put("a", "1"), "")
	if res.Revision != 1 || !reply.OK {
		t.Fatalf("first put = rev %d %+v, want rev 1 ok", res.Revision, reply)
	}
	_, reply = propose(t, r.log, qlogtest.CAS("a", "0", "2"), "")
	if reply.OK || reply.Prev != "1" {
		t.Fatalf("CAS with wrong from = %+v, want a failed CAS seeing 1", reply)
	}
	res, reply = propose(t, r.log, qlogtest.CAS("a", "1", "2"), "")
	if !reply.OK || res.Revision != 3 {
		t.Fatalf("CAS = rev %d %+v, want rev 3 ok", res.Revision, reply)
	}
	for _, c := range []qlog.Consistency{qlog.Linearizable, qlog.Serializable} {
		if v, ok, rev := r.get(t, c, "a"); v != "2" || !ok || rev != 3 {
			t.Fatalf("Get(a, %v) = %q %v at %d, want 2 at 3", c, v, ok, rev)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range []qlog.Event{{Revision: 1, Type: "put", Key: "a", Data: []byte("1")}, {Revision: 3, Type: "put", Key: "a", Data: []byte("2")}} {
		ev, err := w.Next(ctx)
		if err != nil || ev.Revision != want.Revision || string(ev.Data) != string(want.Data) {
			t.Fatalf("Watch.Next = %+v, %v; want %+v", ev, err, want)
		}
	}
}

// TestIdempotency proposes the same key twice on one replica and once on
// another: one effect, the same result each time.
func TestIdempotency(t *testing.T) {
	srv := qlogtest.StartServer(t)
	a := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "a", Voters: []string{"a", "b"}})
	b := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "b", Voters: []string{"a", "b"}})

	first, reply := propose(t, a.log, qlogtest.CAS("k", "", "x"), "key-1")
	if reply.OK {
		t.Fatalf("CAS on missing key succeeded")
	}
	propose(t, a.log, qlogtest.Put("k", "v1"), "key-2")
	for _, r := range []*replica{a, b, a} {
		res, _ := propose(t, r.log, qlogtest.Put("k", "v1"), "key-2")
		if !res.Duplicate || res.Revision != 2 {
			t.Fatalf("retry on %s = %+v, want a duplicate of revision 2", r.log.ReplicaID(), res)
		}
	}
	propose(t, b.log, qlogtest.Put("k", "v2"), "")
	res, _ := propose(t, b.log, qlogtest.Put("k", "v1"), "key-2")
	if !res.Duplicate {
		t.Fatalf("late retry applied again: %+v", res)
	}
	if v, _, _ := b.get(t, qlog.Linearizable, "k"); v != "v2" {
		t.Fatalf("k = %q, want v2: a retried put took effect twice", v)
	}
	again, _ := propose(t, a.log, qlogtest.CAS("k", "", "x"), "key-1")
	if string(again.Value) != string(first.Value) || again.Revision != first.Revision {
		t.Fatalf("retry result = %+v, want the first %+v", again, first)
	}
}

// TestConcurrentProposalsAreBatched checks group commit: many concurrent
// proposals share stream messages, and every one gets its own result.
func TestConcurrentProposalsAreBatched(t *testing.T) {
	srv := qlogtest.StartServer(t)
	nc := srv.Connect(t)
	r := openReplica(t, nc, qlog.Config{ReplicaID: "r0"})
	const n = 400
	var wg sync.WaitGroup
	revs := make([]int64, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, reply := propose(t, r.log, qlogtest.Put(fmt.Sprintf("k%d", i), "v"), "")
			if !reply.OK {
				t.Errorf("put %d not ok", i)
			}
			revs[i] = res.Revision
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, rev := range revs {
		if rev < 1 || rev > n || seen[rev] {
			t.Fatalf("revision %d out of range or repeated", rev)
		}
		seen[rev] = true
	}
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), qlog.StreamName("test"))
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(context.Background())
	if info.State.Msgs >= n {
		t.Fatalf("%d proposals took %d stream messages; group commit did not batch", n, info.State.Msgs)
	}
	t.Logf("%d proposals in %d stream messages", n, info.State.Msgs)
}

func TestSnapshotRestoreAndTrim(t *testing.T) {
	srv := qlogtest.StartServer(t)
	nc := srv.Connect(t)
	store := snapshotStore(t, nc)
	cfg := qlog.Config{ReplicaID: "r0", Snapshots: store, SnapshotEvery: 1 << 40, RetainEntries: 5}
	r := openReplica(t, nc, cfg)
	for i := range 50 {
		propose(t, r.log, qlogtest.Put(fmt.Sprintf("k%d", i%10), fmt.Sprint(i)), "")
	}
	rev, err := r.log.TakeSnapshot(context.Background())
	if err != nil || rev != 50 {
		t.Fatalf("TakeSnapshot = %d, %v; want 50", rev, err)
	}
	for i := 50; i < 60; i++ {
		propose(t, r.log, qlogtest.Put(fmt.Sprintf("k%d", i%10), fmt.Sprint(i)), "")
	}
	r.log.Close()

	js, _ := jetstream.New(nc)
	st, _ := js.Stream(context.Background(), qlog.StreamName("test"))
	info, _ := st.Info(context.Background())
	if info.State.FirstSeq <= 1 {
		t.Fatalf("stream first seq = %d, want it trimmed below the snapshot", info.State.FirstSeq)
	}
	r2 := openReplica(t, nc, cfg)
	if got := r2.log.Revision(); got != 60 {
		t.Fatalf("restarted replica at revision %d, want 60", got)
	}
	for i := range 10 {
		if v, _, _ := r2.get(t, qlog.Serializable, fmt.Sprintf("k%d", i)); v != fmt.Sprint(50+i) {
			t.Fatalf("k%d = %q after restore, want %d", i, v, 50+i)
		}
	}
	if _, err := r2.log.Watch(10, nil); !errors.As(err, new(*qlog.CompactedError)) {
		t.Fatalf("Watch(10) after restore = %v, want a CompactedError", err)
	}
}

// snapshotStore opens the object-store snapshot bucket of service "test" on nc.
func snapshotStore(t *testing.T, nc *nats.Conn) *qlog.ObjectStoreSnapshots {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return qlog.NewObjectStoreSnapshots(js, "test", 1, 3)
}

// heldSnapshots is a memSnapshots whose first save waits for release.
type heldSnapshots struct {
	memSnapshots
	saving  chan struct{} // closed when the first save began
	release chan struct{}
	once    sync.Once
}

func (h *heldSnapshots) SaveSnapshot(ctx context.Context, s qlog.Snapshot) error {
	h.once.Do(func() {
		close(h.saving)
		<-h.release
	})
	return h.memSnapshots.SaveSnapshot(ctx, s)
}

// TestSnapshotTakenOncePerDue: every entry applied while a due snapshot
// is being saved asks for a snapshot again, but once the save is done
// the log has not grown by SnapshotEvery since it, and no second
// snapshot is taken. (One was, right after each due snapshot, before the
// log checked again: twice the cost of snapshotting.)
func TestSnapshotTakenOncePerDue(t *testing.T) {
	srv := qlogtest.StartServer(t)
	nc := srv.Connect(t)
	store := &heldSnapshots{saving: make(chan struct{}), release: make(chan struct{})}
	r := openReplica(t, nc, qlog.Config{ReplicaID: "r0", Snapshots: store, SnapshotEvery: 20, SnapshotInterval: time.Hour})
	for i := range 20 {
		propose(t, r.log, qlogtest.Put(fmt.Sprintf("k%d", i), "v"), "")
	}
	select {
	case <-store.saving:
	case <-time.After(30 * time.Second):
		t.Fatal("no snapshot after SnapshotEvery entries")
	}
	for i := range 10 {
		propose(t, r.log, qlogtest.Put(fmt.Sprintf("more%d", i), "v"), "")
	}
	close(store.release)
	deadline := time.Now().Add(10 * time.Second)
	for len(store.revisions()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// A repeated snapshot follows the first at once; give it time to show.
	time.Sleep(500 * time.Millisecond)
	if revs := store.revisions(); len(revs) != 1 {
		t.Fatalf("%d snapshots saved, want 1 (revisions %v)", len(revs), revs)
	}
}
