package election_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/pgstore/pgtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/election"
)

// TestSnapshotsInPostgres: with PostgreSQL configured, a replica keeps its
// snapshots there, and a restarted replica starts from that snapshot (its
// watch history begins after it) with the elections as they were.
func TestSnapshotsInPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	srv := qlogtest.StartServer(t)
	s := election.Settings{Replicated: service.Replicated{ReplicaID: "election-0", StreamReplicas: 1, SnapshotEvery: 100_000}}
	open := func() (*election.Replica, string) {
		rep, err := election.Open(ctx, s, srv.Connect(t), pool, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Log.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(rep.Handler)
		t.Cleanup(func() { hs.Close(); rep.Close() })
		contractDoc.ExpectValidated(t, hs.Listener.Addr().String())
		return rep, hs.URL
	}
	rep, url := open()
	u := url + "/v1/elections/pg"
	first := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "1h")), 200).num("token")
	expect(t, call(t, "POST", u+"/resign", tokenBody("c1", first)), 200)
	want := expect(t, call(t, "POST", u+"/campaign", campaignBody("c2", "1h")), 200)
	snapRev, err := rep.Log.TakeSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM qlog_snapshots WHERE service = 'election' AND revision = $1`, snapRev).Scan(&n); err != nil || n != 1 {
		t.Fatalf("snapshots in PostgreSQL at revision %d: %d, %v", snapRev, n, err)
	}
	rep.Close()

	rep, url = open()
	if c := rep.Log.CompactRevision(); c != snapRev+1 {
		t.Fatalf("the restarted replica holds events from revision %d, want %d: it did not start from the snapshot", c, snapRev+1)
	}
	if got := expect(t, call(t, "GET", url+"/v1/elections/pg", ""), 200); got.raw != want.raw || got.num("term") != 2 {
		t.Fatalf("after restoring from PostgreSQL GET = %s, want %s", got.raw, want.raw)
	}
}
