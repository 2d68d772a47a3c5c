package qlog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// Each fault test runs writers (unique keys, to count lost writes) and
// clients (shared keys, for contention) through random voters while the
// fault happens, then checks that every acknowledged write is on every
// replica and that the whole history, including the final reads, is
// linearizable.
const (
	faultWriters    = 3
	faultClients    = 3
	faultSharedKeys = 3
)

// startGroup opens one voter per name, each on its own connection.
func startGroup(t *testing.T, voters []string, connect func() *nats.Conn, cfg func(id string) qlog.Config) *group {
	t.Helper()
	g := &group{reps: make([]*replica, len(voters)), ncs: make([]*nats.Conn, len(voters))}
	for i, id := range voters {
		nc := connect()
		sm := qlogtest.NewRegisters()
		l := openLog(t, nc, cfg(id), sm)
		g.set(i, &replica{log: l, sm: sm}, nc)
	}
	return g
}

// growBy waits until the load acknowledged n more puts than it had.
func growBy(t *testing.T, ld *load, n int64, timeout time.Duration, what string) time.Duration {
	t.Helper()
	from := ld.acked.Load()
	return waitFor(t, fmt.Sprintf("%d more acknowledged writes %s (had %d)", n, what, from), timeout,
		func() bool { return ld.acked.Load() >= from+n })
}

func streamInfo(t *testing.T, nc *nats.Conn, service string) *jetstream.StreamInfo {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, qlog.StreamName(service))
	if err != nil {
		t.Fatalf("stream %s: %v", service, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", service, err)
	}
	return info
}

// TestFaultVoterCrashRestart kills one of three voters mid-load (its Log
// and its connection) while the other two keep acknowledging writes and
// snapshot and trim the stream, then restarts it with no state under the
// same ReplicaID: it must restore a snapshot, replay the tail, agree with
// the others' running hash, and serve again.
func TestFaultVoterCrashRestart(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, logs := testLogger(t)
	admin := srv.Connect(t)
	store := snapshotStore(t, admin)
	voters := voterNames(3)
	cfg := func(id string) qlog.Config {
		// Snapshots every 100 entries and a stream trimmed to 200
		// messages below the newest: a restarted voter must come back
		// through a snapshot. (Retention below what a catching-up replica
		// needs is TestLaggingVoterSurvivesTrim's subject.)
		return qlog.Config{ReplicaID: id, Voters: voters, Snapshots: store, SnapshotEvery: 100, RetainEntries: 200, Logger: logger}
	}
	g := startGroup(t, voters, func() *nats.Conn { return srv.Connect(t) }, cfg)

	h := newHistory()
	ld := startLoad(h, g, faultWriters, faultClients, faultSharedKeys, opTimeout)
	stopLoad := sync.OnceFunc(ld.finish)
	t.Cleanup(stopLoad)

	growBy(t, ld, 100, 30*time.Second, "before the crash")
	killedRev := g.at(2).log.Revision()
	g.kill(2)
	t.Logf("killed r2 at revision %d", killedRev)

	growBy(t, ld, 200, 60*time.Second, "with r2 down")
	// The survivors must have snapshotted and trimmed the stream, so that
	// r2, which comes back with no state of its own, can only catch up
	// through a snapshot and the tail after it.
	waitFor(t, "the stream to be trimmed", 60*time.Second, func() bool {
		return streamInfo(t, admin, "test").State.FirstSeq > 1
	})
	first := streamInfo(t, admin, "test").State.FirstSeq

	restartAt := time.Now()
	nc := srv.Connect(t)
	sm := qlogtest.NewRegisters()
	l := openLog(t, nc, cfg("r2"), sm)
	recovery := time.Since(restartAt)
	g.set(2, &replica{log: l, sm: sm}, nc)
	t.Logf("r2 restarted and ready in %v at revision %d (stream now starts at sequence %d)", recovery.Round(time.Millisecond), l.Revision(), first)
	if !strings.Contains(logs.String(), `msg="qlog restored snapshot" service=test replica=r2`) {
		t.Errorf("r2 came back without restoring a snapshot")
	}

	from := ld.ackedThrough("r2")
	waitFor(t, "writes acknowledged through the restarted r2", 60*time.Second, func() bool { return ld.ackedThrough("r2") >= from+20 })
	growBy(t, ld, 100, 60*time.Second, "after r2 restarted")
	stopLoad()

	t.Logf("load: %d acknowledged puts, %d unknown outcomes, %d reads", ld.acked.Load(), ld.failed.Load(), ld.reads.Load())
	verifyNoLoss(t, h, g.all(), ld.acknowledged(), faultSharedKeys, unknownUniqueKeys(h))
	checkLinearizable(t, h)
}

// TestFaultNATSRestart stops the (single, file-backed, fsync-always) NATS
// server mid-load and starts it again on the same port and directory.
// Proposals during the outage may end with unknown outcome; acknowledged
// ones must all survive, and every replica must serve and accept writes
// again.
func TestFaultNATSRestart(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	admin := srv.Connect(t)
	store := snapshotStore(t, admin)
	voters := voterNames(3)
	cfg := func(id string) qlog.Config {
		return qlog.Config{ReplicaID: id, Voters: voters, Snapshots: store, SnapshotEvery: 200, RetainEntries: 100, Logger: logger}
	}
	g := startGroup(t, voters, func() *nats.Conn { return srv.Connect(t) }, cfg)

	h := newHistory()
	// Operations give up quickly, so that proposals caught by the outage
	// end with unknown outcomes (most of which take effect once NATS is
	// back, from the client's reconnect buffer).
	ld := startLoad(h, g, faultWriters, faultClients, faultSharedKeys, 500*time.Millisecond)
	stopLoad := sync.OnceFunc(ld.finish)
	t.Cleanup(stopLoad)

	growBy(t, ld, 150, 30*time.Second, "before the restart")
	before := streamInfo(t, admin, "test").State
	srv.Stop()
	stoppedAt := time.Now()
	ackedDown := ld.acked.Load()
	// Keep it down long enough for proposals and reads to hit the outage.
	time.Sleep(1500 * time.Millisecond)
	srv.Start()
	restartedAt := time.Now()
	t.Logf("NATS down for %v at stream sequence %d", restartedAt.Sub(stoppedAt).Round(time.Millisecond), before.LastSeq)

	// Every replica must come back: ready, and a write proposed through
	// it is acknowledged.
	for _, r := range g.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := r.log.WaitReady(ctx); err != nil {
			cancel()
			t.Fatalf("%s after the NATS restart: %v", r.log.ReplicaID(), err)
		}
		_, err := r.log.Propose(ctx, qlogtest.Put("probe-"+r.log.ReplicaID(), "after-restart"), qlog.ProposeOptions{})
		cancel()
		if err != nil {
			t.Fatalf("write through %s after the NATS restart: %v", r.log.ReplicaID(), err)
		}
	}
	t.Logf("all replicas accept writes %v after NATS came back; %d writes acknowledged since the stop",
		time.Since(restartedAt).Round(time.Millisecond), ld.acked.Load()-ackedDown)
	growBy(t, ld, 150, 60*time.Second, "after the restart")
	stopLoad()

	after := streamInfo(t, admin, "test").State
	if after.LastSeq < before.LastSeq {
		t.Errorf("stream went backwards across the restart: last sequence %d, was %d", after.LastSeq, before.LastSeq)
	}
	t.Logf("load: %d acknowledged puts, %d unknown outcomes, %d reads", ld.acked.Load(), ld.failed.Load(), ld.reads.Load())
	verifyNoLoss(t, h, g.all(), ld.acknowledged(), faultSharedKeys, unknownUniqueKeys(h))
	checkLinearizable(t, h)
}

// TestFaultNATSClusterNodeLoss runs the voters against a three-node NATS
// cluster with an R3 stream and stops the node leading the stream
// mid-load: writes must continue after JetStream elects a new leader, and
// no acknowledged write may be lost.
func TestFaultNATSClusterNodeLoss(t *testing.T) {
	c := qlogtest.StartCluster(t, 3)
	logger, _ := testLogger(t)
	admin := qlogtest.Connect(t, c.URLs())
	ajs, _ := jetstream.New(admin)
	ready := waitFor(t, "the cluster's JetStream to elect its meta leader", 60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := ajs.AccountInfo(ctx)
		return err == nil
	})
	t.Logf("cluster JetStream ready after %v", ready.Round(time.Millisecond))
	voters := voterNames(3)
	cfg := func(id string) qlog.Config {
		return qlog.Config{ReplicaID: id, Voters: voters, StreamReplicas: 3, Logger: logger}
	}
	g := startGroup(t, voters, func() *nats.Conn { return qlogtest.Connect(t, c.URLs()) }, cfg)
	info := streamInfo(t, admin, "test")
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("stream has %d replicas (cluster %+v), want 3", info.Config.Replicas, info.Cluster)
	}

	h := newHistory()
	ld := startLoad(h, g, faultWriters, faultClients, faultSharedKeys, opTimeout)
	stopLoad := sync.OnceFunc(ld.finish)
	t.Cleanup(stopLoad)

	growBy(t, ld, 100, 60*time.Second, "before the node loss")
	leader := streamInfo(t, admin, "test").Cluster.Leader
	var victim *qlogtest.Server
	for i, s := range c.Servers {
		if leader == fmt.Sprintf("n%d", i) {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("stream leader %q is not one of the cluster's servers", leader)
	}
	victim.Stop()
	stoppedAt := time.Now()
	ackedAtStop := ld.acked.Load()
	t.Logf("stopped NATS node %s, the stream leader", leader)

	// Recovery: a write proposed after the loss through each replica is
	// acknowledged (JetStream elects a new stream leader, the replicas'
	// consumers and connections move to the survivors).
	for _, r := range g.all() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		_, err := r.log.Propose(ctx, qlogtest.Put("probe-"+r.log.ReplicaID(), "after-node-loss"), qlog.ProposeOptions{})
		cancel()
		if err != nil {
			t.Fatalf("write through %s after the node loss: %v", r.log.ReplicaID(), err)
		}
	}
	t.Logf("every replica had a write acknowledged %v after the node loss; new stream leader %s",
		time.Since(stoppedAt).Round(time.Millisecond), streamInfo(t, admin, "test").Cluster.Leader)
	growBy(t, ld, 150, 60*time.Second, "after the node loss")
	t.Logf("%d writes acknowledged since the node loss", ld.acked.Load()-ackedAtStop)
	stopLoad()

	t.Logf("load: %d acknowledged puts, %d unknown outcomes, %d reads", ld.acked.Load(), ld.failed.Load(), ld.reads.Load())
	verifyNoLoss(t, h, g.all(), ld.acknowledged(), faultSharedKeys, unknownUniqueKeys(h))
	checkLinearizable(t, h)
}

// TestFailStopOnDivergence corrupts one voter's state behind the log's
// back. The next writes to the corrupted key give that replica a different
// result (put returns the previous value), so its running hash differs
// from both other voters': it must stop serving and say why, while the
// other two stay ready and keep acknowledging writes.
func TestFailStopOnDivergence(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	voters := voterNames(3)
	g := startGroup(t, voters, func() *nats.Conn { return srv.Connect(t) },
		func(id string) qlog.Config { return qlog.Config{ReplicaID: id, Voters: voters, Logger: logger} })
	r0, r1, bad := g.at(0), g.at(1), g.at(2)

	for i := range 10 {
		propose(t, r0.log, qlogtest.Put(fmt.Sprintf("k%d", i%3), fmt.Sprint(i)), "")
	}
	// Wait until the victim applied everything, so that the corruption
	// lands on top of the same state the others have.
	if _, _, rev := bad.get(t, qlog.Linearizable, "k0"); rev != 10 {
		t.Fatalf("victim at revision %d, want 10", rev)
	}
	// Corrupt inside a Read callback: Read holds the read lock, so the
	// apply loop (which needs the write lock) cannot run concurrently,
	// and nothing else reads at this moment.
	if err := bad.log.Read(context.Background(), qlog.Serializable, func(int64) error {
		bad.sm.Corrupt("k0", "evil")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := bad.log.Ready(); err != nil {
		t.Fatalf("replica failed before any entry exposed the corruption: %v", err)
	}
	// A keyed watch of a key nobody writes learns of the fail-stop too.
	quiet, err := bad.log.WatchKey(0, "never")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	quietErr := make(chan error, 1)
	go func() {
		_, err := quiet.Next(context.Background())
		quietErr <- err
	}()

	res, reply := propose(t, r0.log, qlogtest.Put("k0", "after"), "")
	if reply.Prev != "9" {
		t.Fatalf("healthy put saw prev %q, want 9", reply.Prev)
	}
	start := time.Now()
	var fe *qlog.FailedError
	waitFor(t, "the corrupted replica to fail-stop", 30*time.Second, func() bool {
		return errors.As(bad.log.Ready(), &fe)
	})
	t.Logf("corrupted replica fail-stopped %v after the revealing write (revision %d): %v",
		time.Since(start).Round(time.Millisecond), res.Revision, fe)
	if !strings.Contains(fe.Reason, "hash") {
		t.Errorf("fail-stop reason %q does not mention the running hash", fe.Reason)
	}
	select {
	case err := <-quietErr:
		if !errors.As(err, new(*qlog.FailedError)) {
			t.Errorf("a keyed watch's Next on the failed replica = %v, want a FailedError", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a keyed watch of a quiet key was not woken by the fail-stop")
	}
	// A failed replica answers nothing.
	if err := bad.log.Read(context.Background(), qlog.Serializable, func(int64) error { return nil }); !errors.As(err, new(*qlog.FailedError)) {
		t.Errorf("Read on the failed replica = %v, want a FailedError", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := bad.log.Propose(ctx, qlogtest.Put("x", "y"), qlog.ProposeOptions{}); !errors.As(err, new(*qlog.FailedError)) {
		t.Errorf("Propose on the failed replica = %v, want a FailedError", err)
	}
	if _, err := bad.log.Watch(0, nil); !errors.As(err, new(*qlog.FailedError)) {
		t.Errorf("Watch on the failed replica = %v, want a FailedError", err)
	}

	// The healthy majority keeps going: ready, writes acknowledged by the
	// two of them, and the reads agree.
	for _, r := range []*replica{r0, r1} {
		if err := r.log.Ready(); err != nil {
			t.Errorf("healthy %s: %v", r.log.ReplicaID(), err)
		}
	}
	for i := range 5 {
		propose(t, r1.log, qlogtest.Put("k0", fmt.Sprint("more", i)), "")
	}
	for _, r := range []*replica{r0, r1} {
		if v, _, _ := r.get(t, qlog.Linearizable, "k0"); v != "more4" {
			t.Errorf("k0 on %s = %q, want more4", r.log.ReplicaID(), v)
		}
		if err := r.log.Ready(); err != nil {
			t.Errorf("healthy %s after more writes: %v", r.log.ReplicaID(), err)
		}
	}
}
