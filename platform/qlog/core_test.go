package qlog

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"
)

// The log's own rules, tested on the core without JetStream: each test
// feeds stream messages (sequence, bytes) as a consumer would and checks
// what the core returns and keeps.

// journal is a state machine that records what it applied. A command
// "a" yields one event with key "a" and the result "ok:a"; "quiet" yields
// no event, "pair" two. skew, when set, changes the result of one command
// so that a replica diverges there.
type journal struct {
	applied []Entry
	skew    string
}

func (j *journal) Apply(e Entry) ([]byte, []Event) {
	j.applied = append(j.applied, e)
	var cmd string
	_ = json.Unmarshal(e.Cmd, &cmd)
	result := []byte("ok:" + cmd)
	if cmd == j.skew {
		result = []byte("skewed:" + cmd)
	}
	switch cmd {
	case "quiet":
		return result, nil
	case "pair":
		return result, []Event{{Type: "put", Key: "pair/1"}, {Type: "put", Key: "pair/2"}}
	}
	return result, []Event{{Type: "put", Key: cmd}}
}

func (j *journal) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(j.cmds()) }

func (j *journal) Restore(r io.Reader) error {
	var cmds []string
	if err := json.NewDecoder(r).Decode(&cmds); err != nil {
		return err
	}
	j.applied = nil
	for _, c := range cmds {
		j.applied = append(j.applied, Entry{Cmd: json.RawMessage(fmt.Sprintf("%q", c))})
	}
	return nil
}

func (j *journal) cmds() []string {
	out := make([]string, len(j.applied))
	for i, e := range j.applied {
		_ = json.Unmarshal(e.Cmd, &out[i])
	}
	return out
}

// ent is an entry as a proposer stamps it: command, time (seconds of log
// time) and an optional idempotency key.
type ent struct {
	cmd string
	at  int64
	key string
}

// wireEntries are entries as proposer "r0" stamps them.
func wireEntries(entries ...ent) []wireEntry {
	var out []wireEntry
	for i, e := range entries {
		out = append(out, wireEntry{ID: fmt.Sprintf("id-%s-%d", e.cmd, i), Proposer: "r0",
			Time: time.Unix(e.at, 0).UnixNano(), Key: e.key, Cmd: json.RawMessage(fmt.Sprintf("%q", e.cmd))})
	}
	return out
}

// msg encodes a stream message carrying entries as a JSON batch, as
// proposers wrote them before the binary frame.
func msg(entries ...ent) []byte {
	data, err := json.Marshal(wireBatch{Entries: wireEntries(entries...)})
	if err != nil {
		panic(err)
	}
	return data
}

// frame encodes a stream message carrying entries as a binary frame, as
// proposers write them.
func frame(entries ...ent) []byte { return appendFrame(nil, wireEntries(entries...)) }

// one is a message per entry.
func one(entries ...ent) [][]byte {
	var out [][]byte
	for _, e := range entries {
		out = append(out, msg(e))
	}
	return out
}

func newTestCore(sm StateMachine, watchBuffer int) *core {
	c := newCore(sm, watchBuffer, time.Minute)
	return &c
}

// feed applies msgs at sequences 1, 2, ... and returns each message's outcome.
func feed(t *testing.T, c *core, msgs [][]byte) []applied {
	t.Helper()
	var out []applied
	for _, m := range msgs {
		a, err := c.apply(c.seq+1, m)
		if err != nil {
			t.Fatalf("apply(%d) = %v", c.seq+1, err)
		}
		out = append(out, a)
	}
	return out
}

// outcomes flattens the entries' outcomes of several messages.
func outcomes(as []applied) []outcome {
	var out []outcome
	for _, a := range as {
		for _, e := range a.Entries {
			out = append(out, e.Out)
		}
	}
	return out
}

func TestCoreRevisions(t *testing.T) {
	tests := []struct {
		name     string
		msgs     [][]byte
		wantRevs []int64 // the revision each entry took, in order
		wantRev  int64   // after the last message
		wantSM   []string
	}{
		{"an entry per message", one(ent{cmd: "a"}, ent{cmd: "b"}), []int64{1, 2}, 2, []string{"a", "b"}},
		{"a batch takes consecutive revisions", [][]byte{msg(ent{cmd: "a"}, ent{cmd: "b"}), msg(ent{cmd: "c"})},
			[]int64{1, 2, 3}, 3, []string{"a", "b", "c"}},
		{"a message that is not JSON takes none", [][]byte{msg(ent{cmd: "a"}), []byte("garbage"), msg(ent{cmd: "b"})},
			[]int64{1, 2}, 2, []string{"a", "b"}},
		{"an empty batch takes none", [][]byte{msg(), msg(ent{cmd: "a"})}, []int64{1}, 1, []string{"a"}},
		{"a duplicate takes a revision but is not applied",
			one(ent{cmd: "a", key: "k"}, ent{cmd: "a", key: "k"}, ent{cmd: "b"}), []int64{1, 2, 3}, 3, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &journal{}
			c := newTestCore(sm, 16)
			as := feed(t, c, tt.msgs)
			var revs []int64
			for _, o := range outcomes(as) {
				revs = append(revs, o.rev)
			}
			if !slices.Equal(revs, tt.wantRevs) {
				t.Errorf("entry revisions = %v, want %v", revs, tt.wantRevs)
			}
			if last := as[len(as)-1]; c.rev != tt.wantRev || last.Rev != tt.wantRev || last.Seq != uint64(len(tt.msgs)) {
				t.Errorf("position = rev %d (reported %d) seq %d, want rev %d seq %d", c.rev, last.Rev, last.Seq, tt.wantRev, len(tt.msgs))
			}
			if got := sm.cmds(); !slices.Equal(got, tt.wantSM) {
				t.Errorf("state machine applied %v, want %v", got, tt.wantSM)
			}
			for i, e := range sm.applied[1:] {
				if e.Revision <= sm.applied[i].Revision {
					t.Errorf("Apply saw revision %d after %d, want increasing", e.Revision, sm.applied[i].Revision)
				}
			}
		})
	}
}

func TestCoreUndecodableMessageReported(t *testing.T) {
	c := newTestCore(&journal{}, 16)
	a, err := c.apply(1, []byte("garbage"))
	if err != nil || a.Skipped == nil || len(a.Entries) != 0 || a.Seq != 1 || a.Rev != 0 {
		t.Fatalf("apply(1, garbage) = %+v, %v; want skipped, seq 1, rev 0", a, err)
	}
}

func TestCoreDedupe(t *testing.T) {
	type want struct {
		rev int64 // Result.Revision: the first effective proposal's for a duplicate
		dup bool
	}
	tests := []struct {
		name   string
		msgs   [][]byte
		want   []want
		wantSM []string
	}{
		{"a retry applies once and answers the first result",
			one(ent{cmd: "a", key: "k"}, ent{cmd: "a", key: "k"}, ent{cmd: "a", key: "k"}),
			[]want{{1, false}, {1, true}, {1, true}}, []string{"a"}},
		{"a retry in the same batch",
			[][]byte{msg(ent{cmd: "a", key: "k"}, ent{cmd: "a", key: "k"})},
			[]want{{1, false}, {1, true}}, []string{"a"}},
		{"without a key nothing is a duplicate",
			one(ent{cmd: "a"}, ent{cmd: "a"}),
			[]want{{1, false}, {2, false}}, []string{"a", "a"}},
		{"different keys both apply",
			one(ent{cmd: "a", key: "k1"}, ent{cmd: "a", key: "k2"}),
			[]want{{1, false}, {2, false}}, []string{"a", "a"}},
		{"a key is forgotten once log time passes the window",
			one(ent{cmd: "a", at: 100, key: "k"}, ent{cmd: "b", at: 161}, ent{cmd: "a", at: 161, key: "k"}),
			[]want{{1, false}, {2, false}, {3, false}}, []string{"a", "b", "a"}},
		{"a key is remembered for the whole window",
			one(ent{cmd: "a", at: 100, key: "k"}, ent{cmd: "a", at: 160, key: "k"}),
			[]want{{1, false}, {1, true}}, []string{"a"}},
		{"a late proposer's clock does not shorten the window",
			one(ent{cmd: "a", at: 100, key: "k"}, ent{cmd: "b", at: 150}, ent{cmd: "a", at: 10, key: "k"}),
			[]want{{1, false}, {2, false}, {1, true}}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &journal{}
			c := newTestCore(sm, 16)
			var got []want
			for _, o := range outcomes(feed(t, c, tt.msgs)) {
				got = append(got, want{o.res.Revision, o.res.Duplicate})
				if o.res.Duplicate && string(o.res.Value) != "ok:a" {
					t.Errorf("duplicate's value = %q, want the first result %q", o.res.Value, "ok:a")
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("results (revision, duplicate) = %v, want %v", got, tt.want)
			}
			if cmds := sm.cmds(); !slices.Equal(cmds, tt.wantSM) {
				t.Errorf("state machine applied %v, want %v", cmds, tt.wantSM)
			}
		})
	}
}

func TestCoreLogTime(t *testing.T) {
	tests := []struct {
		name string
		at   []int64 // proposers' timestamps, seconds
		want []int64 // Entry.Time the state machine sees
	}{
		{"in order", []int64{10, 20, 30}, []int64{10, 20, 30}},
		{"a timestamp behind is raised", []int64{10, 5, 20}, []int64{10, 10, 20}},
		{"equal timestamps", []int64{10, 10}, []int64{10, 10}},
		{"a clock far behind stays behind", []int64{50, 1, 2, 51}, []int64{50, 50, 50, 51}},
	}
	for _, tt := range tests {
		var es []ent
		for _, at := range tt.at {
			es = append(es, ent{cmd: "a", at: at})
		}
		for _, shape := range []struct {
			name string
			msgs [][]byte
		}{{"one batch", [][]byte{msg(es...)}}, {"a message each", one(es...)}} {
			t.Run(tt.name+"/"+shape.name, func(t *testing.T) {
				sm := &journal{}
				feed(t, newTestCore(sm, 16), shape.msgs)
				var got []int64
				for _, e := range sm.applied {
					got = append(got, e.Time.Unix())
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("entry times = %v, want %v", got, tt.want)
				}
			})
		}
	}
}

func TestCoreRefusesSequences(t *testing.T) {
	tests := []struct {
		name    string
		seq     uint64 // after applying 1..3
		wantGap bool   // a *gapError; else an error that it went backwards
	}{
		{"the same sequence again", 3, false},
		{"an earlier sequence", 1, false},
		{"sequence zero", 0, false},
		{"a gap of one", 5, true},
		{"far ahead", 1000, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sm := &journal{}
			c := newTestCore(sm, 16)
			feed(t, c, one(ent{cmd: "a"}, ent{cmd: "b"}, ent{cmd: "c"}))
			rev, chain, seq := c.rev, c.chain, c.seq
			_, err := c.apply(tt.seq, msg(ent{cmd: "x"}))
			var ge *gapError
			if err == nil || errors.As(err, &ge) != tt.wantGap {
				t.Fatalf("apply(%d) after 3 = %v; want an error, gap %v", tt.seq, err, tt.wantGap)
			}
			if c.rev != rev || c.chain != chain || c.seq != seq || len(sm.applied) != 3 {
				t.Fatalf("a refused message changed the core: rev %d seq %d, %d applied", c.rev, c.seq, len(sm.applied))
			}
			if _, err := c.apply(4, msg(ent{cmd: "d"})); err != nil {
				t.Fatalf("apply(4) after a refusal = %v", err)
			}
		})
	}
}

func TestCoreHashChain(t *testing.T) {
	base := one(ent{cmd: "a"}, ent{cmd: "b", key: "k"}, ent{cmd: "b", key: "k"}, ent{cmd: "c"})
	tests := []struct {
		name string
		sm   *journal
		msgs [][]byte
		// divergeAt is the first message whose chain differs from the
		// base replica's; 0 means none does.
		divergeAt int
	}{
		{"the same entries and results", &journal{}, base, 0},
		{"a different result", &journal{skew: "c"}, base, 4},
		{"a different command", &journal{},
			one(ent{cmd: "a"}, ent{cmd: "x", key: "k"}, ent{cmd: "x", key: "k"}, ent{cmd: "c"}), 2},
		{"a retry applied instead of deduplicated", &journal{},
			one(ent{cmd: "a"}, ent{cmd: "b", key: "k"}, ent{cmd: "b", key: "k2"}, ent{cmd: "c"}), 3},
		{"the same entries batched differently", &journal{},
			[][]byte{msg(ent{cmd: "a"}, ent{cmd: "b", key: "k"}), msg(ent{cmd: "b", key: "k"}, ent{cmd: "c"})}, 0},
	}
	ref := newTestCore(&journal{}, 16)
	var refChains []chainHash // by revision
	for _, a := range feed(t, ref, base) {
		refChains = append(refChains, a.Chain)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(tt.sm, 16)
			firstDiff := 0
			for _, a := range feed(t, c, tt.msgs) {
				if a.Chain != refChains[a.Rev-1] && firstDiff == 0 {
					firstDiff = int(a.Rev)
				}
			}
			if firstDiff != tt.divergeAt {
				t.Errorf("chains first differ at revision %d, want %d", firstDiff, tt.divergeAt)
			}
		})
	}
}

func TestCoreWatchRing(t *testing.T) {
	// Revisions 1..6 make the events a, pair/1 and pair/2, none, b, c, d;
	// a ring of 4 keeps pair/2 (revision 2, no longer whole), b, c, d.
	msgs := one(ent{cmd: "a"}, ent{cmd: "pair"}, ent{cmd: "quiet"}, ent{cmd: "b"}, ent{cmd: "c"}, ent{cmd: "d"})
	tests := []struct {
		name      string
		from      int64
		whole     bool
		want      []string // keys of the first read
		compacted int64    // CompactRevision of a *CompactedError, or 0
	}{
		{"the next revision", 0, false, nil, 0},
		{"the newest revision", 6, false, []string{"d"}, 0},
		{"a held revision", 5, true, []string{"c"}, 0},
		{"the oldest wholly held revision, without events", 3, false, []string{"b"}, 0},
		{"a revision partly dropped", 2, false, nil, 3},
		{"a revision wholly dropped", 1, false, nil, 3},
		{"past the end", 9, false, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(&journal{}, 4)
			feed(t, c, msgs)
			if c.ring.heldFrom != 3 {
				t.Fatalf("heldFrom = %d, want 3", c.ring.heldFrom)
			}
			pos, first, err := c.watchFrom(tt.from)
			var ce *CompactedError
			if tt.compacted != 0 {
				if !errors.As(err, &ce) || ce.CompactRevision != tt.compacted || ce.Requested != tt.from {
					t.Fatalf("watchFrom(%d) = %v, want compacted at %d", tt.from, err, tt.compacted)
				}
				return
			}
			if err != nil {
				t.Fatalf("watchFrom(%d) = %v", tt.from, err)
			}
			evs, _, err := c.events(pos, first, nil, tt.whole)
			if err != nil {
				t.Fatalf("events = %v", err)
			}
			var keys []string
			for _, ev := range evs {
				keys = append(keys, ev.Key)
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("events from %d = %v, want %v", tt.from, keys, tt.want)
			}
		})
	}
}

func TestCoreWatchRingRevisionsAndLag(t *testing.T) {
	c := newTestCore(&journal{}, 4)
	pos, first, _ := c.watchFrom(0)
	as := feed(t, c, one(ent{cmd: "a"}, ent{cmd: "pair"}))
	if got := as[1].Events; len(got) != 2 || got[0].Revision != 2 || got[1].Revision != 2 {
		t.Fatalf("events of revision 2 = %+v, want two stamped with revision 2", got)
	}
	evs, next, err := c.events(pos, first, nil, false)
	if err != nil || len(evs) != 1 || evs[0].Key != "a" || evs[0].Revision != 1 {
		t.Fatalf("first event = %+v, %v; want a at revision 1", evs, err)
	}
	evs, next, err = c.events(next, first, nil, true)
	if err != nil || len(evs) != 2 || evs[1].Key != "pair/2" {
		t.Fatalf("whole revision 2 = %+v, %v; want pair/1 and pair/2", evs, err)
	}
	onlyB := func(ev Event) bool { return ev.Key == "b" }
	feed(t, c, one(ent{cmd: "b"}))
	if evs, _, _ := c.events(next, first, onlyB, false); len(evs) != 1 || evs[0].Revision != 3 {
		t.Fatalf("filtered read = %+v, want b at revision 3", evs)
	}
	// A reader still at the start, after the ring overwrote its position.
	feed(t, c, one(ent{cmd: "c"}, ent{cmd: "d"}))
	if _, _, err := c.events(pos, first, nil, false); !errors.Is(err, ErrWatchLagged) {
		t.Fatalf("read from an overwritten position = %v, want ErrWatchLagged", err)
	}
}

func TestCoreSnapshotRestore(t *testing.T) {
	before := one(ent{cmd: "a", at: 100, key: "k"}, ent{cmd: "b", at: 90})
	after := one(ent{cmd: "c", at: 95}, ent{cmd: "a", at: 110, key: "k"})

	src := newTestCore(&journal{}, 16)
	feed(t, src, before)
	seal, err := src.beginSnapshot(0)
	if err != nil {
		t.Fatal(err)
	}
	data, sum, err := seal()
	if err != nil {
		t.Fatal(err)
	}
	watchPos, watchFirst, _ := src.watchFrom(1)

	t.Run("continues where the snapshot ends", func(t *testing.T) {
		sm := &journal{}
		c := newTestCore(sm, 16)
		if err := c.restore(data, sum); err != nil {
			t.Fatal(err)
		}
		if c.seq != 2 || c.rev != 2 || c.chain != src.chain || c.logTime.Unix() != 100 {
			t.Fatalf("restored position = seq %d rev %d time %d; want seq 2 rev 2 time 100 and the same chain", c.seq, c.rev, c.logTime.Unix())
		}
		if _, err := c.apply(4, after[0]); err == nil {
			t.Fatal("apply(4) after a snapshot at 2 succeeded, want a gap")
		}
		got := outcomes(feed(t, c, after))
		want := outcomes(feed(t, src, after))
		if !slices.EqualFunc(got, want, func(a, b outcome) bool {
			return a.rev == b.rev && a.res.Revision == b.res.Revision && a.res.Duplicate == b.res.Duplicate
		}) {
			t.Errorf("after restore = %+v, want what the snapshotted core did: %+v", got, want)
		}
		if !got[1].res.Duplicate {
			t.Error("the retry after restore was applied: the dedupe table did not survive")
		}
		if c.chain != src.chain {
			t.Error("chains differ after the same entries")
		}
		if got := sm.applied[len(sm.applied)-1].Time.Unix(); got != 100 {
			t.Errorf("entry time after restore = %d, want 100 (log time is restored)", got)
		}
		var ce *CompactedError
		if _, _, err := c.watchFrom(2); !errors.As(err, &ce) || ce.CompactRevision != 3 {
			t.Errorf("watchFrom(2) after restore = %v, want compacted at 3", err)
		}
	})

	t.Run("cuts off watchers from before", func(t *testing.T) {
		if err := src.restore(data, sum); err != nil {
			t.Fatal(err)
		}
		if _, _, err := src.events(watchPos, watchFirst, nil, false); !errors.Is(err, ErrWatchLagged) {
			t.Errorf("a watcher from before the restore read %v, want ErrWatchLagged", err)
		}
	})

	for _, bad := range []struct {
		name      string
		data, sum []byte
	}{
		{"a checksum mismatch", data, append([]byte{sum[0] ^ 1}, sum[1:]...)},
		{"a truncated header", data[:3], nil},
	} {
		t.Run("refuses "+bad.name, func(t *testing.T) {
			c := newTestCore(&journal{}, 16)
			if bad.sum == nil {
				s := sha256.Sum256(bad.data)
				bad.sum = s[:]
			}
			if err := c.restore(bad.data, bad.sum); err == nil || c.seq != 0 {
				t.Errorf("restore = %v, seq %d; want an error and nothing restored", err, c.seq)
			}
		})
	}
}
