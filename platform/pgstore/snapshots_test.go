package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/pgstore/pgtest"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestSnapshotsSkipCorrupt stores two snapshots of a real qlog replica in
// PostgreSQL, corrupts the newer one in the table, and checks that a
// restarted replica skips it, restores the older one, replays the stream
// tail and ends with the full state.
func TestSnapshotsSkipCorrupt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	nc := qlogtest.StartServer(t).Connect(t)
	cfg := qlog.Config{Service: "pg", ReplicaID: "r0", Conn: nc, Snapshots: pgstore.NewSnapshots(pool, 3), SnapshotEvery: 1 << 40}

	open := func() (*qlog.Log, *qlogtest.Registers) {
		sm := qlogtest.NewRegisters()
		l, err := qlog.Open(ctx, cfg, sm)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := l.WaitReady(ctx); err != nil {
			t.Fatalf("WaitReady: %v", err)
		}
		return l, sm
	}
	put := func(l *qlog.Log, from, to int) {
		for i := from; i < to; i++ {
			if _, err := l.Propose(ctx, qlogtest.Put(fmt.Sprintf("k%d", i), fmt.Sprint(i)), qlog.ProposeOptions{}); err != nil {
				t.Fatalf("Propose: %v", err)
			}
		}
	}
	l, _ := open()
	put(l, 0, 20)
	if rev, err := l.TakeSnapshot(ctx); err != nil || rev != 20 {
		t.Fatalf("TakeSnapshot = %d, %v; want 20", rev, err)
	}
	put(l, 20, 30)
	if rev, err := l.TakeSnapshot(ctx); err != nil || rev != 30 {
		t.Fatalf("TakeSnapshot = %d, %v; want 30", rev, err)
	}
	put(l, 30, 35)
	l.Close()

	tag, err := pool.Exec(ctx, `UPDATE qlog_snapshots SET state = overlay(state placing '\xff'::bytea from 10 for 1) WHERE service = 'pg' AND revision = 30`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt snapshot: %v (%d rows)", err, tag.RowsAffected())
	}
	snaps, err := pgstore.NewSnapshots(pool, 3).NewestSnapshots(ctx, "pg", 5)
	if err != nil || len(snaps) != 2 || snaps[0].Revision != 30 || snaps[1].Revision != 20 {
		t.Fatalf("NewestSnapshots = %d snapshots, %v; want revisions 30, 20", len(snaps), err)
	}

	l2, sm := open()
	defer l2.Close()
	if rev := l2.Revision(); rev != 35 {
		t.Fatalf("restarted at revision %d, want 35", rev)
	}
	// Revision 21 is held (replayed after the revision-20 snapshot), 20 is not.
	if got := l2.CompactRevision(); got != 21 {
		t.Fatalf("CompactRevision = %d, want 21: the corrupt snapshot at 30 was not skipped", got)
	}
	err = l2.Read(ctx, qlog.Serializable, func(int64) error {
		for i := range 35 {
			if v, ok := sm.Get(fmt.Sprintf("k%d", i)); !ok || v != fmt.Sprint(i) {
				return fmt.Errorf("k%d = %q, %v; want %d", i, v, ok, i)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotsPrune(t *testing.T) {
	ctx := context.Background()
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := pgstore.NewSnapshots(pool, 2)
	for rev := int64(1); rev <= 5; rev++ {
		if err := store.SaveSnapshot(ctx, qlog.Snapshot{Service: "s", Replica: "r", Revision: rev, Seq: uint64(rev), Data: []byte("x"), Checksum: []byte("y"), Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := store.NewestSnapshots(ctx, "s", 10)
	if err != nil || len(got) != 2 || got[0].Revision != 5 || got[1].Revision != 4 {
		t.Fatalf("after pruning: %d snapshots, %v; want revisions 5 and 4", len(got), err)
	}
}
