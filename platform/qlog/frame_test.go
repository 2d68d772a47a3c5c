package qlog

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

func TestFrameRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 300) // lengths of two varint bytes
	tests := []struct {
		name    string
		entries []wireEntry
	}{
		{"no entries", nil},
		{"one entry with every field", []wireEntry{{ID: "n.1", Proposer: "config-0", Time: 1_700_000_000_123_456_789, Key: "idem", Cmd: []byte(`{"op":"put"}`)}}},
		{"empty fields", []wireEntry{{}}},
		{"times before 1970 and at the ends", []wireEntry{{ID: "a", Time: -1}, {ID: "b", Time: math.MinInt64}, {ID: "c", Time: math.MaxInt64}}},
		{"long fields", []wireEntry{{ID: long, Proposer: long, Key: long, Cmd: []byte(`"` + long + `"`)}}},
		{"proposers alternating", []wireEntry{{ID: "1", Proposer: "r0"}, {ID: "2", Proposer: "r0"}, {ID: "3", Proposer: "r1"}, {ID: "4", Proposer: "r0"}}},
		{"bytes JSON would escape", []wireEntry{{ID: "<&>", Proposer: "é", Key: "\x00\xff", Cmd: []byte(`"<&>\u2028"`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := appendFrame(nil, tt.entries)
			got, err := decodeBatch(data)
			if err != nil {
				t.Fatalf("decodeBatch(appendFrame(%v)) = %v", tt.entries, err)
			}
			if !slices.EqualFunc(got, tt.entries, equalWireEntry) {
				t.Fatalf("decodeBatch(appendFrame(x)) = %+v, want %+v", got, tt.entries)
			}
			for i, e := range got {
				if len(e.Cmd) == 0 {
					continue
				}
				if !within(e.Cmd, data) || cap(e.Cmd) != len(e.Cmd) {
					t.Errorf("entry %d: Cmd is a copy, or a slice with room to append over the frame; want a capped slice of the message", i)
				}
			}
			if again := appendFrame(nil, got); !bytes.Equal(again, data) {
				t.Errorf("encoding the decoded entries = %x, want %x", again, data)
			}
			if prefix := []byte("prefix"); !bytes.Equal(appendFrame(prefix, tt.entries), append(prefix, data...)) {
				t.Errorf("appendFrame(prefix, x) does not append to prefix")
			}
		})
	}
}

func equalWireEntry(a, b wireEntry) bool {
	return a.ID == b.ID && a.Proposer == b.Proposer && a.Time == b.Time && a.Key == b.Key && bytes.Equal(a.Cmd, b.Cmd)
}

// within reports whether b lies in data's memory.
func within(b, data []byte) bool {
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(data))
}

// TestFrameLayout pins the bytes of a frame: streams keep them, so a
// change to the encoding is a new frame version, not an edit.
func TestFrameLayout(t *testing.T) {
	got := appendFrame(nil, []wireEntry{{ID: "i", Proposer: "p", Time: -2, Key: "", Cmd: []byte("1")}})
	want := []byte{0, 'Q', 'B', 1, 1, 1, 'i', 1, 'p', 3, 0, 1, '1'}
	if !bytes.Equal(got, want) {
		t.Fatalf("frame = %v, want %v", got, want)
	}
}

// TestFrameCorruptRefused checks that a frame that is damaged in any way
// decodes to nothing, with an error, and that every shorter prefix of a
// good frame is refused.
func TestFrameCorruptRefused(t *testing.T) {
	good := appendFrame(nil, []wireEntry{
		{ID: "n.1", Proposer: "r0", Time: 1, Key: "k", Cmd: []byte(`"a"`)},
		{ID: "n.2", Proposer: "r0", Time: 2, Cmd: []byte(`"b"`)},
	})
	uvarint := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	head := frameMagic[:]
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name string
		data []byte
		want string // in the error
	}{
		{"only the zero byte", []byte{0}, "not a binary frame"},
		{"another magic", cat([]byte{0, 'Q', 'X', 1}, good[4:]), "not a binary frame"},
		{"a later version", cat([]byte{0, 'Q', 'B', 2}, good[4:]), "binary frame version 2"},
		{"no count", head, "truncated"},
		{"more entries than bytes could hold", cat(head, uvarint(1<<40)), "claims 1099511627776 entries"},
		{"a count one too high", cat(head, []byte{3}, good[5:]), "truncated"},
		{"a field longer than the frame", cat(head, []byte{1}, uvarint(math.MaxUint64), []byte("xxxx")), "field of 18446744073709551615 bytes with 4 left"},
		{"a varint over 64 bits", cat(head, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}), "overflows"},
		{"a count not in its shortest form", cat(head, []byte{0x82, 0x00}, good[5:]), "shortest form"},
		{"a byte after the last entry", cat(good, []byte{0}), "1 bytes after the last entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := decodeBatch(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) || entries != nil {
				t.Fatalf("decodeBatch(%x) = %d entries, %v; want none and an error with %q", tt.data, len(entries), err, tt.want)
			}
		})
	}
	for n := range len(good) {
		if entries, err := decodeBatch(good[:n]); err == nil || entries != nil {
			t.Errorf("decodeBatch(the first %d of %d bytes) = %d entries, %v; want none and an error", n, len(good), len(entries), err)
		}
	}
}

// TestCoreAppliesBothKinds feeds a stream whose JSON batches (written
// before the binary frame) are followed by binary ones, as a stream looks
// after an upgrade, and checks that it applies exactly as the same batches
// all in JSON or all binary: the same revisions, results, state machine,
// hash chain and snapshot bytes. A damaged message in either encoding is
// skipped alike.
func TestCoreAppliesBothKinds(t *testing.T) {
	batches := [][]ent{
		{{cmd: "a", at: 10, key: "k"}, {cmd: "pair", at: 11}},
		{{cmd: "a", at: 12, key: "k"}},
		{{cmd: "b", at: 9}, {cmd: "quiet", at: 13}},
		{{cmd: "c", at: 14, key: "k2"}},
		{{cmd: "c", at: 15, key: "k2"}, {cmd: "d", at: 16}},
	}
	encode := func(binaryFrom int, damage func(i int, m []byte) []byte) [][]byte {
		var out [][]byte
		for i, b := range batches {
			m := msg(b...)
			if i >= binaryFrom {
				m = frame(b...)
			}
			if damage != nil {
				m = damage(i, m)
			}
			out = append(out, m)
		}
		return out
	}
	type state struct {
		outcomes []outcome
		sm       []string
		rev      int64
		chain    chainHash
		snapshot []byte
		skipped  []int // the messages skipped
	}
	run := func(msgs [][]byte) state {
		sm := &journal{}
		c := newTestCore(sm, 16)
		as := feed(t, c, msgs)
		s := state{outcomes: outcomes(as), sm: sm.cmds(), rev: c.rev, chain: c.chain}
		for i, a := range as {
			if a.Skipped != nil {
				s.skipped = append(s.skipped, i)
			}
		}
		seal, err := c.beginSnapshot(0)
		if err != nil {
			t.Fatal(err)
		}
		if s.snapshot, _, err = seal(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	same := func(t *testing.T, got, want state) {
		t.Helper()
		if !slices.EqualFunc(got.outcomes, want.outcomes, func(a, b outcome) bool {
			return a.rev == b.rev && a.res.Revision == b.res.Revision && a.res.Duplicate == b.res.Duplicate && bytes.Equal(a.res.Value, b.res.Value)
		}) {
			t.Errorf("outcomes = %+v, want %+v", got.outcomes, want.outcomes)
		}
		if !slices.Equal(got.sm, want.sm) || got.rev != want.rev || got.chain != want.chain || !slices.Equal(got.skipped, want.skipped) {
			t.Errorf("applied %v to rev %d chain %x, skipped %v; want %v to rev %d chain %x, skipped %v",
				got.sm, got.rev, got.chain[:4], got.skipped, want.sm, want.rev, want.chain[:4], want.skipped)
		}
		if !bytes.Equal(got.snapshot, want.snapshot) {
			t.Errorf("snapshot = %s, want %s", got.snapshot, want.snapshot)
		}
	}

	allJSON := run(encode(len(batches), nil))
	if allJSON.rev != 8 || len(allJSON.skipped) != 0 || !slices.Equal(allJSON.sm, []string{"a", "pair", "b", "quiet", "c", "d"}) {
		t.Fatalf("the JSON stream applied %v to revision %d, skipped %v; want a, pair, b, quiet, c, d to 8, none skipped", allJSON.sm, allJSON.rev, allJSON.skipped)
	}
	for from := range len(batches) {
		t.Run(fmt.Sprintf("binary from batch %d", from), func(t *testing.T) {
			same(t, run(encode(from, nil)), allJSON)
		})
	}

	// Damaged third messages: garbage where JSON was, and binary frames
	// cut short or with a wrong count. Each is skipped and takes no
	// revision, as the garbage is.
	damagedAt := func(f func([]byte) []byte) func(int, []byte) []byte {
		return func(i int, m []byte) []byte {
			if i == 2 {
				return f(m)
			}
			return m
		}
	}
	skippedRef := run(encode(len(batches), damagedAt(func([]byte) []byte { return []byte("garbage") })))
	if skippedRef.rev != allJSON.rev-2 || !slices.Equal(skippedRef.skipped, []int{2}) {
		t.Fatalf("with garbage for batch 2 = rev %d skipped %v, want rev %d skipped [2]", skippedRef.rev, skippedRef.skipped, allJSON.rev-2)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"truncated":           func(m []byte) []byte { return m[:len(m)-1] },
		"cut after the count": func(m []byte) []byte { return m[:5] },
		"a count of 3":        func(m []byte) []byte { m = bytes.Clone(m); m[4] = 3; return m },
		"a count of 1":        func(m []byte) []byte { m = bytes.Clone(m); m[4] = 1; return m },
		"magic only":          func(m []byte) []byte { return m[:4] },
	} {
		t.Run("a binary frame "+name, func(t *testing.T) {
			same(t, run(encode(0, damagedAt(damage))), skippedRef)
		})
	}
}

// TestCoreJSONWrongTypeStillApplies pins what applied.Skipped says of a
// JSON batch with a field of the wrong type: the entries JSON decoding
// filled in are applied, and the message is reported. Binary frames
// changed nothing here.
func TestCoreJSONWrongTypeStillApplies(t *testing.T) {
	sm := &journal{}
	c := newTestCore(sm, 16)
	a, err := c.apply(1, []byte(`{"entries":[{"id":"x","p":"r0","t":"soon","c":"a"},{"id":"y","p":"r0","t":5,"c":"b"}]}`))
	if err != nil || a.Skipped == nil || len(a.Entries) != 2 || a.Rev != 2 || !slices.Equal(sm.cmds(), []string{"a", "b"}) {
		t.Fatalf("apply(a wrongly typed time) = %+v, %v, applied %v; want both entries applied, revision 2 and the error reported", a, err, sm.cmds())
	}
}

func TestDecodeMessage(t *testing.T) {
	entries := []wireEntry{{ID: "n.1", Proposer: "r0", Time: 1_700_000_000_000_000_001, Key: "k", Cmd: []byte(`{"op":"put"}`)}}
	jsonBatch, _ := json.Marshal(wireBatch{Entries: entries})
	for name, data := range map[string][]byte{"binary": appendFrame(nil, entries), "JSON": jsonBatch} {
		got, err := DecodeMessage(data)
		if err != nil || len(got) != 1 {
			t.Fatalf("DecodeMessage(%s) = %+v, %v; want one entry", name, got, err)
		}
		e := got[0]
		if e.ID != "n.1" || e.Proposer != "r0" || e.Time.UnixNano() != 1_700_000_000_000_000_001 || e.Key != "k" || string(e.Cmd) != `{"op":"put"}` {
			t.Errorf("DecodeMessage(%s) = %+v, want the entry encoded", name, e)
		}
	}
	if got, err := DecodeMessage([]byte("garbage")); err == nil || len(got) != 0 {
		t.Errorf("DecodeMessage(garbage) = %+v, %v; want an error", got, err)
	}
}

// FuzzFrameDecode feeds the decoder anything: it must not panic, and a
// frame it accepts must be the one encoding of what it decoded to.
func FuzzFrameDecode(f *testing.F) {
	f.Add(appendFrame(nil, nil))
	f.Add(appendFrame(nil, []wireEntry{{ID: "n.1", Proposer: "r0", Time: 1, Key: "k", Cmd: []byte(`"a"`)}, {ID: "n.2", Proposer: "r0", Time: -1}}))
	f.Add(appendFrame(nil, []wireEntry{{ID: strings.Repeat("i", 200), Proposer: "r1", Cmd: []byte(strings.Repeat("1", 300))}}))
	f.Add([]byte{0, 'Q', 'B', 1, 0x80})
	f.Add([]byte(`{"entries":[{"id":"x","p":"r0","t":5,"c":"b"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := decodeBatch(data)
		if len(data) == 0 || data[0] != frameMagic[0] {
			return // JSON: encoding/json's own business
		}
		if err != nil {
			if entries != nil {
				t.Fatalf("a refused frame decoded to %d entries", len(entries))
			}
			return
		}
		if again := appendFrame(nil, entries); !bytes.Equal(again, data) {
			t.Fatalf("appendFrame(decodeBatch(%x)) = %x", data, again)
		}
	})
}

// benchEncoding is a benchmark's batch in one encoding.
type benchEncoding struct {
	name string
	data []byte
}

// benchBatch is a 16-entry batch of 256-byte commands from one proposer,
// half with idempotency keys (withKeys), in each encoding: the JSON the
// proposer wrote before the binary frame, and the frame.
func benchBatch(b *testing.B, withKeys bool) []benchEncoding {
	entries := make([]wireEntry, benchEntries)
	for i := range entries {
		cmd := fmt.Sprintf(`{"op":"put","key":"/app/settings/%02d","value":"`, i)
		cmd += strings.Repeat("v", 256-len(cmd)-2) + `"}`
		entries[i] = wireEntry{ID: fmt.Sprintf("3f9a0c1e7b2d4a68.%d", 100+i), Proposer: "config-0",
			Time: 1_764_950_000_000_000_000 + int64(i), Cmd: []byte(cmd)}
		if withKeys && i%2 == 0 {
			entries[i].Key = fmt.Sprintf("idem-%d", i)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wireBatch{Entries: entries}); err != nil {
		b.Fatal(err)
	}
	return []benchEncoding{{"json", buf.Bytes()}, {"binary", appendFrame(nil, entries)}}
}

const benchEntries = 16

// BenchmarkDecodeBatch decodes a 16-entry batch of 256-byte commands in
// each encoding, as the apply loop does for every stream message.
func BenchmarkDecodeBatch(b *testing.B) {
	for _, bc := range benchBatch(b, true) {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				got, err := decodeBatch(bc.data)
				if err != nil || len(got) != benchEntries {
					b.Fatalf("decodeBatch = %d entries, %v", len(got), err)
				}
			}
		})
	}
}

// nopMachine applies nothing: what is left of core.apply is the log's
// own work, decoding, revisions, dedupe and the hash chain.
type nopMachine struct{}

func (nopMachine) Apply(Entry) ([]byte, []Event) { return []byte(`{"ok":true}`), nil }
func (nopMachine) Snapshot(io.Writer) error      { return nil }
func (nopMachine) Restore(io.Reader) error       { return nil }

// BenchmarkApplyBatch is core.apply of the batch of BenchmarkDecodeBatch
// (without idempotency keys, which would make every repeat a duplicate)
// over a state machine that does nothing: how much of the log's own cost
// per message the encoding is.
func BenchmarkApplyBatch(b *testing.B) {
	for _, bc := range benchBatch(b, false) {
		b.Run(bc.name, func(b *testing.B) {
			c := newTestCore(nopMachine{}, 1024)
			b.ReportAllocs()
			for b.Loop() {
				if a, err := c.apply(c.seq+1, bc.data); err != nil || a.Skipped != nil || len(a.Entries) != benchEntries {
					b.Fatalf("apply = %d entries, %v, skipped %v", len(a.Entries), err, a.Skipped)
				}
			}
		})
	}
}
