package config_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/pgstore/pgtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config"
)

// TestHistoryReachesPostgres keeps only 5 revisions in memory and checks
// that GET /v1/history still returns every version of a key, the older
// ones from the PostgreSQL archive, newest first and without duplicates.
func TestHistoryReachesPostgres(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.DiscardHandler)
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	nc := qlogtest.StartServer(t).Connect(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() {
		served <- config.Serve(ctx, config.Settings{RetainRevisions: 5, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 1000, Process: service.Process{ShutdownTimeout: time.Second}}}, ln, nc, pool, logger)
	}()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()
	waitFor(t, func() bool { return call(t, "GET", base+"/readyz", "").status == 200 })

	for i := range 20 {
		expect(t, call(t, "PUT", base+"/v1/kv/h", fmt.Sprint(i)), 200)
		expect(t, call(t, "PUT", base+"/v1/kv/noise", fmt.Sprint(i)), 200)
	}
	expect(t, call(t, "DELETE", base+"/v1/kv/h", ""), 200)

	var items []any
	waitFor(t, func() bool {
		r := expect(t, call(t, "GET", base+"/v1/history?key=/h&limit=100", ""), 200)
		items = r.body["items"].([]any)
		return len(items) == 21
	})
	prev := int64(1 << 62)
	for i, it := range items {
		m := it.(map[string]any)
		rev := int64(m["modRevision"].(float64))
		if rev >= prev {
			t.Fatalf("history item %d has revision %d after %d: not newest first or duplicated", i, rev, prev)
		}
		prev = rev
		if i == 0 && m["deleted"] != true {
			t.Fatalf("newest history item = %v, want the delete", m)
		}
		if i > 0 && m["value"] != float64(20-i) {
			t.Fatalf("history item %d = %v, want value %d", i, m, 20-i)
		}
	}
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
