package qlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// core is the log's replicated bookkeeping, in the spirit of etcd's
// raft.RawNode: it is handed stream messages, (sequence, bytes), in the
// order the consumer delivers them and says what they produced. It keeps
// the applied position, revisions, log time, the hash chain, the
// idempotency keys and the watch ring, and calls the state machine; it
// does no I/O, starts no goroutine, reads no clock and takes no lock. The
// Log around it consumes the stream, holds mu while it calls the core and
// delivers what the core returns (to proposers, watchers, the voters).
// Everything here is replicated state: two cores fed the same messages
// reach the same position, chain and snapshot header.
type core struct {
	sm           StateMachine
	dedupeWindow time.Duration

	seq     uint64    // last applied stream sequence
	rev     int64     // last applied revision
	logTime time.Time // largest entry time applied
	chain   chainHash
	dedupe  dedupeTable
	ring    eventRing
}

func newCore(sm StateMachine, watchBuffer int, dedupeWindow time.Duration) core {
	return core{sm: sm, dedupeWindow: dedupeWindow, dedupe: newDedupeTable(), ring: newEventRing(watchBuffer)}
}

// applied is what applying one stream message produced.
type applied struct {
	// Seq, Rev and Chain are the position after the message.
	Seq   uint64
	Rev   int64
	Chain chainHash
	// Entries are the message's entries in order, each with its outcome,
	// for the proposers waiting for them.
	Entries []appliedEntry
	// Events are what watchers see, stamped with their revisions; they
	// are in the ring already.
	Events []Event
	// Oldest is the earliest proposer time stamp among Entries (Unix
	// nanoseconds), 0 without entries.
	Oldest int64
	// Skipped is why the message did not decode. A message that is
	// neither a binary frame nor JSON, or a binary frame that is corrupt,
	// takes no revision; a JSON batch with a field of the wrong type
	// applies the entries JSON decoding filled in. Every replica alike.
	Skipped error
}

// appliedEntry is one entry's outcome and who proposed it.
type appliedEntry struct {
	ID, Proposer string
	Out          outcome
}

// apply applies the message stored at stream sequence seq. It refuses
// (and changes nothing) a sequence that is not the next one: an earlier
// one with an error, a later one with a *gapError.
func (c *core) apply(seq uint64, data []byte) (applied, error) {
	switch {
	case seq <= c.seq:
		return applied{}, fmt.Errorf("stream sequence went backwards: got %d after applying %d", seq, c.seq)
	case seq != c.seq+1:
		return applied{}, &gapError{got: seq, applied: c.seq}
	}
	entries, err := decodeBatch(data)
	out := applied{}
	if err != nil {
		// Every replica sees the same bytes and skips them alike, so this
		// cannot make replicas diverge; it only means someone published
		// garbage on the log subject.
		out.Skipped = err
	}
	out.Entries = make([]appliedEntry, 0, len(entries))
	for _, we := range entries {
		c.rev++
		if out.Oldest == 0 || we.Time < out.Oldest {
			out.Oldest = we.Time
		}
		if t := time.Unix(0, we.Time); t.After(c.logTime) {
			c.logTime = t
		}
		c.dedupe.expire(c.logTime.Add(-c.dedupeWindow).UnixNano())
		var o outcome
		if rec, dup := c.dedupe.get(we.Key); dup {
			o = outcome{res: Result{Revision: rec.Rev, Value: rec.Result, Duplicate: true}, rev: c.rev}
			c.chain = c.chain.next(c.rev, we.Cmd, nil)
		} else {
			result, events := c.sm.Apply(Entry{Revision: c.rev, Time: c.logTime, Proposer: we.Proposer, Cmd: we.Cmd})
			if we.Key != "" {
				c.dedupe.put(we.Key, dedupeRecord{Rev: c.rev, Time: c.logTime.UnixNano(), Result: result})
			}
			for _, ev := range events {
				ev.Revision = c.rev
				c.ring.push(ev)
				out.Events = append(out.Events, ev)
			}
			o = outcome{res: Result{Revision: c.rev, Value: result}, rev: c.rev}
			c.chain = c.chain.next(c.rev, we.Cmd, result)
		}
		out.Entries = append(out.Entries, appliedEntry{ID: we.ID, Proposer: we.Proposer, Out: o})
	}
	c.seq = seq
	out.Seq, out.Rev, out.Chain = c.seq, c.rev, c.chain
	return out, nil
}

// watchFrom returns the ring position a watch from revision from starts
// at, and the first revision it yields; from <= 0 means the next revision.
// A revision the ring no longer wholly holds is a *CompactedError.
func (c *core) watchFrom(from int64) (pos uint64, first int64, err error) {
	switch {
	case from <= 0:
		return c.ring.nextPos(), c.rev + 1, nil
	case from < c.ring.heldFrom:
		return 0, 0, &CompactedError{Requested: from, CompactRevision: c.ring.heldFrom}
	default:
		return c.ring.search(from), from, nil
	}
}

// events returns the next events held at ring position pos and after that
// are at revision from or later and match filter (nil matches all): the
// first such event, or with wholeRevision all of its revision's. next is
// where to read on from. A position the ring dropped is ErrWatchLagged.
func (c *core) events(pos uint64, from int64, filter func(Event) bool, wholeRevision bool) (out []Event, next uint64, err error) {
	if pos < c.ring.firstPos {
		return nil, pos, ErrWatchLagged
	}
	for pos < c.ring.nextPos() {
		ev := c.ring.at(pos)
		if len(out) > 0 && (!wholeRevision || ev.Revision != out[0].Revision) {
			break
		}
		pos++
		if ev.Revision >= from && (filter == nil || filter(ev)) {
			out = append(out, ev)
		}
	}
	return out, pos, nil
}

// Snapshot data layout: 4-byte big-endian header length, the JSON header
// (snapshotHeader), then the state machine's own snapshot bytes.
//
// beginSnapshot starts a snapshot of the applied state, the buffer sized
// for sizeHint bytes of state. The header is captured now. A
// SnapshotViewer only takes its view now, and seal writes the view while
// Apply may go on; any other state machine writes its whole state now and
// seal only returns the bytes and their SHA-256. Either way the bytes are
// the same.
func (c *core) beginSnapshot(sizeHint int) (seal func() (data, checksum []byte, err error), err error) {
	hdr, err := json.Marshal(snapshotHeader{Revision: c.rev, Seq: c.seq, LogTime: c.logTime.UnixNano(),
		Chain: hex.EncodeToString(c.chain[:]), Dedupe: c.dedupe.records()})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(sizeHint + len(hdr) + 4)
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(hdr)))
	buf.Write(hdr)
	body := func(io.Writer) error { return nil }
	if v, ok := c.sm.(SnapshotViewer); ok {
		body = v.SnapshotView()
	} else if err := c.sm.Snapshot(&buf); err != nil {
		return nil, fmt.Errorf("state machine snapshot: %w", err)
	}
	return func() ([]byte, []byte, error) {
		if err := body(&buf); err != nil {
			return nil, nil, fmt.Errorf("state machine snapshot: %w", err)
		}
		sum := sha256.Sum256(buf.Bytes())
		return buf.Bytes(), sum[:], nil
	}, nil
}

// restore verifies snapshot data (laid out as beginSnapshot writes it) against its
// checksum and loads it into the core and the state machine; the next
// message it applies is the one after the snapshot's sequence. A failure
// after the state machine began to restore leaves a partial state that
// only another successful restore may replace.
func (c *core) restore(data, checksum []byte) error {
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], checksum) {
		return errors.New("checksum mismatch")
	}
	if len(data) < 4 {
		return errors.New("truncated header")
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n)+4 > uint64(len(data)) {
		return errors.New("truncated header")
	}
	var h snapshotHeader
	if err := json.Unmarshal(data[4:4+n], &h); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	chain, err := hex.DecodeString(h.Chain)
	if err != nil || len(chain) != len(chainHash{}) {
		return errors.New("header: bad chain hash")
	}
	if err := c.sm.Restore(bytes.NewReader(data[4+n:])); err != nil {
		return fmt.Errorf("state machine restore: %w", err)
	}
	c.rev, c.seq, c.logTime = h.Revision, h.Seq, time.Unix(0, h.LogTime)
	copy(c.chain[:], chain)
	c.dedupe = newDedupeTable()
	for _, r := range h.Dedupe {
		c.dedupe.put(r.Key, r)
	}
	c.ring.reset(c.rev)
	return nil
}

// wireBatch is a stream message in JSON: the entries one replica
// group-committed, as every version writes them (the default,
// BatchJSON) and as versions before the binary frame (frame.go) read
// them. `steward log dump` shows either kind readably.
type wireBatch struct {
	Entries []wireEntry `json:"entries"`
}

type wireEntry struct {
	ID       string          `json:"id"`          // proposal ID, unique per proposer incarnation
	Proposer string          `json:"p"`           // replica ID
	Time     int64           `json:"t"`           // proposer's clock, Unix nanoseconds
	Key      string          `json:"k,omitempty"` // idempotency key
	Cmd      json.RawMessage `json:"c"`
}

// chainHash is the running hash of what a replica applied:
// h(n) = SHA-256(h(n-1) || revision || len(cmd) || cmd || len(result) || result).
// Two replicas that applied the same entries with the same results have
// the same hash at every revision; hashing results, not just commands,
// makes a replica whose state diverged (a bug, a bad restore, tampering)
// visible at the first entry whose outcome differs.
type chainHash [sha256.Size]byte

func (c chainHash) next(rev int64, cmd, result []byte) chainHash {
	h := sha256.New()
	var n [8]byte
	h.Write(c[:])
	binary.BigEndian.PutUint64(n[:], uint64(rev))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(cmd)))
	h.Write(n[:])
	h.Write(cmd)
	binary.BigEndian.PutUint64(n[:], uint64(len(result)))
	h.Write(n[:])
	h.Write(result)
	var out chainHash
	h.Sum(out[:0])
	return out
}

// dedupeTable remembers idempotency keys in the order they were applied and
// forgets them when the log's clock passes their time plus the window. It
// is part of the replicated state (and of snapshots), so every replica
// agrees on what is a duplicate.
type dedupeTable struct {
	byKey map[string]dedupeRecord
	order []string // keys in apply order; expiry pops from the front
}

type dedupeRecord struct {
	Key    string `json:"k"`
	Rev    int64  `json:"r"`
	Time   int64  `json:"t"`
	Result []byte `json:"v,omitempty"`
}

func newDedupeTable() dedupeTable { return dedupeTable{byKey: map[string]dedupeRecord{}} }

func (d *dedupeTable) get(key string) (dedupeRecord, bool) {
	if key == "" {
		return dedupeRecord{}, false
	}
	r, ok := d.byKey[key]
	return r, ok
}

func (d *dedupeTable) put(key string, r dedupeRecord) {
	r.Key = key
	d.byKey[key] = r
	d.order = append(d.order, key)
}

// expire drops keys recorded before cutoff (Unix nanoseconds). Entry times
// from different proposers are not sorted, so a key can outlive its window
// until those before it expire; the result is the same on every replica.
func (d *dedupeTable) expire(cutoff int64) {
	n := 0
	for n < len(d.order) && d.byKey[d.order[n]].Time < cutoff {
		delete(d.byKey, d.order[n])
		n++
	}
	if n > 0 {
		d.order = d.order[n:]
	}
}

func (d *dedupeTable) records() []dedupeRecord {
	out := make([]dedupeRecord, len(d.order))
	for i, k := range d.order {
		out[i] = d.byKey[k]
	}
	return out
}

// gapError is a stream message that is not the next one. first says it
// was the first message of a consumer that asked for the next one.
type gapError struct {
	got, applied uint64
	first        bool
}

func (e *gapError) Error() string {
	return fmt.Sprintf("gap in the stream: got sequence %d after applying %d", e.got, e.applied)
}
