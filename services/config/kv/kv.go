// Package kv is the configuration store's replicated state machine: an
// MVCC key/value tree with compare-and-set, transactions, leases and
// fencing tokens. It is pure: no I/O, no clock (log time comes in each
// entry), deterministic iteration (a B-tree in key order, sorted maps).
package kv

import (
	"encoding/json"
	"time"

	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// Entry is one version of a key as clients see it.
type Entry struct {
	Key            string          `json:"key"`
	Value          json.RawMessage `json:"value,omitempty"`
	CreateRevision int64           `json:"createRevision"`
	ModRevision    int64           `json:"modRevision"`
	Version        int64           `json:"version"`
	Lease          int64           `json:"lease,omitempty"`
	// By is the id of the token whose write made this version (a
	// deletion's tombstone included); empty with auth off, and for what
	// the store does by itself (a lease's expiry).
	By string `json:"by,omitempty"`
}

// Command is a proposal to the store; Op selects the fields that matter.
type Command struct {
	Op     string          `json:"op"` // put, delete, deletePrefix, txn, grant, keepalive, revoke, expire
	Key    string          `json:"key,omitempty"`
	Prefix string          `json:"prefix,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
	Lease  int64           `json:"lease,omitempty"`
	// IfMatch makes a put or delete conditional on the key's modRevision.
	IfMatch *int64 `json:"ifMatch,omitempty"`
	// IfNoneMatch makes a put create-only.
	IfNoneMatch bool   `json:"ifNoneMatch,omitempty"`
	Fence       *Fence `json:"fence,omitempty"`
	Txn         *Txn   `json:"txn,omitempty"`
	// TTL of a lease grant.
	TTL time.Duration `json:"ttl,omitempty"`
	// ID names a lease (keepalive, revoke, expire).
	ID int64 `json:"id,omitempty"`
	// Since is an expire's precondition: not renewed after this revision.
	Since int64 `json:"since,omitempty"`
	// By is the id of the token that made the write (authhttp.By), empty
	// with auth off. It travels in the command, not the replica's request
	// context, so every replica records the same author.
	By string `json:"by,omitempty"`
}

// Fence is a fencing token presented with a write.
type Fence struct {
	Name  string `json:"name"`
	Token int64  `json:"token"`
}

// Txn is an atomic compare-then-act.
type Txn struct {
	Compare []Compare `json:"compare"`
	Success []Op      `json:"success"`
	Failure []Op      `json:"failure"`
}

// Compare is one condition of a transaction.
type Compare struct {
	Key    string          `json:"key"`
	Target string          `json:"target"` // value, version, createRevision, modRevision, exists
	Op     string          `json:"op"`     // ==, !=, <, >
	Value  json.RawMessage `json:"value"`
}

// Op is one operation of a transaction branch: exactly one field is set.
type Op struct {
	Put    *PutOp    `json:"put,omitempty"`
	Get    *GetOp    `json:"get,omitempty"`
	Delete *DeleteOp `json:"delete,omitempty"`
}

// PutOp writes a key.
type PutOp struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
	Lease int64           `json:"lease,omitempty"`
}

// GetOp reads a key.
type GetOp struct {
	Key string `json:"key"`
}

// DeleteOp deletes a key or every key under a prefix.
type DeleteOp struct {
	Key    string `json:"key,omitempty"`
	Prefix string `json:"prefix,omitempty"`
}

// Status is the outcome class of a command. Failed preconditions are
// applied no-ops whose status says why, and whose fault (envelope.Problem)
// says how a client sees it.
type Status string

// Statuses.
const (
	OK                 Status = "ok"
	NotFound           Status = "notFound"
	PreconditionFailed Status = "preconditionFailed"
	Fenced             Status = "fenced"
	LeaseNotFound      Status = "leaseNotFound"
	Invalid            Status = "invalid"
)

// Result is what Apply returns for a command (JSON-encoded).
type Result struct {
	Status Status `json:"status"`
	Entry  *Entry `json:"entry,omitempty"`
	Prev   *Entry `json:"prev,omitempty"`
	// Deleted counts keys removed by deletePrefix.
	Deleted int64 `json:"deleted,omitempty"`
	// Txn is a transaction's outcome.
	Txn *TxnResult `json:"txn,omitempty"`
	// Lease is a lease after grant or keepalive.
	Lease *Lease `json:"lease,omitempty"`
	// FenceToken is the highest token seen for the fence that refused a write.
	FenceToken int64 `json:"fenceToken,omitempty"`
	envelope.Problem
}

// Err is the fault of a refused command, with what a client needs to try
// again: the modRevision a failed precondition found, the fencing token
// that refused a write.
func (r Result) Err() error {
	fields := map[string]any{"fenceToken": r.FenceToken}
	if r.Entry != nil {
		fields["modRevision"] = r.Entry.ModRevision
	}
	return r.ErrWith(fields)
}

// TxnResult is the outcome of a transaction.
type TxnResult struct {
	Succeeded bool       `json:"succeeded"`
	Results   []OpResult `json:"results"`
}

// OpResult is the outcome of one transaction op.
type OpResult struct {
	Put    *Entry   `json:"put,omitempty"`
	Get    *Entry   `json:"get,omitempty"` // nil: the key does not exist
	Delete *Deleted `json:"delete,omitempty"`
	Found  *bool    `json:"found,omitempty"` // for get: whether the key exists
}

// Deleted is the outcome of a delete op.
type Deleted struct {
	Deleted int64   `json:"deleted"`
	Entries []Entry `json:"entries,omitempty"`
}

// Lease is a lease as clients see it. Its TTL is not in a result's
// encoding, which is hashed into the log's chain: adding it would set
// replicas of two versions apart, so the HTTP handlers fill it in
// (config's leaseOp).
type Lease struct {
	ID        int64         `json:"id"`
	TTL       time.Duration `json:"-"`
	ExpiresAt time.Time     `json:"expiresAt"`
	Keys      []string      `json:"keys,omitempty"`
}

// Event data for watchers: the entry after the change and the one before.
type EventData struct {
	Entry     Entry  `json:"entry"`
	PrevEntry *Entry `json:"prevEntry,omitempty"`
}
