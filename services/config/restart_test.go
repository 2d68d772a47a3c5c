package config_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config"
)

// TestRestartKeepsAcknowledgedWrites writes through a replica that
// snapshots every 50 entries, closes it, restarts the NATS server, opens
// a new replica with the same ID, and reads every acknowledged write back.
func TestRestartKeepsAcknowledgedWrites(t *testing.T) {
	srv := qlogtest.StartServer(t)
	s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 50}}
	open := func() (*config.Replica, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep, err := config.Open(ctx, s, srv.Connect(t), nil, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if err := rep.Log.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(rep.Handler)
		t.Cleanup(hs.Close)
		return rep, hs.URL
	}
	rep, url := open()
	for i := range 180 {
		expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/kv/r/%d", url, i), fmt.Sprint(i)), 200)
	}
	rev := rep.Log.Revision()
	rep.Close()
	srv.Stop()
	srv.Start()

	rep, url = open()
	defer rep.Close()
	if got := rep.Log.Revision(); got != rev {
		t.Fatalf("restarted at revision %d, want %d", got, rev)
	}
	for i := range 180 {
		r := expect(t, call(t, "GET", fmt.Sprintf("%s/v1/kv/r/%d", url, i), ""), 200)
		if r.body["value"] != float64(i) {
			t.Fatalf("/r/%d = %v after restart", i, r.body)
		}
	}
}
