package scaler

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/natsembed"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// TestPublishSplitsToFitThePayloadLimit: a push may be 4 MiB, a NATS
// server's payload limit is 1 MiB by default; the samples go out in as
// many messages as it takes, and all of them arrive.
func TestPublishSplitsToFitThePayloadLimit(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{Name: "publish-test", Dir: t.TempDir(), Addr: "127.0.0.1:0", MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var (
		mu       sync.Mutex
		messages int
		got      = map[string]bool{}
	)
	sub, err := nc.Subscribe(SamplesSubject, func(m *nats.Msg) {
		var p metrics.Push
		if err := json.Unmarshal(m.Data, &p); err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		messages++
		for _, s := range p.Samples {
			got[s.Instance] = true
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	samples := make([]metrics.Sample, 5000)
	for i := range samples {
		samples[i] = metrics.Sample{Service: "web", Instance: fmt.Sprintf("web-%04d", i), Name: "queue_depth", Value: float64(i), Timestamp: time.Now()}
	}
	r := &Replica{Replica: &service.Replica[*ledger.Machine]{Conn: nc}}
	if err := r.publish(samples); err != nil {
		t.Fatalf("publish 5000 samples under a 64 KiB limit: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n, m := len(got), messages
		mu.Unlock()
		if n == len(samples) {
			if m < 2 {
				t.Fatalf("%d messages, want the samples split", m)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d samples arrived in %d messages", n, len(samples), m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
