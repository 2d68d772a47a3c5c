package kv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/btree"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// DefaultRetainRevisions is how many revisions of history are kept for
// reads at an old revision and for GET /v1/history.
const DefaultRetainRevisions = 10_000

// Machine is the configuration store's state. Apply mutates it; the query
// methods (Get, List, History, LeaseInfo) must be called inside
// qlog.Log.Read, which excludes Apply.
type Machine struct {
	tree   *btree.BTreeG[*record]
	leases map[int64]*lease
	ttl    *qlog.Expiries // lease deadlines, keyed by lease ID
	fences map[string]int64
	// retain revisions of history are kept; compactRev is the oldest
	// revision a read at a revision may ask for.
	retain     int64
	compactRev int64
	// tombstones lists deleted keys in delete order, to drop their
	// records once the delete falls out of retained history.
	tombstones []tombstone
	rev        int64 // revision of the entry being applied
	now        time.Time
	by         string // token id of the command being applied (Command.By)
}

// record is one key's history. A record is immutable once it is in the
// tree: a snapshot view (SnapshotView) holds a clone of the tree that
// shares records with the live one and is written out while Apply goes on.
// A change therefore builds a new record (withVersion, pruned) and puts it
// in the tree in place of the old one.
type record struct {
	key string
	// versions in revision order; a deleted version is a tombstone.
	versions []version
}

// withVersion returns a new record holding rec's versions and then v. The
// append may reuse rec's backing array to keep a put O(1) amortised on a
// key with a long history: it writes only past len(rec.versions), which no
// holder of rec ever reads, and rec is replaced in the tree at once, so
// nothing appends to it again. Nothing may write an element below a
// record's length, nor reslice a record's versions shorter and append.
func (rec *record) withVersion(v version) *record {
	return &record{key: rec.key, versions: append(rec.versions, v)}
}

type version struct {
	Entry
	Deleted bool
}

type tombstone struct {
	Key string `json:"k"`
	Rev int64  `json:"r"`
}

type lease struct {
	ID        int64
	TTL       time.Duration
	ExpiresAt time.Time
	Renewed   int64
	Keys      map[string]struct{}
}

func lessRecord(a, b *record) bool { return a.key < b.key }

// New returns an empty store that keeps retain revisions of history.
func New(retain int64) *Machine {
	if retain <= 0 {
		retain = DefaultRetainRevisions
	}
	return &Machine{
		tree:   btree.NewG(32, lessRecord),
		leases: map[int64]*lease{},
		ttl:    qlog.NewExpiries(),
		fences: map[string]int64{},
		retain: retain,
	}
}

// current returns the key's live entry.
func (s *Machine) current(key string) (*record, *Entry) {
	rec, ok := s.tree.Get(&record{key: key})
	if !ok {
		return nil, nil
	}
	v := &rec.versions[len(rec.versions)-1]
	if v.Deleted {
		return rec, nil
	}
	return rec, &v.Entry
}

// Apply implements qlog.StateMachine.
func (s *Machine) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	s.rev, s.now = e.Revision, e.Time
	s.compact()
	var events []qlog.Event
	out := envelope.Apply(e.Cmd, func(c *Command) Result {
		var res Result
		res, events = s.apply(c)
		return res
	}, func(p envelope.Problem) Result { return Result{Status: Invalid, Problem: p} })
	return out, events
}

func (s *Machine) apply(c *Command) (Result, []qlog.Event) {
	s.by = c.By
	if c.Fence != nil {
		if high := s.fences[c.Fence.Name]; c.Fence.Token < high {
			return Result{Status: Fenced, FenceToken: high,
				Problem: envelope.Refuse(fault.Conflict, "fencing token %d for %q is stale; %d was seen", c.Fence.Token, c.Fence.Name, high)}, nil
		}
		s.fences[c.Fence.Name] = c.Fence.Token
	}
	var ev []qlog.Event
	switch c.Op {
	case "put":
		_, cur := s.current(c.Key)
		if r, ok := checkConditions(c, cur); !ok {
			return r, nil
		}
		e, prev, ok := s.put(c.Key, c.Value, c.Lease, &ev)
		if !ok {
			return Result{Status: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.Lease)}, nil
		}
		return Result{Status: OK, Entry: e, Prev: prev}, ev
	case "delete":
		_, cur := s.current(c.Key)
		if cur == nil {
			return Result{Status: NotFound, Problem: envelope.Refuse(fault.NotFound, "key %s not found", c.Key)}, nil
		}
		if r, ok := checkConditions(c, cur); !ok {
			return r, nil
		}
		prev := s.delete(c.Key, &ev)
		return Result{Status: OK, Entry: prev}, ev
	case "deletePrefix":
		n := int64(len(s.deletePrefix(c.Prefix, &ev)))
		return Result{Status: OK, Deleted: n}, ev
	case "txn":
		if c.Txn == nil {
			return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "txn without body")}, nil
		}
		tr, status := s.txn(c.Txn, &ev)
		if status != OK {
			return Result{Status: status, Txn: tr, Problem: envelope.Refuse(fault.NotFound, "a put of the transaction names a lease that does not exist")}, nil
		}
		return Result{Status: OK, Txn: tr}, ev
	case "grant":
		if c.TTL <= 0 {
			return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "lease TTL must be positive")}, nil
		}
		l := &lease{ID: s.rev, TTL: c.TTL, ExpiresAt: s.now.Add(c.TTL), Renewed: s.rev, Keys: map[string]struct{}{}}
		s.leases[l.ID] = l
		s.ttl.Set(leaseKey(l.ID), l.ExpiresAt, s.rev)
		return Result{Status: OK, Lease: l.view()}, nil
	case "keepalive":
		l := s.leases[c.ID]
		if l == nil {
			return Result{Status: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.ID)}, nil
		}
		l.ExpiresAt, l.Renewed = s.now.Add(l.TTL), s.rev
		s.ttl.Set(leaseKey(l.ID), l.ExpiresAt, s.rev)
		return Result{Status: OK, Lease: l.view()}, nil
	case "revoke":
		l := s.leases[c.ID]
		if l == nil {
			return Result{Status: LeaseNotFound, Problem: envelope.Refuse(fault.NotFound, "lease %d does not exist", c.ID)}, nil
		}
		view := l.view()
		s.revoke(l, &ev)
		return Result{Status: OK, Lease: view, Deleted: int64(len(view.Keys))}, ev
	case "expire":
		l := s.leases[c.ID]
		if l == nil || !s.ttl.Expired(leaseKey(c.ID), c.Since, s.now) {
			return Result{Status: PreconditionFailed, Problem: envelope.Refuse(fault.PreconditionFailed, "lease was renewed, revoked or is not yet due")}, nil
		}
		view := l.view()
		s.revoke(l, &ev)
		return Result{Status: OK, Lease: view, Deleted: int64(len(view.Keys))}, ev
	default:
		return Result{Status: Invalid, Problem: envelope.Refuse(fault.Invalid, "unknown op %q", c.Op)}, nil
	}
}

func leaseKey(id int64) string { return strconv.FormatInt(id, 10) }

func checkConditions(c *Command, cur *Entry) (Result, bool) {
	if c.IfNoneMatch && cur != nil {
		return Result{Status: PreconditionFailed, Entry: cur, Problem: envelope.Refuse(fault.PreconditionFailed, "precondition failed: key exists")}, false
	}
	if c.IfMatch != nil {
		if cur == nil {
			return Result{Status: PreconditionFailed, Problem: envelope.Refuse(fault.PreconditionFailed, "precondition failed: key does not exist")}, false
		}
		if cur.ModRevision != *c.IfMatch {
			return Result{Status: PreconditionFailed, Entry: cur,
				Problem: envelope.Refuse(fault.PreconditionFailed, "precondition failed: modRevision is %d, not %d", cur.ModRevision, *c.IfMatch)}, false
		}
	}
	return Result{}, true
}

// put writes key at the current revision. It reports false if lease is
// set and does not exist.
func (s *Machine) put(key string, value json.RawMessage, leaseID int64, ev *[]qlog.Event) (*Entry, *Entry, bool) {
	if leaseID != 0 && s.leases[leaseID] == nil {
		return nil, nil, false
	}
	rec, cur := s.current(key)
	e := Entry{Key: key, Value: value, CreateRevision: s.rev, ModRevision: s.rev, Version: 1, Lease: leaseID, By: s.by}
	var prev *Entry
	if cur != nil {
		p := *cur
		prev = &p
		e.CreateRevision, e.Version = cur.CreateRevision, cur.Version+1
		if cur.Lease != 0 && cur.Lease != leaseID {
			if l := s.leases[cur.Lease]; l != nil {
				delete(l.Keys, key)
			}
		}
	}
	if leaseID != 0 {
		s.leases[leaseID].Keys[key] = struct{}{}
	}
	if rec == nil {
		rec = &record{key: key}
	}
	s.replace(key, s.pruned(rec.withVersion(version{Entry: e})))
	*ev = append(*ev, event("put", e, prev))
	return &e, prev, true
}

// delete removes a live key and returns its last entry.
func (s *Machine) delete(key string, ev *[]qlog.Event) *Entry {
	rec, cur := s.current(key)
	if cur == nil {
		return nil
	}
	prev := *cur
	if cur.Lease != 0 {
		if l := s.leases[cur.Lease]; l != nil {
			delete(l.Keys, key)
		}
	}
	gone := Entry{Key: key, ModRevision: s.rev, By: s.by}
	s.replace(key, s.pruned(rec.withVersion(version{Entry: gone, Deleted: true})))
	s.tombstones = append(s.tombstones, tombstone{Key: key, Rev: s.rev})
	*ev = append(*ev, event("delete", gone, &prev))
	return &prev
}

func (s *Machine) deletePrefix(prefix string, ev *[]qlog.Event) []Entry {
	var keys []string
	s.tree.AscendGreaterOrEqual(&record{key: prefix}, func(r *record) bool {
		if !strings.HasPrefix(r.key, prefix) {
			return false
		}
		if !r.versions[len(r.versions)-1].Deleted {
			keys = append(keys, r.key)
		}
		return true
	})
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		out = append(out, *s.delete(k, ev))
	}
	return out
}

// revoke deletes a lease and its keys, in key order.
func (s *Machine) revoke(l *lease, ev *[]qlog.Event) {
	keys := l.sortedKeys()
	for _, k := range keys {
		s.delete(k, ev)
	}
	delete(s.leases, l.ID)
	s.ttl.Remove(leaseKey(l.ID))
}

func (l *lease) sortedKeys() []string {
	keys := make([]string, 0, len(l.Keys))
	for k := range l.Keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (l *lease) view() *Lease {
	return &Lease{ID: l.ID, TTL: l.TTL, ExpiresAt: l.ExpiresAt, Keys: l.sortedKeys()}
}

func event(typ string, e Entry, prev *Entry) qlog.Event {
	size := 128 + len(e.Key) + len(e.Value) + len(e.By)
	if prev != nil {
		size += 96 + len(prev.Key) + len(prev.Value) + len(prev.By)
	}
	// The bytes json.Marshal(EventData{e, prev}) writes (resultjson.go).
	data, _ := appendEventData(make([]byte, 0, size), &e, prev)
	return qlog.Event{Type: typ, Key: e.Key, Data: data}
}

// compact advances the compact revision to keep retain revisions and drops
// the records of keys deleted before it.
func (s *Machine) compact() {
	s.compactRev = max(s.compactRev, s.rev-s.retain)
	n := 0
	for n < len(s.tombstones) && s.tombstones[n].Rev < s.compactRev {
		if rec, ok := s.tree.Get(&record{key: s.tombstones[n].Key}); ok {
			// Only a record that pruning changed is replaced: an
			// unchanged one costs no copy of shared tree nodes.
			if p := s.pruned(rec); p != rec {
				s.replace(rec.key, p)
			}
		}
		n++
	}
	if n > 0 {
		s.tombstones = s.tombstones[n:]
	}
}

// pruned returns rec without the versions no read can reach: all but the
// newest version at or below the compact revision. It returns rec itself
// if nothing is dropped, and nil if only an old tombstone is left, so the
// key goes entirely.
func (s *Machine) pruned(rec *record) *record {
	i := 0
	for i+1 < len(rec.versions) && rec.versions[i+1].ModRevision <= s.compactRev {
		i++
	}
	if i > 0 {
		// A new record with its own array: rec may be in a snapshot view.
		rec = &record{key: rec.key, versions: slices.Clone(rec.versions[i:])}
	}
	if len(rec.versions) == 1 && rec.versions[0].Deleted && rec.versions[0].ModRevision <= s.compactRev {
		return nil
	}
	return rec
}

// replace makes rec the key's record, or removes the key if rec is nil.
func (s *Machine) replace(key string, rec *record) {
	if rec == nil {
		s.tree.Delete(&record{key: key})
		return
	}
	s.tree.ReplaceOrInsert(rec)
}

// snapshotHeader is the first line of a snapshot; one line per record follows.
type snapshotHeader struct {
	Retain     int64            `json:"retain"`
	CompactRev int64            `json:"compactRev"`
	Records    int              `json:"records"`
	Tombstones []tombstone      `json:"tombstones"`
	Leases     []snapshotLease  `json:"leases"`
	Fences     map[string]int64 `json:"fences"` // encoding/json sorts keys
}

type snapshotLease struct {
	ID        int64         `json:"id"`
	TTL       time.Duration `json:"ttl"`
	ExpiresAt time.Time     `json:"expiresAt"`
	Renewed   int64         `json:"renewed"`
	Keys      []string      `json:"keys"`
}

type snapshotRecord struct {
	Key      string    `json:"k"`
	Versions []version `json:"v"`
}

// Snapshot implements qlog.StateMachine: line-delimited JSON in key order.
func (s *Machine) Snapshot(w io.Writer) error {
	return writeSnapshot(w, s.snapshotHeader(), s.tree)
}

// SnapshotView implements qlog.SnapshotViewer. The log calls it with Apply
// excluded; it costs O(1) for the records (btree's Clone is copy-on-write
// and records are immutable) plus copies of the leases, fences and
// tombstones, which are small. The returned func writes exactly the bytes
// Snapshot would have written at this moment, while Apply goes on.
func (s *Machine) SnapshotView() func(io.Writer) error {
	h, tree := s.snapshotHeader(), s.tree.Clone()
	return func(w io.Writer) error { return writeSnapshot(w, h, tree) }
}

// snapshotHeader captures everything but the records. It copies what Apply
// mutates in place (the tombstones' backing array, the fences map, the
// leases and their key sets), so a view's header cannot change under it.
// The copies keep nil as nil and empty as empty: they encode the same.
func (s *Machine) snapshotHeader() snapshotHeader {
	h := snapshotHeader{Retain: s.retain, CompactRev: s.compactRev, Records: s.tree.Len(),
		Tombstones: slices.Clone(s.tombstones), Fences: maps.Clone(s.fences)}
	ids := make([]int64, 0, len(s.leases))
	for id := range s.leases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		l := s.leases[id]
		h.Leases = append(h.Leases, snapshotLease{ID: l.ID, TTL: l.TTL, ExpiresAt: l.ExpiresAt.UTC(), Renewed: l.Renewed, Keys: l.sortedKeys()})
	}
	return h
}

// writeSnapshot writes a header and then one line per record of tree.
func writeSnapshot(w io.Writer, h snapshotHeader, tree *btree.BTreeG[*record]) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(h); err != nil {
		return err
	}
	var (
		line []byte
		err  error
	)
	tree.Ascend(func(r *record) bool {
		if line, err = appendRecordLine(line[:0], r.key, r.versions); err == nil {
			_, err = w.Write(line)
		}
		return err == nil
	})
	return err
}

// Restore implements qlog.StateMachine.
func (s *Machine) Restore(r io.Reader) error {
	dec := json.NewDecoder(r)
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("kv snapshot header: %w", err)
	}
	n := New(h.Retain)
	n.compactRev, n.tombstones = h.CompactRev, h.Tombstones
	if h.Fences != nil {
		n.fences = h.Fences
	}
	for _, sl := range h.Leases {
		l := &lease{ID: sl.ID, TTL: sl.TTL, ExpiresAt: sl.ExpiresAt, Renewed: sl.Renewed, Keys: map[string]struct{}{}}
		for _, k := range sl.Keys {
			l.Keys[k] = struct{}{}
		}
		n.leases[l.ID] = l
		n.ttl.Set(leaseKey(l.ID), l.ExpiresAt, l.Renewed)
	}
	for range h.Records {
		var sr snapshotRecord
		if err := dec.Decode(&sr); err != nil {
			return fmt.Errorf("kv snapshot record: %w", err)
		}
		if len(sr.Versions) == 0 {
			return fmt.Errorf("kv snapshot record %q has no versions", sr.Key)
		}
		n.tree.ReplaceOrInsert(&record{key: sr.Key, versions: sr.Versions})
	}
	*s = *n
	return nil
}

// equalJSON compares two JSON values semantically enough for txn compares:
// byte-equal after compaction.
func equalJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
