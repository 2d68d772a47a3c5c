package qlog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestMetrics: the log's own health is on its collector, with the values
// of what just happened.
func TestMetrics(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := r.log.Propose(ctx, qlogtest.Put("k", strings.Repeat("v", i)), qlog.ProposeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r.get(t, qlog.Linearizable, "k")

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(r.log.Collector())
	for name, want := range map[string]float64{
		"steward_qlog_applied_revision": 3,
		"steward_qlog_applied_sequence": 3,
		"steward_qlog_ready":            1,
		"steward_qlog_failed":           0,
		"steward_qlog_voter":            1,
		"steward_qlog_apply_lag":        0,
		"steward_qlog_expiry_held":      0,
	} {
		if got := gaugeValue(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"steward_qlog_publish_seconds", "steward_qlog_quorum_wait_seconds", "steward_qlog_batch_entries", "steward_qlog_read_index_seconds"} {
		if n := histogramCount(t, reg, name); n < 1 {
			t.Errorf("%s has %d observations, want at least 1", name, n)
		}
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 15 {
		t.Errorf("GatherAndCount = %d, %v; want the log's metrics", n, err)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metric(t, reg, name).GetGauge().GetValue()
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	return metric(t, reg, name).GetHistogram().GetSampleCount()
}

// metric gathers reg and returns the first series of the family name.
func metric(t *testing.T, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// TestOpenWaitsForJetStream: a replica opened while NATS is down does not
// fail; Ready says what it waits for, and it serves once NATS is up.
func TestOpenWaitsForJetStream(t *testing.T) {
	srv := qlogtest.StartServer(t)
	srv.Stop()
	nc := qlogtest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := qlog.Open(ctx, qlog.Config{Service: "test", ReplicaID: "r0", Conn: nc}, qlogtest.NewRegisters())
	if err != nil {
		t.Fatalf("Open with NATS down = %v, want a replica that waits", err)
	}
	defer l.Close()
	waitFor(t, "Ready to name the stream it waits for", 20*time.Second, func() bool {
		err := l.Ready()
		return err != nil && strings.Contains(err.Error(), "waiting for the stream STEWARD_TEST (attempt")
	})
	if _, err := l.Propose(ctx, qlogtest.Put("k", "v"), qlog.ProposeOptions{}); err == nil {
		t.Fatal("Propose before the replica started succeeded")
	}
	srv.Start()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady after NATS came up: %v", err)
	}
	if _, err := l.Propose(ctx, qlogtest.Put("k", "v"), qlog.ProposeOptions{}); err != nil {
		t.Fatalf("Propose after NATS came up: %v", err)
	}
}
