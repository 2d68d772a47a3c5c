package kv

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/jsonscan"
	"github.com/stewardhq/steward/platform/qlog"
)

// Get returns key's entry at revision at (0: the latest). It fails with
// a *qlog.CompactedError when at is older than retained history.
func (s *Machine) Get(key string, at int64) (*Entry, error) {
	rec, cur := s.current(key)
	if at <= 0 {
		return cur, nil
	}
	if at < s.compactRev {
		return nil, &qlog.CompactedError{Requested: at, CompactRevision: s.compactRev}
	}
	if rec == nil {
		return nil, nil
	}
	for i := len(rec.versions) - 1; i >= 0; i-- {
		v := rec.versions[i]
		if v.ModRevision <= at {
			if v.Deleted {
				return nil, nil
			}
			e := v.Entry
			return &e, nil
		}
	}
	return nil, nil
}

// List returns up to limit live entries whose key starts with prefix and
// sorts after after (exclusive), in key order, and the key to continue
// from if there are more.
func (s *Machine) List(prefix, after string, limit int) ([]Entry, string) {
	var out []Entry
	next := ""
	pivot := prefix
	if after >= prefix {
		pivot = after + "\x00"
	}
	s.tree.AscendGreaterOrEqual(&record{key: pivot}, func(r *record) bool {
		if !strings.HasPrefix(r.key, prefix) {
			return false
		}
		v := r.versions[len(r.versions)-1]
		if v.Deleted {
			return true
		}
		if len(out) == limit {
			next = out[len(out)-1].Key
			return false
		}
		out = append(out, v.Entry)
		return true
	})
	return out, next
}

// History returns up to limit versions of key, newest first, with
// tombstones as entries without a value (Deleted true).
func (s *Machine) History(key string, limit int) ([]HistoryItem, int64) {
	rec, ok := s.tree.Get(&record{key: key})
	if !ok {
		return nil, s.compactRev
	}
	var out []HistoryItem
	for i := len(rec.versions) - 1; i >= 0 && len(out) < limit; i-- {
		v := rec.versions[i]
		out = append(out, HistoryItem(v))
	}
	return out, s.compactRev
}

// HistoryItem is one version in a key's history.
type HistoryItem struct {
	Entry
	Deleted bool `json:"deleted,omitempty"`
}

// CompactRevision is the oldest revision reads at a revision may ask for.
func (s *Machine) CompactRevision() int64 { return s.compactRev }

// LeaseInfo returns a lease with its keys, or nil.
func (s *Machine) LeaseInfo(id int64) *Lease {
	if l := s.leases[id]; l != nil {
		return l.view()
	}
	return nil
}

// LeaseTTL returns lease id's TTL, or false when there is no such lease.
func (s *Machine) LeaseTTL(id int64) (time.Duration, bool) {
	if l := s.leases[id]; l != nil {
		return l.TTL, true
	}
	return 0, false
}

// DueExpiries returns expire commands for leases past their deadline at
// now; qlog.Log.RunExpiry proposes them.
func (s *Machine) DueExpiries(now time.Time) [][]byte {
	var cmds [][]byte
	for _, d := range s.ttl.Due(now, 256) {
		id, _ := strconv.ParseInt(d.ID, 10, 64)
		b, _ := json.Marshal(Command{Op: "expire", ID: id, Since: d.NotRenewedSince})
		cmds = append(cmds, b)
	}
	return cmds
}

// txn evaluates a transaction against the current state and applies the
// chosen branch's ops in order, all at one revision.
func (s *Machine) txn(t *Txn, ev *[]qlog.Event) (*TxnResult, Status) {
	ok := true
	for _, c := range t.Compare {
		if !s.holds(c) {
			ok = false
			break
		}
	}
	ops := t.Success
	if !ok {
		ops = t.Failure
	}
	// Leases are checked before anything changes so the txn stays atomic.
	for _, op := range ops {
		if op.Put != nil && op.Put.Lease != 0 && s.leases[op.Put.Lease] == nil {
			return nil, LeaseNotFound
		}
	}
	tr := &TxnResult{Succeeded: ok, Results: make([]OpResult, 0, len(ops))}
	for _, op := range ops {
		switch {
		case op.Put != nil:
			e, _, _ := s.put(op.Put.Key, op.Put.Value, op.Put.Lease, ev)
			tr.Results = append(tr.Results, OpResult{Put: e})
		case op.Get != nil:
			_, cur := s.current(op.Get.Key)
			found := cur != nil
			var e *Entry
			if found {
				c := *cur
				e = &c
			}
			tr.Results = append(tr.Results, OpResult{Get: e, Found: &found})
		case op.Delete != nil && op.Delete.Prefix != "":
			entries := s.deletePrefix(op.Delete.Prefix, ev)
			tr.Results = append(tr.Results, OpResult{Delete: &Deleted{Deleted: int64(len(entries)), Entries: entries}})
		case op.Delete != nil:
			var d Deleted
			if prev := s.delete(op.Delete.Key, ev); prev != nil {
				d = Deleted{Deleted: 1, Entries: []Entry{*prev}}
			}
			tr.Results = append(tr.Results, OpResult{Delete: &d})
		}
	}
	return tr, OK
}

// holds evaluates one compare against the current state. A missing key has
// version, createRevision and modRevision 0 and no value, as in etcd.
func (s *Machine) holds(c Compare) bool {
	_, cur := s.current(c.Key)
	if c.Target == "value" {
		if cur == nil {
			return c.Op == "!="
		}
		eq := equalJSON(cur.Value, c.Value)
		switch c.Op {
		case "==":
			return eq
		case "!=":
			return !eq
		}
		return compareOrdered(cur.Value, c.Value, c.Op)
	}
	var have int64
	switch c.Target {
	case "exists":
		var want bool
		if json.Unmarshal(c.Value, &want) != nil {
			return false
		}
		switch c.Op {
		case "==":
			return (cur != nil) == want
		case "!=":
			return (cur != nil) != want
		}
		return false
	case "version":
		if cur != nil {
			have = cur.Version
		}
	case "createRevision":
		if cur != nil {
			have = cur.CreateRevision
		}
	case "modRevision":
		if cur != nil {
			have = cur.ModRevision
		}
	}
	var want int64
	if json.Unmarshal(c.Value, &want) != nil {
		return false
	}
	switch c.Op {
	case "==":
		return have == want
	case "!=":
		return have != want
	case "<":
		return have < want
	case ">":
		return have > want
	}
	return false
}

// compareOrdered orders two values that are both JSON numbers or both JSON
// strings; anything else compares false.
func compareOrdered(a, b json.RawMessage, op string) bool {
	var fa, fb float64
	if json.Unmarshal(a, &fa) == nil && json.Unmarshal(b, &fb) == nil {
		return (op == "<" && fa < fb) || (op == ">" && fa > fb)
	}
	var sa, sb string
	if json.Unmarshal(a, &sa) == nil && json.Unmarshal(b, &sb) == nil {
		return (op == "<" && sa < sb) || (op == ">" && sa > sb)
	}
	return false
}

// ValidateTxn checks a transaction before it is proposed.
func ValidateTxn(t *Txn) error {
	if n := len(t.Compare) + len(t.Success) + len(t.Failure); n > MaxTxnOps {
		return fault.New(fault.Invalid, "transaction has %d compares and ops, over the limit of %d", n, MaxTxnOps).With("limit", MaxTxnOps)
	}
	for i, c := range t.Compare {
		if err := ValidateKey(c.Key); err != nil {
			return fault.New(fault.Invalid, "compare[%d]: %v", i, err)
		}
		switch c.Target {
		case "value", "version", "createRevision", "modRevision", "exists":
		default:
			return fault.New(fault.Invalid, "compare[%d]: target %q: want value, version, createRevision, modRevision or exists", i, c.Target)
		}
		switch c.Op {
		case "==", "!=":
		case "<", ">":
			if c.Target == "exists" {
				return fault.New(fault.Invalid, "compare[%d]: exists compares only with == or !=", i)
			}
		default:
			return fault.New(fault.Invalid, "compare[%d]: op %q: want ==, !=, < or >", i, c.Op)
		}
		if len(c.Value) == 0 || !jsonscan.Valid(c.Value) {
			return fault.New(fault.Invalid, "compare[%d]: value is required", i)
		}
		if c.Target != "value" {
			var probe any
			_ = json.Unmarshal(c.Value, &probe)
			switch probe.(type) {
			case float64:
				if c.Target == "exists" {
					return fault.New(fault.Invalid, "compare[%d]: exists compares with true or false", i)
				}
			case bool:
				if c.Target != "exists" {
					return fault.New(fault.Invalid, "compare[%d]: %s compares with a number", i, c.Target)
				}
			default:
				return fault.New(fault.Invalid, "compare[%d]: %s compares with a number or boolean", i, c.Target)
			}
		}
	}
	for i, op := range t.Success {
		if err := validateOp(op); err != nil {
			return fault.New(fault.Invalid, "success[%d]: %v", i, err)
		}
	}
	for i, op := range t.Failure {
		if err := validateOp(op); err != nil {
			return fault.New(fault.Invalid, "failure[%d]: %v", i, err)
		}
	}
	return nil
}

func validateOp(op Op) error {
	n := 0
	if op.Put != nil {
		n++
		if err := ValidateKey(op.Put.Key); err != nil {
			return err
		}
		if err := ValidateValue(op.Put.Value); err != nil {
			return err
		}
	}
	if op.Get != nil {
		n++
		if err := ValidateKey(op.Get.Key); err != nil {
			return err
		}
	}
	if op.Delete != nil {
		n++
		switch {
		case op.Delete.Key != "" && op.Delete.Prefix != "":
			return fault.New(fault.Invalid, "delete takes key or prefix, not both")
		case op.Delete.Key != "":
			if err := ValidateKey(op.Delete.Key); err != nil {
				return err
			}
		default:
			if err := ValidatePrefix(op.Delete.Prefix); err != nil {
				return err
			}
		}
	}
	if n != 1 {
		return fault.New(fault.Invalid, "an op has exactly one of put, get, delete")
	}
	return nil
}

// ValidateValue checks a value: present, valid JSON, at most MaxValueBytes.
func ValidateValue(v json.RawMessage) error {
	if err := checkValueSize(v); err != nil {
		return err
	}
	if !jsonscan.Valid(v) {
		return notJSON()
	}
	return nil
}

// CompactValue checks a value as ValidateValue does and returns a copy of
// it without insignificant whitespace. A value sent compact, as a program
// sends one, is checked in one pass and copied; json.Compact makes the
// others compact.
func CompactValue(v []byte) (json.RawMessage, error) {
	if err := checkValueSize(v); err != nil {
		return nil, err
	}
	valid, compact := jsonscan.Check(v)
	switch {
	case !valid:
		return nil, notJSON()
	case compact:
		return append(json.RawMessage(nil), v...), nil
	}
	out := bytes.NewBuffer(make([]byte, 0, len(v)))
	if err := json.Compact(out, v); err != nil {
		return nil, notJSON()
	}
	return out.Bytes(), nil
}

func notJSON() error { return fault.New(fault.Invalid, "value is not valid JSON") }

func checkValueSize(v []byte) error {
	switch {
	case len(v) == 0:
		return fault.New(fault.Invalid, "value is required")
	case len(v) > MaxValueBytes:
		return fault.New(fault.TooLarge, "value is %d bytes, over the limit of %d", len(v), MaxValueBytes).With("limit", MaxValueBytes)
	}
	return nil
}
