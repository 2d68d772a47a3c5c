package kv_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/config/kv"
)

// harness applies commands to a store as the log would: consecutive
// revisions and a log clock that only moves forward.
type harness struct {
	t     *testing.T
	s     *kv.Machine
	rev   int64
	now   time.Time
	log   []qlog.Entry
	event []qlog.Event
}

func newHarness(t *testing.T, retain int64) *harness {
	return &harness{t: t, s: kv.New(retain), now: time.Unix(1_700_000_000, 0)}
}

func (h *harness) do(c kv.Command) kv.Result {
	h.t.Helper()
	cmd, err := json.Marshal(c)
	if err != nil {
		h.t.Fatal(err)
	}
	h.rev++
	e := qlog.Entry{Revision: h.rev, Time: h.now, Proposer: "t", Cmd: cmd}
	h.log = append(h.log, e)
	out, events := h.s.Apply(e)
	h.event = append(h.event, events...)
	var r kv.Result
	if err := json.Unmarshal(out, &r); err != nil {
		h.t.Fatal(err)
	}
	return r
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }
func ptr(v int64) *int64           { return &v }

func TestPutGetCASAndHistory(t *testing.T) {
	h := newHarness(t, 100)
	r := h.do(kv.Command{Op: "put", Key: "/a", Value: raw(`{"x":1}`)})
	if r.Status != kv.OK || r.Entry.ModRevision != 1 || r.Entry.Version != 1 || r.Entry.CreateRevision != 1 {
		t.Fatalf("put = %+v", r)
	}
	if r := h.do(kv.Command{Op: "put", Key: "/a", Value: raw(`2`), IfNoneMatch: true}); r.Status != kv.PreconditionFailed || r.Entry.ModRevision != 1 {
		t.Fatalf("create-only on existing = %+v, want preconditionFailed with modRevision 1", r)
	}
	if r := h.do(kv.Command{Op: "put", Key: "/a", Value: raw(`2`), IfMatch: ptr(7)}); r.Status != kv.PreconditionFailed {
		t.Fatalf("CAS with wrong revision = %+v", r)
	}
	r = h.do(kv.Command{Op: "put", Key: "/a", Value: raw(`2`), IfMatch: ptr(1)})
	if r.Status != kv.OK || r.Entry.Version != 2 || r.Entry.CreateRevision != 1 || r.Prev == nil || string(r.Prev.Value) != `{"x":1}` {
		t.Fatalf("CAS = %+v", r)
	}
	if r := h.do(kv.Command{Op: "delete", Key: "/a"}); r.Status != kv.OK {
		t.Fatalf("delete = %+v", r)
	}
	tests := []struct {
		at   int64
		want string // "" = absent
	}{{1, `{"x":1}`}, {3, `{"x":1}`}, {4, `2`}, {5, ""}, {0, ""}}
	for _, tc := range tests {
		e, err := h.s.Get("/a", tc.at)
		got := ""
		if e != nil {
			got = string(e.Value)
		}
		if err != nil || got != tc.want {
			t.Fatalf("Get(/a, %d) = %q, %v; want %q", tc.at, got, err, tc.want)
		}
	}
	hist, _ := h.s.History("/a", 10)
	if len(hist) != 3 || !hist[0].Deleted || hist[1].ModRevision != 4 || hist[2].ModRevision != 1 {
		t.Fatalf("History = %+v", hist)
	}
}

func TestCompaction(t *testing.T) {
	h := newHarness(t, 5)
	for i := range 20 {
		h.do(kv.Command{Op: "put", Key: "/k", Value: raw(fmt.Sprint(i))})
	}
	h.do(kv.Command{Op: "put", Key: "/gone", Value: raw(`1`)})
	h.do(kv.Command{Op: "delete", Key: "/gone"})
	for range 10 {
		h.do(kv.Command{Op: "put", Key: "/other", Value: raw(`1`)})
	}
	var ce *qlog.CompactedError
	if _, err := h.s.Get("/k", 3); !errors.As(err, &ce) || ce.CompactRevision != h.s.CompactRevision() {
		t.Fatalf("Get at a compacted revision = %v, want CompactedError", err)
	}
	if e, err := h.s.Get("/k", h.s.CompactRevision()); err != nil || e == nil || string(e.Value) != "19" {
		t.Fatalf("Get at the compact revision = %v, %v; want 19", e, err)
	}
	if hist, _ := h.s.History("/gone", 10); len(hist) != 0 {
		t.Fatalf("deleted key's history survived compaction: %+v", hist)
	}
	if hist, _ := h.s.History("/other", 100); len(hist) > 6 {
		t.Fatalf("history kept %d versions with retain 5", len(hist))
	}
}

func TestListAndDeletePrefix(t *testing.T) {
	h := newHarness(t, 100)
	for _, k := range []string{"/app/b", "/app/a", "/app/c/d", "/apps", "/z"} {
		h.do(kv.Command{Op: "put", Key: k, Value: raw(`1`)})
	}
	items, next := h.s.List("/app/", "", 2)
	if len(items) != 2 || items[0].Key != "/app/a" || items[1].Key != "/app/b" || next != "/app/b" {
		t.Fatalf("List page 1 = %v next %q", items, next)
	}
	items, next = h.s.List("/app/", next, 2)
	if len(items) != 1 || items[0].Key != "/app/c/d" || next != "" {
		t.Fatalf("List page 2 = %v next %q", items, next)
	}
	if r := h.do(kv.Command{Op: "deletePrefix", Prefix: "/app/"}); r.Deleted != 3 {
		t.Fatalf("deletePrefix = %+v, want 3 deleted", r)
	}
	if items, _ := h.s.List("/", "", 10); len(items) != 2 {
		t.Fatalf("after deletePrefix: %v", items)
	}
}

func TestTxn(t *testing.T) {
	h := newHarness(t, 100)
	h.do(kv.Command{Op: "put", Key: "/cfg", Value: raw(`"v1"`)})
	txn := &kv.Txn{
		Compare: []kv.Compare{{Key: "/cfg", Target: "value", Op: "==", Value: raw(`"v1"`)}, {Key: "/lock", Target: "exists", Op: "==", Value: raw(`false`)}},
		Success: []kv.Op{{Put: &kv.PutOp{Key: "/cfg", Value: raw(`"v2"`)}}, {Put: &kv.PutOp{Key: "/lock", Value: raw(`true`)}}, {Get: &kv.GetOp{Key: "/cfg"}}},
		Failure: []kv.Op{{Get: &kv.GetOp{Key: "/cfg"}}},
	}
	if err := kv.ValidateTxn(txn); err != nil {
		t.Fatal(err)
	}
	r := h.do(kv.Command{Op: "txn", Txn: txn})
	if !r.Txn.Succeeded || len(r.Txn.Results) != 3 || string(r.Txn.Results[2].Get.Value) != `"v2"` || r.Txn.Results[0].Put.ModRevision != 2 || r.Txn.Results[1].Put.ModRevision != 2 {
		t.Fatalf("txn = %+v", r.Txn)
	}
	r = h.do(kv.Command{Op: "txn", Txn: txn})
	if r.Txn.Succeeded || string(r.Txn.Results[0].Get.Value) != `"v2"` {
		t.Fatalf("second txn = %+v, want failure branch", r.Txn)
	}
	for _, tc := range []struct {
		name string
		txn  kv.Txn
	}{
		{"bad target", kv.Txn{Compare: []kv.Compare{{Key: "/a", Target: "colour", Op: "==", Value: raw(`1`)}}}},
		{"bad op", kv.Txn{Compare: []kv.Compare{{Key: "/a", Target: "version", Op: "~", Value: raw(`1`)}}}},
		{"version vs string", kv.Txn{Compare: []kv.Compare{{Key: "/a", Target: "version", Op: "==", Value: raw(`"1"`)}}}},
		{"two actions", kv.Txn{Success: []kv.Op{{Get: &kv.GetOp{Key: "/a"}, Delete: &kv.DeleteOp{Key: "/a"}}}}},
		{"bad key", kv.Txn{Success: []kv.Op{{Get: &kv.GetOp{Key: "a"}}}}},
		{"too many", kv.Txn{Success: make([]kv.Op, 129)}},
	} {
		if err := kv.ValidateTxn(&tc.txn); err == nil {
			t.Fatalf("ValidateTxn(%s) = nil, want an error", tc.name)
		}
	}
}

func TestLeasesAndFencing(t *testing.T) {
	h := newHarness(t, 100)
	g := h.do(kv.Command{Op: "grant", TTL: 10 * time.Second})
	id := g.Lease.ID
	h.do(kv.Command{Op: "put", Key: "/svc/a", Value: raw(`1`), Lease: id})
	h.do(kv.Command{Op: "put", Key: "/svc/b", Value: raw(`1`), Lease: id})
	if r := h.do(kv.Command{Op: "put", Key: "/x", Value: raw(`1`), Lease: 999}); r.Status != kv.LeaseNotFound {
		t.Fatalf("put with unknown lease = %+v", r)
	}
	if l := h.s.LeaseInfo(id); len(l.Keys) != 2 {
		t.Fatalf("lease keys = %v", l.Keys)
	}
	h.now = h.now.Add(8 * time.Second)
	if due := h.s.DueExpiries(h.now); len(due) != 0 {
		t.Fatalf("due before the deadline: %s", due)
	}
	h.do(kv.Command{Op: "keepalive", ID: id})
	h.now = h.now.Add(11 * time.Second)
	due := h.s.DueExpiries(h.now)
	if len(due) != 1 {
		t.Fatalf("due = %s, want one expiry", due)
	}
	var c kv.Command
	_ = json.Unmarshal(due[0], &c)
	if r := h.do(c); r.Status != kv.OK || r.Deleted != 2 {
		t.Fatalf("expire = %+v", r)
	}
	if r := h.do(c); r.Status != kv.PreconditionFailed {
		t.Fatalf("duplicate expire = %+v, want a no-op", r)
	}
	if items, _ := h.s.List("/svc/", "", 10); len(items) != 0 {
		t.Fatalf("keys of an expired lease remain: %v", items)
	}

	fenced := func(tok int64) kv.Result {
		return h.do(kv.Command{Op: "put", Key: "/leader/cfg", Value: raw(`1`), Fence: &kv.Fence{Name: "leader", Token: tok}})
	}
	if r := fenced(5); r.Status != kv.OK {
		t.Fatalf("fenced put 5 = %+v", r)
	}
	if r := fenced(6); r.Status != kv.OK {
		t.Fatalf("fenced put 6 = %+v", r)
	}
	if r := fenced(5); r.Status != kv.Fenced || r.FenceToken != 6 {
		t.Fatalf("stale fenced put = %+v, want fenced with 6", r)
	}
}

// TestBy: every version a write makes, and its watch event, carry the
// command's By; a lease's expiry is the store's own and carries none.
func TestBy(t *testing.T) {
	h := newHarness(t, 100)
	g := h.do(kv.Command{Op: "grant", TTL: time.Second, By: "granter"})
	h.do(kv.Command{Op: "put", Key: "/a", Value: raw(`1`), By: "putter"})
	h.do(kv.Command{Op: "put", Key: "/l", Value: raw(`1`), Lease: g.Lease.ID, By: "putter"})
	h.do(kv.Command{Op: "put", Key: "/n", Value: raw(`1`)})
	h.do(kv.Command{Op: "txn", By: "txner", Txn: &kv.Txn{Success: []kv.Op{{Put: &kv.PutOp{Key: "/t", Value: raw(`1`)}}}}})
	h.do(kv.Command{Op: "delete", Key: "/a", By: "deleter"})
	h.do(kv.Command{Op: "deletePrefix", Prefix: "/t", By: "pruner"})
	h.now = h.now.Add(2 * time.Second)
	h.do(kv.Command{Op: "expire", ID: g.Lease.ID, Since: g.Lease.ID})
	tests := []struct {
		key  string
		want []string // newest first
	}{
		{"/a", []string{"deleter", "putter"}},
		{"/l", []string{"", "putter"}},
		{"/n", []string{""}},
		{"/t", []string{"pruner", "txner"}},
	}
	for _, tc := range tests {
		hist, _ := h.s.History(tc.key, 10)
		var got []string
		for _, it := range hist {
			got = append(got, it.By)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("History(%s) by = %q, want %q", tc.key, got, tc.want)
		}
	}
	wantEvents := map[string]string{"put /a": "putter", "put /l": "putter", "put /n": "", "put /t": "txner",
		"delete /a": "deleter", "delete /t": "pruner", "delete /l": ""}
	for _, ev := range h.event {
		var d kv.EventData
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatal(err)
		}
		if want, ok := wantEvents[ev.Type+" "+ev.Key]; !ok || d.Entry.By != want {
			t.Errorf("%s event on %s by = %q, want %q", ev.Type, ev.Key, d.Entry.By, want)
		}
	}
	if len(h.event) != len(wantEvents) {
		t.Errorf("%d events, want %d", len(h.event), len(wantEvents))
	}
}

// TestDeterministicReplay applies one log to two stores, and to a third
// restored from a snapshot halfway, and compares snapshots byte for byte.
func TestDeterministicReplay(t *testing.T) {
	h := newHarness(t, 50)
	g := h.do(kv.Command{Op: "grant", TTL: time.Minute})
	for i := range 300 {
		key := fmt.Sprintf("/k/%d", i%37)
		switch i % 5 {
		case 0, 1:
			h.do(kv.Command{Op: "put", Key: key, Value: raw(fmt.Sprintf(`{"i":%d}`, i)), Lease: g.Lease.ID * int64(i%2), By: fmt.Sprintf("tok%d", i%3)})
		case 2:
			h.do(kv.Command{Op: "delete", Key: key, By: "tok-d"})
		case 3:
			h.do(kv.Command{Op: "put", Key: key, Value: raw(`0`), IfMatch: ptr(int64(i - 3))})
		case 4:
			h.do(kv.Command{Op: "txn", Txn: &kv.Txn{Compare: []kv.Compare{{Key: key, Target: "version", Op: ">", Value: raw(`1`)}},
				Success: []kv.Op{{Delete: &kv.DeleteOp{Prefix: "/k/1"}}}, Failure: []kv.Op{{Put: &kv.PutOp{Key: key, Value: raw(`1`)}}}}})
		}
		h.now = h.now.Add(time.Second)
	}
	snap := func(s *kv.Machine) []byte {
		var b bytes.Buffer
		if err := s.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	replay := func(from *kv.Machine, entries []qlog.Entry) *kv.Machine {
		for _, e := range entries {
			from.Apply(e)
		}
		return from
	}
	a := replay(kv.New(50), h.log)
	b := replay(kv.New(50), h.log)
	half := replay(kv.New(50), h.log[:150])
	c := kv.New(1)
	if err := c.Restore(bytes.NewReader(snap(half))); err != nil {
		t.Fatal(err)
	}
	replay(c, h.log[150:])
	want := snap(h.s)
	for name, s := range map[string]*kv.Machine{"a": a, "b": b, "restored": c} {
		if got := snap(s); !bytes.Equal(got, want) {
			t.Fatalf("replay %s: snapshot differs (%d vs %d bytes)", name, len(got), len(want))
		}
	}
}
