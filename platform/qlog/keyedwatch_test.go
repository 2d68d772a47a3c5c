package qlog_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// woken reports whether ch was closed, without waiting: an apply wakes
// the keyed watches it concerns before Propose returns on this replica.
func woken(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestKeyedWatchWokenByItsKeysOnly: a watch of one key or one prefix is
// woken by the applies that touch it and by no other, and yields exactly
// its events.
func TestKeyedWatchWokenByItsKeysOnly(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0"})
	key, err := r.log.WatchKey(0, "a")
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	prefix, err := r.log.WatchPrefix(0, "/p/")
	if err != nil {
		t.Fatal(err)
	}
	defer prefix.Close()
	keyCh, prefixCh := key.Changed(), prefix.Changed()
	for _, w := range []*qlog.Watch{key, prefix} {
		if evs, err := w.TryNextRevision(); err != nil || len(evs) != 0 {
			t.Fatalf("a new watch holds %v, %v", evs, err)
		}
	}

	propose(t, r.log, qlogtest.Put("b", "1"), "")
	propose(t, r.log, qlogtest.Put("/q/x", "1"), "")
	propose(t, r.log, qlogtest.Put("/p", "1"), "")
	if woken(keyCh) || woken(prefixCh) {
		t.Fatalf("writes to b, /q/x and /p woke the watch of a (%v) or of /p/ (%v)", woken(keyCh), woken(prefixCh))
	}

	propose(t, r.log, qlogtest.Put("a", "2"), "")
	if !woken(keyCh) || woken(prefixCh) {
		t.Fatal("a write to a did not wake its watch, or woke /p/'s")
	}
	if got := gotEvent(nextEvent(t, key)); got.Key != "a" || got.Value != "2" || got.Rev != 4 {
		t.Fatalf("the watch of a read %v, want 4:a=2", got)
	}
	keyCh, prefixCh = key.Changed(), prefix.Changed() // keyCh was closed
	propose(t, r.log, qlogtest.Put("/p/x/y", "3"), "")
	if woken(keyCh) || !woken(prefixCh) {
		t.Fatal("a write to /p/x/y did not wake /p/'s watch, or woke a's")
	}
	if got := gotEvent(nextEvent(t, prefix)); got.Key != "/p/x/y" || got.Rev != 5 {
		t.Fatalf("the watch of /p/ read %v, want 5:/p/x/y=3", got)
	}
	// Resumed from revision 2, a watch of /p/ reads what the ring holds
	// of it first (revision 3 put /p, outside /p/; revision 5 is its).
	resumed, err := r.log.WatchPrefix(2, "/p/")
	if err != nil {
		t.Fatal(err)
	}
	if got := gotEvent(nextEvent(t, resumed)); got.Rev != 5 {
		t.Fatalf("the watch of /p/ from revision 2 read %v first, want revision 5", got)
	}
	resumed.Close()
	if n := r.log.KeyedWatches(); n != 2 {
		t.Fatalf("%d keyed watches indexed, want 2", n)
	}
	key.Close()
	prefix.Close()
	key.Close() // twice is harmless
	if n := r.log.KeyedWatches(); n != 0 {
		t.Fatalf("%d keyed watches indexed after both closed, want 0", n)
	}
}

// TestKeyedWatchLag: a keyed watch is not cut off by any number of
// other keys' events passing through the ring while it waits; it is cut
// off (ErrWatchLagged) when an event of its own was overwritten unread.
func TestKeyedWatchLag(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", WatchBuffer: 16})
	quiet, err := r.log.WatchKey(0, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	defer quiet.Close()
	lagging, err := r.log.WatchKey(0, "busy")
	if err != nil {
		t.Fatal(err)
	}
	defer lagging.Close()
	propose(t, r.log, qlogtest.Put("busy", "unread"), "")
	putSeq(t, r.log, "other", 40) // 2.5 rings of other keys
	// Looking now (a heartbeat's wake, say) finds nothing, not a lag.
	if evs, err := quiet.TryNextRevision(); err != nil || len(evs) != 0 {
		t.Fatalf("the quiet key's watch after 40 other events: %v, %v; want nothing yet", evs, err)
	}
	res, _ := propose(t, r.log, qlogtest.Put("quiet", "at last"), "")
	if got := gotEvent(nextEvent(t, quiet)); got.Key != "quiet" || got.Rev != res.Revision {
		t.Fatalf("the quiet key's watch read %v, want %d:quiet=at last", got, res.Revision)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ev, err := lagging.Next(ctx); !errors.Is(err, qlog.ErrWatchLagged) {
		t.Fatalf("a watch whose event was overwritten unread read %+v, %v; want ErrWatchLagged", ev, err)
	}
}

// TestKeyedWatchEndsWithTheReplica: a keyed watch waiting for its key
// learns of the replica's end like any other.
func TestKeyedWatchEndsWithTheReplica(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0"})
	w, err := r.log.WatchKey(0, "never")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		_, err := w.Next(context.Background())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	r.log.Close()
	select {
	case err := <-done:
		if !errors.Is(err, qlog.ErrClosed) {
			t.Fatalf("Next after Close = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a keyed watch's Next did not return when the replica closed")
	}
}

// TestKeyedWatchNotify: Notify's function is called by each apply that
// touches the watch's key (before Propose returns on this replica) and by
// no other, not after Close, and once when the replica closes; a watch
// with a filter cannot notify.
func TestKeyedWatchNotify(t *testing.T) {
	srv := qlogtest.StartServer(t)
	nc := srv.Connect(t)
	r := openReplica(t, nc, qlog.Config{ReplicaID: "r0"})
	var a, b, closed atomic.Int64
	watchA, err := r.log.WatchKey(0, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !watchA.Notify(func() { a.Add(1) }) {
		t.Fatal("Notify on a watch of a key = false")
	}
	watchB, err := r.log.WatchPrefix(0, "/b/")
	if err != nil {
		t.Fatal(err)
	}
	if !watchB.Notify(func() { b.Add(1) }) {
		t.Fatal("Notify on a watch of a prefix = false")
	}
	all, err := r.log.Watch(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all.Notify(func() {}) {
		t.Fatal("Notify on a watch of every key = true, want false: it is woken by Changed only")
	}

	propose(t, r.log, qlogtest.Put("c", "1"), "")
	propose(t, r.log, qlogtest.Put("a", "1"), "")
	propose(t, r.log, qlogtest.Put("a", "2"), "")
	propose(t, r.log, qlogtest.Put("/b/x", "1"), "")
	if a.Load() != 2 || b.Load() != 1 {
		t.Fatalf("after puts of c, a, a, /b/x: a's watch notified %d times, /b/'s %d; want 2 and 1", a.Load(), b.Load())
	}
	if got := gotEvent(nextEvent(t, watchA)); got.Key != "a" || got.Rev != 2 {
		t.Fatalf("a's watch read %v first, want 2:a=1", got)
	}

	watchA.Close()
	propose(t, r.log, qlogtest.Put("a", "3"), "")
	if a.Load() != 2 {
		t.Fatalf("a's watch notified %d times after its Close, want 2", a.Load())
	}

	// A second replica closes with its watch open.
	other := openReplica(t, nc, qlog.Config{ReplicaID: "r1"})
	watchC, err := other.log.WatchKey(0, "c")
	if err != nil {
		t.Fatal(err)
	}
	defer watchC.Close()
	watchC.Notify(func() { closed.Add(1) })
	other.log.Close()
	deadline := time.Now().Add(5 * time.Second)
	for closed.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if closed.Load() != 1 {
		t.Fatalf("a watch on a closed replica notified %d times, want once", closed.Load())
	}
	if _, err := watchC.TryNextRevision(); !errors.Is(err, qlog.ErrClosed) {
		t.Fatalf("TryNextRevision on a closed replica = %v, want ErrClosed", err)
	}
}
