package qlog_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// wantEvent is what a watcher must see for one put.
type wantEvent struct {
	Rev   int64
	Key   string
	Value string
}

func (w wantEvent) String() string { return fmt.Sprintf("%d:%s=%s", w.Rev, w.Key, w.Value) }

func gotEvent(ev qlog.Event) wantEvent {
	return wantEvent{Rev: ev.Revision, Key: ev.Key, Value: string(ev.Data)}
}

// nextEvent reads one event with a deadline.
func nextEvent(t *testing.T, w *qlog.Watch) qlog.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if err != nil {
		t.Fatalf("Watch.Next: %v", err)
	}
	return ev
}

// putSeq proposes key=value puts through l in order and returns the events
// they must produce.
func putSeq(t *testing.T, l *qlog.Log, prefix string, n int) []wantEvent {
	t.Helper()
	var out []wantEvent
	for i := range n {
		key, val := fmt.Sprintf("%s%d", prefix, i), fmt.Sprintf("%s-v%d", prefix, i)
		res, _ := propose(t, l, qlogtest.Put(key, val), "")
		out = append(out, wantEvent{res.Revision, key, val})
	}
	return out
}

func sortedByRev(evs []wantEvent) []wantEvent {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b wantEvent) int { return int(a.Rev - b.Rev) })
	return evs
}

// TestWatchResumeExactlyOnce reads part of the event stream while
// concurrent writers go through two replicas, drops the watch, lets more
// writes happen, and resumes from the last revision + 1 on the other
// replica: together the two watches must see every event exactly once, in
// revision order, with no gap; and nothing after the last write but the
// sentinel written to prove it.
func TestWatchResumeExactlyOnce(t *testing.T) {
	srv := qlogtest.StartServer(t)
	logger, _ := testLogger(t)
	voters := []string{"r0", "r1"}
	r0 := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", Voters: voters, Logger: logger})
	r1 := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r1", Voters: voters, Logger: logger})

	w1, err := r1.log.Watch(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 3, 20
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		want []wantEvent
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := []*qlog.Log{r0.log, r1.log}[i%2]
			for n := range each {
				key, val := fmt.Sprintf("w%d-%d", i, n), fmt.Sprintf("v%d-%d", i, n)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				res, err := l.Propose(ctx, qlogtest.Put(key, val), qlog.ProposeOptions{})
				cancel()
				if err != nil {
					t.Errorf("Propose(%s): %v", key, err)
					return
				}
				mu.Lock()
				want = append(want, wantEvent{res.Revision, key, val})
				mu.Unlock()
			}
		}()
	}
	// The first watcher reads while the writes are going on.
	var got []wantEvent
	for range 25 {
		got = append(got, gotEvent(nextEvent(t, w1)))
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// w1 is dropped here, unclosed: an abandoned watch holds nothing.
	want = append(want, putSeq(t, r0.log, "late", 15)...)
	want = sortedByRev(want)

	last := got[len(got)-1].Rev
	w2, err := r0.log.Watch(last+1, nil)
	if err != nil {
		t.Fatalf("Watch(%d) on the other replica: %v", last+1, err)
	}
	for len(got) < len(want) {
		got = append(got, gotEvent(nextEvent(t, w2)))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events across the resume:\n got  %v\n want %v", got, want)
	}
	for i, ev := range got {
		if ev.Rev != int64(i+1) {
			t.Fatalf("event %d has revision %d: the puts took revisions 1..%d, so a gap or a repeat", i, ev.Rev, len(want))
		}
	}
	sentinel := putSeq(t, r1.log, "sentinel", 1)[0]
	if ev := gotEvent(nextEvent(t, w2)); ev != sentinel {
		t.Fatalf("after the last expected event the watch gave %v, want the sentinel %v", ev, sentinel)
	}

	// A filtered watch from the start sees exactly one writer's keys.
	w3, err := r1.log.Watch(1, func(ev qlog.Event) bool { return strings.HasPrefix(ev.Key, "w1-") })
	if err != nil {
		t.Fatal(err)
	}
	var wantW1 []wantEvent
	for _, ev := range want {
		if strings.HasPrefix(ev.Key, "w1-") {
			wantW1 = append(wantW1, ev)
		}
	}
	var gotW1 []wantEvent
	for len(gotW1) < len(wantW1) {
		gotW1 = append(gotW1, gotEvent(nextEvent(t, w3)))
	}
	if !slices.Equal(gotW1, wantW1) {
		t.Fatalf("filtered watch:\n got  %v\n want %v", gotW1, wantW1)
	}
	t.Logf("%d events seen exactly once across a resume at revision %d on another replica", len(got), last+1)
}

// TestWatchCompacted asks for revisions older than a replica holds: after
// the event ring overflowed, and on a fresh replica that started from a
// snapshot. Either way the watch fails up front with the compact revision,
// and a watch from that revision is complete.
func TestWatchCompacted(t *testing.T) {
	t.Run("ring overflow", func(t *testing.T) {
		srv := qlogtest.StartServer(t)
		r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", WatchBuffer: 16})
		want := putSeq(t, r.log, "k", 40)

		_, err := r.log.Watch(1, nil)
		var ce *qlog.CompactedError
		if !errors.As(err, &ce) {
			t.Fatalf("Watch(1) after 40 events in a ring of 16 = %v, want a CompactedError", err)
		}
		if ce.Requested != 1 || ce.CompactRevision != 25 || r.log.CompactRevision() != 25 {
			t.Fatalf("CompactedError = %+v, CompactRevision() = %d; want requested 1, compact revision 25", ce, r.log.CompactRevision())
		}
		if _, err := r.log.Watch(24, nil); !errors.As(err, new(*qlog.CompactedError)) {
			t.Fatalf("Watch(24) = %v, want a CompactedError", err)
		}
		w, err := r.log.Watch(ce.CompactRevision, nil)
		if err != nil {
			t.Fatalf("Watch(%d): %v", ce.CompactRevision, err)
		}
		for _, ev := range want[24:] {
			if got := gotEvent(nextEvent(t, w)); got != ev {
				t.Fatalf("Watch from the compact revision: got %v, want %v", got, ev)
			}
		}
	})

	t.Run("snapshot restore", func(t *testing.T) {
		srv := qlogtest.StartServer(t)
		nc := srv.Connect(t)
		store := snapshotStore(t, nc)
		a := openReplica(t, nc, qlog.Config{ReplicaID: "a", Snapshots: store, SnapshotEvery: 1 << 40})
		putSeq(t, a.log, "k", 30)
		if rev, err := a.log.TakeSnapshot(context.Background()); err != nil || rev != 30 {
			t.Fatalf("TakeSnapshot = %d, %v; want 30", rev, err)
		}
		want := putSeq(t, a.log, "m", 10)

		// b is a fresh observer: it starts from a's snapshot and holds
		// events only after it.
		b := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "b", Voters: []string{"a"}, Snapshots: store, SnapshotEvery: 1 << 40})
		_, err := b.log.Watch(5, nil)
		var ce *qlog.CompactedError
		if !errors.As(err, &ce) || ce.CompactRevision != 31 || ce.Requested != 5 {
			t.Fatalf("Watch(5) on a replica restored at 30 = %v, want a CompactedError with compact revision 31", err)
		}
		w, err := b.log.Watch(ce.CompactRevision, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range want {
			if got := gotEvent(nextEvent(t, w)); got != ev {
				t.Fatalf("Watch(31) after restore: got %v, want %v", got, ev)
			}
		}
		// The replica that wrote everything still holds it all.
		if _, err := a.log.Watch(5, nil); err != nil {
			t.Fatalf("Watch(5) on the writer: %v", err)
		}
	})
}

// TestWatchLagged lets a watcher fall further behind than the event ring
// holds: it is cut off with ErrWatchLagged rather than skipping events
// silently, and resuming below the compact point is refused.
func TestWatchLagged(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", WatchBuffer: 16})
	w, err := r.log.Watch(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Falling behind by less than the ring holds is fine.
	for _, want := range putSeq(t, r.log, "a", 12) {
		if got := gotEvent(nextEvent(t, w)); got != want {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	last := int64(12)
	// Now 40 events arrive that the watcher does not read.
	putSeq(t, r.log, "b", 40)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev, err := w.Next(ctx)
	if !errors.Is(err, qlog.ErrWatchLagged) {
		t.Fatalf("Next on a watcher 40 events behind a ring of 16 = %+v, %v; want ErrWatchLagged", ev, err)
	}
	if _, err := w.Next(ctx); !errors.Is(err, qlog.ErrWatchLagged) {
		t.Fatalf("second Next on a lagged watcher = %v, want ErrWatchLagged again", err)
	}
	_, err = r.log.Watch(last+1, nil)
	var ce *qlog.CompactedError
	if !errors.As(err, &ce) || ce.CompactRevision != 52-16+1 {
		t.Fatalf("resume at %d = %v, want a CompactedError with compact revision %d", last+1, err, 52-16+1)
	}
}
