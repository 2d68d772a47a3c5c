package qlog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// gatedSM is Registers whose Apply can be held, to make a replica lag
// behind the stream for as long as a test wants.
type gatedSM struct {
	*qlogtest.Registers
	gate    atomic.Pointer[chan struct{}] // while set, Apply waits for it to close
	waiting chan struct{}                 // receives once Apply is held
}

func (g *gatedSM) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	if ch := g.gate.Load(); ch != nil {
		select {
		case g.waiting <- struct{}{}:
		default:
		}
		<-*ch
	}
	return g.Registers.Apply(e)
}

// TestLaggingVoterSurvivesTrim holds one voter's apply loop while the
// others write well over a consumer's prefetch, snapshot and trim the
// stream. When it is let go, the entries it still needs are gone from the
// stream; the log must bring it back to the others' state (from a newer
// snapshot, or by not trimming what a voter still needs), not fail-stop
// it for a "gap" that is only compaction.
func TestLaggingVoterSurvivesTrim(t *testing.T) {
	laggingVoterSurvivesTrim(t, func(s qlog.SnapshotStore) qlog.SnapshotStore { return s }, func() {})
}

// TestLaggingVoterSurvivesTrimThroughStoreErrors is the same with the
// lagging voter's snapshot store failing its first listings: not knowing
// yet which snapshots there are is no reason to fail-stop (a chaos run
// fail-stopped config-1 for good when its stream info timed out over a
// throttled link; the stream info and the listing take the same path).
func TestLaggingVoterSurvivesTrimThroughStoreErrors(t *testing.T) {
	var lagStore *failingLists
	laggingVoterSurvivesTrim(t, func(s qlog.SnapshotStore) qlog.SnapshotStore {
		lagStore = &failingLists{SnapshotStore: s}
		return lagStore
	}, func() { lagStore.failures.Store(3) })
	if left := lagStore.failures.Load(); left > 0 {
		t.Fatalf("the lagging voter listed snapshots %d times, fewer than the failures it was to meet", 3-left)
	}
}

// failingLists is a snapshot store whose next failures listings fail.
type failingLists struct {
	qlog.SnapshotStore
	failures atomic.Int64
}

func (f *failingLists) NewestSnapshots(ctx context.Context, service string, limit int) ([]qlog.Snapshot, error) {
	if f.failures.Add(-1) >= 0 {
		return nil, errors.New("snapshot store unreachable (injected)")
	}
	return f.SnapshotStore.NewestSnapshots(ctx, service, limit)
}

// laggingVoterSurvivesTrim runs the test with the lagging voter's snapshot
// store wrapped by lagStore; atRelease runs just before the voter is let go.
func laggingVoterSurvivesTrim(t *testing.T, lagStore func(qlog.SnapshotStore) qlog.SnapshotStore, atRelease func()) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	nc := srv.Connect(t)
	store := snapshotStore(t, nc)
	voters := []string{"lag", "w0", "w1"}
	cfg := func(id string, store qlog.SnapshotStore) qlog.Config {
		return qlog.Config{ReplicaID: id, Voters: voters, Snapshots: store, SnapshotEvery: 1 << 40, SnapshotInterval: time.Hour,
			RetainEntries: 10, Logger: logger}
	}
	w0 := openReplica(t, srv.Connect(t), cfg("w0", store))
	openReplica(t, srv.Connect(t), cfg("w1", store))
	gsm := &gatedSM{Registers: qlogtest.NewRegisters(), waiting: make(chan struct{}, 1)}
	lag := openLog(t, srv.Connect(t), cfg("lag", lagStore(store)), gsm)

	for i := range 5 {
		propose(t, w0.log, qlogtest.Put(fmt.Sprintf("k%d", i), "v"), "")
	}
	waitFor(t, "the lagging voter to apply the first writes", 10*time.Second, func() bool { return lag.Revision() == 5 })
	gate := make(chan struct{})
	gsm.gate.Store(&gate)
	released := false
	release := func() {
		if !released {
			released = true
			gsm.gate.Store(nil)
			close(gate)
		}
	}
	t.Cleanup(release) // Close waits for the apply loop
	propose(t, w0.log, qlogtest.Put("held", "v"), "")
	select {
	case <-gsm.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the lagging voter never started applying the held write")
	}

	// More stream messages than the lagging voter's consumer prefetches
	// (1024), each acknowledged by the other two voters.
	const n = 1200
	start := time.Now()
	for i := range n {
		propose(t, w0.log, qlogtest.Put(fmt.Sprintf("k%d", i%50), fmt.Sprint(i)), "")
	}
	rev, err := w0.log.TakeSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	first := streamInfo(t, nc, "test").State.FirstSeq
	t.Logf("%d writes in %v while one voter was held at revision 6; snapshot at %d; the stream now starts at sequence %d",
		n, time.Since(start).Round(time.Millisecond), rev, first)

	atRelease()
	release()
	final := w0.log.Revision()
	var fe *qlog.FailedError
	waitFor(t, "the lagging voter to catch up", 30*time.Second, func() bool {
		if errors.As(lag.Ready(), &fe) {
			t.Fatalf("the lagging voter fail-stopped instead of catching up: %v", fe)
		}
		return lag.Revision() >= final
	})
	var a, b bytes.Buffer
	_ = w0.log.Read(context.Background(), qlog.Linearizable, func(int64) error { return w0.sm.Snapshot(&a) })
	_ = lag.Read(context.Background(), qlog.Linearizable, func(int64) error { return gsm.Snapshot(&b) })
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("the caught-up voter's state differs from the others'")
	}
}
