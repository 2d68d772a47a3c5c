package qlog_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// fakeClock is a settable clock for proposers.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestDeterministicExpiry checks that a TTL key is deleted by a proposed
// expire entry once log time passes its deadline, and that an expiry
// raced by a renewal is a no-op.
func TestDeterministicExpiry(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r0", Clock: clock.Now})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	put, _ := propose(t, r.log, qlogtest.PutTTL("lease", "a", 10*time.Second), "")
	clock.Advance(8 * time.Second)
	// A replica with a fast clock proposes an expiry too early: no effect.
	if _, reply := propose(t, r.log, qlogtest.Expire("lease", put.Revision), ""); reply.OK {
		t.Fatal("expire before the deadline took effect")
	}
	renew, _ := propose(t, r.log, qlogtest.PutTTL("lease", "a", 10*time.Second), "")
	clock.Advance(11 * time.Second)
	// The deadline of the first grant passed, but the key was renewed after it.
	if _, reply := propose(t, r.log, qlogtest.Expire("lease", put.Revision), ""); reply.OK {
		t.Fatal("expire naming a revision before a renewal took effect")
	}
	w, err := r.log.Watch(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.log.RunExpiry(rctx, 20*time.Millisecond, r.sm.DueExpiries)
	}()
	ev, err := w.Next(ctx)
	stop()
	<-done
	if err != nil || ev.Type != "delete" || ev.Key != "lease" || ev.Revision <= renew.Revision {
		t.Fatalf("watch after expiry = %+v, %v; want a delete of lease after revision %d", ev, err, renew.Revision)
	}
	if _, ok, _ := r.get(t, qlog.Linearizable, "lease"); ok {
		t.Fatal("lease still present after expiry")
	}
}

func TestExpiriesDueOrder(t *testing.T) {
	x := qlog.NewExpiries()
	base := time.Unix(100, 0)
	x.Set("b", base.Add(2*time.Second), 5)
	x.Set("a", base.Add(2*time.Second), 4)
	x.Set("c", base.Add(time.Second), 3)
	x.Set("d", base.Add(time.Hour), 2)
	got := x.Due(base.Add(3*time.Second), 10)
	want := []qlog.Due{{"c", 3}, {"a", 4}, {"b", 5}}
	if len(got) != len(want) {
		t.Fatalf("Due = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Due = %v, want %v", got, want)
		}
	}
	if x.Expired("d", 2, base.Add(3*time.Second)) || !x.Expired("c", 3, base.Add(time.Second)) || x.Expired("c", 2, base.Add(time.Hour)) {
		t.Fatal("Expired precondition wrong")
	}
}

// TestExpiryGraceAfterLateEntry checks that a replica holds expiries for
// ExpiryGrace after applying an entry that was stamped long before, even
// when the stall that held the entry up never touched the replica's own
// proposals or reads. Such an entry's TTL counts from its stamp, so it may
// arrive already due; expiring it at once would expire a client whose
// renewal was acknowledged a moment earlier (a chaos finding: a write that
// took 5.3 s to commit under a partition, expired 39 ms after it was
// acknowledged).
func TestExpiryGraceAfterLateEntry(t *testing.T) {
	srv := qlogtest.StartServer(t)
	const grace = 2 * time.Second
	voters := []string{"late", "expirer"}
	// The late proposer's stamps are 6 s old when they are applied: what a
	// proposal held up 6 s on its way to the stream looks like to the
	// replicas that apply it.
	late := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "late", Voters: voters,
		Clock: func() time.Time { return time.Now().Add(-6 * time.Second) }})
	expirer := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "expirer", Voters: voters, ExpiryGrace: grace})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := expirer.log.Watch(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A 5 s TTL stamped 6 s ago: due on arrival.
	put, _ := propose(t, late.log, qlogtest.PutTTL("instance", "up", 5*time.Second), "")
	if ev, err := w.Next(ctx); err != nil || ev.Type != "put" || ev.Revision != put.Revision {
		t.Fatalf("first event = %+v, %v; want the put at %d", ev, err, put.Revision)
	}
	applied := time.Now()
	go expirer.log.RunExpiry(ctx, 10*time.Millisecond, expirer.sm.DueExpiries)

	ev, err := w.Next(ctx)
	if err != nil || ev.Type != "delete" || ev.Key != "instance" {
		t.Fatalf("event after the put = %+v, %v; want the expiry", ev, err)
	}
	// Without the grace the expiry comes within one 10 ms tick; a margin
	// of half the grace keeps a slow machine from failing the test.
	if held := time.Since(applied); held < grace/2 {
		t.Fatalf("expired %v after the late entry was applied; want the %v grace", held, grace)
	}
}

// TestExpiryGraceFromAPeersStall checks that a stall one replica saw holds
// the other replicas' expiries once that replica saw it end, and not
// before. A replica that saw nothing go wrong (its clients got through, or
// had none) would otherwise expire, right after the stall, the clients
// whose renewals failed on the replica that saw it (a chaos finding:
// registry-1 failed heartbeats for seconds after a partition healed, and
// an expiry came 0.8 s after writes resumed). A replica that has not
// applied a fresh entry since its stall reports nothing, so one that stays
// sick does not hold every replica's expiries.
func TestExpiryGraceFromAPeersStall(t *testing.T) {
	srv := qlogtest.StartServer(t)
	const grace = 4 * time.Second
	voters := []string{"sick", "expirer"}
	sick := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "sick", Voters: voters, ExpiryGrace: grace})
	expirer := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "expirer", Voters: voters, ExpiryGrace: grace})

	// Applied by both (the quorum is both voters) before the stall.
	propose(t, expirer.log, qlogtest.Put("before", "1"), "")
	sick.log.NoteStall()
	if !sick.log.ExpiryHeld() {
		t.Fatal("the replica that saw the stall does not hold its expiries")
	}
	// Not over as the sick replica sees it: its progress reports, one a
	// second, must not carry it.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if expirer.log.ExpiryHeld() {
			t.Fatal("the expirer holds its expiries for a stall its reporter has not seen end")
		}
	}
	// A fresh entry applied by the sick replica: its stall is over, and
	// its next report says so.
	propose(t, expirer.log, qlogtest.Put("after", "1"), "")
	for end := time.Now().Add(5 * time.Second); !expirer.log.ExpiryHeld(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the expirer never held its expiries for the stall the other replica saw end")
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(expirer.log.Collector())
	if held := gaugeValue(t, reg, "steward_qlog_expiry_held"); held != 1 {
		t.Errorf("steward_qlog_expiry_held = %v while the expirer holds its expiries, want 1", held)
	}
}

// TestProposalGivenUpAtOnceIsNoStall checks that proposals whose callers
// give up before the log could have answered do not hold expiries: a
// client's short deadline says nothing about the log, and with stalls
// shared between replicas one impatient client would otherwise hold every
// replica's expiries.
func TestProposalGivenUpAtOnceIsNoStall(t *testing.T) {
	srv := qlogtest.StartServer(t)
	r := openReplica(t, srv.Connect(t), qlog.Config{ReplicaID: "r", Voters: []string{"r"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	failed := 0
	for i := range 50 {
		if _, err := r.log.Propose(ctx, qlogtest.Put("k", strconv.Itoa(i)), qlog.ProposeOptions{}); err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("no proposal with a cancelled context failed; the test proves nothing")
	}
	if r.log.ExpiryHeld() {
		t.Fatalf("%d proposals given up at once hold the replica's expiries", failed)
	}
}
