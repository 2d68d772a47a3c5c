package qlog_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestReadAfterAckAcrossReplicas is the reproduction of a stale
// linearizable read seen from outside with no fault active: a write
// acknowledged through one replica, then a linearizable read through
// another replica started after the acknowledgement, answered the previous
// value.
//
// Three NATS servers with an R3 stream, three voters, each connected to
// its own server only, so that their consumers, the stream leader and the
// proposer sit on different servers. Pairs of clients loop: put key k to
// value n through replica i, and as soon as it is acknowledged read k
// linearizably through replica i+1. Every read must see n (nobody else
// writes k). On the old read path (the read index was the stream leader's
// last sequence while a proposal was acknowledged as soon as a majority of
// voters applied it, which can happen through consumers on followers
// before the leader stored the message) this failed within seconds.
//
// QLOG_READ_AFTER_ACK=<duration> runs it longer (default 15s).
func TestReadAfterAckAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a 3-node NATS cluster")
	}
	duration := 15 * time.Second
	if v := os.Getenv("QLOG_READ_AFTER_ACK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("QLOG_READ_AFTER_ACK=%q: %v", v, err)
		}
		duration = d
	}
	c := qlogtest.StartCluster(t, 3)
	logger, _ := testLogger(t)
	admin := qlogtest.Connect(t, c.URLs())
	ajs, _ := jetstream.New(admin)
	waitFor(t, "the cluster's JetStream to elect its meta leader", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := ajs.AccountInfo(ctx)
		return err == nil
	})
	voters := voterNames(3)
	next := 0
	g := startGroup(t, voters, func() *nats.Conn {
		nc := qlogtest.Connect(t, c.Servers[next].URL())
		next++
		return nc
	}, func(id string) qlog.Config {
		return qlog.Config{ReplicaID: id, Voters: voters, StreamReplicas: 3, Logger: logger}
	})
	reps := g.all()

	const pairs = 6
	var (
		writes, stale atomic.Int64
		mu            sync.Mutex
		firstStale    string
		wg            sync.WaitGroup
	)
	deadline := time.Now().Add(duration)
	for p := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("k%d", p)
			for n := 1; time.Now().Before(deadline); n++ {
				w, r := reps[(p+n)%3], reps[(p+n+1)%3]
				want := strconv.Itoa(n)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				res, err := w.log.Propose(ctx, qlogtest.Put(key, want), qlog.ProposeOptions{})
				if err != nil {
					cancel()
					t.Errorf("put %s=%s through %s: %v", key, want, w.log.ReplicaID(), err)
					return
				}
				var got string
				var at int64
				err = r.log.Read(ctx, qlog.Linearizable, func(rev int64) error {
					got, _ = r.sm.Get(key)
					at = rev
					return nil
				})
				cancel()
				if err != nil {
					t.Errorf("read %s through %s: %v", key, r.log.ReplicaID(), err)
					return
				}
				writes.Add(1)
				if got != want {
					stale.Add(1)
					mu.Lock()
					if firstStale == "" {
						firstStale = fmt.Sprintf("put %s=%s acknowledged through %s at revision %d; "+
							"the linearizable read through %s that followed answered %q at revision %d",
							key, want, w.log.ReplicaID(), res.Revision, r.log.ReplicaID(), got, at)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d acknowledged writes each followed by a read on another replica; %d stale reads", writes.Load(), stale.Load())
	if stale.Load() > 0 {
		t.Fatalf("%d of %d reads missed the write acknowledged before they started; first: %s", stale.Load(), writes.Load(), firstStale)
	}
	if writes.Load() == 0 {
		t.Fatal("no write was acknowledged")
	}
}
