// Package qlog is Steward's replicated quorum log: a replicated state
// machine whose order comes from a NATS JetStream stream.
//
// Every replica of a service consumes the service's stream in order and
// applies each entry to a deterministic StateMachine. Any replica may
// propose; concurrent proposals on one replica are group-committed into one
// stream message. Preconditions (CAS, leases, fencing) are evaluated by the
// state machine at apply time, so no leader is needed. A proposal is
// acknowledged once a majority of the voting replicas applied it, and each
// replica publishes a running hash of what it applied so that a replica
// that diverged stops serving instead of answering wrongly.
//
// # Revisions
//
// The revision is the one total order of a service, like etcd's. The rule:
// revision n is the n-th entry in stream order. A stream message carries a
// batch of entries, and the entries of the message with stream sequence s
// get the revisions that follow the last revision of message s-1, in batch
// order. Revisions are therefore dense (1, 2, 3, ...) and consecutive within
// a batch; every replica derives them identically because each applies the
// same messages in the same order. A snapshot records both its revision and
// the stream sequence it reflects, so replay after restore continues the
// count. A message that does not decode is skipped by every replica alike
// and takes no revision.
package qlog

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// StateMachine is a service's replicated state. Apply must be
// deterministic: no I/O, no clock (use Entry.Time), no randomness, no
// dependence on map iteration order. Every replica applies the same entries
// in the same order and must reach byte-identical snapshots.
//
// The log serialises calls: Apply, Snapshot and Restore never run
// concurrently with Apply. Reads through Log.Read run concurrently with each
// other but never with Apply. A state machine that also implements
// SnapshotViewer is written out concurrently with Apply, by its view.
type StateMachine interface {
	// Apply applies one entry and returns its result (given to the
	// proposer, remembered for idempotent retries and hashed into the
	// replica's running hash) and the events that watchers see.
	Apply(e Entry) (result []byte, events []Event)
	// Snapshot writes the whole state.
	Snapshot(w io.Writer) error
	// Restore replaces the whole state with a snapshot's.
	Restore(r io.Reader) error
}

// SnapshotViewer is optional for a state machine that can take a
// point-in-time view of its state cheaply, as hashicorp/raft's FSM.Snapshot
// captures a pointer and does the I/O later in Persist. Without it the log
// calls Snapshot with Apply held off for as long as encoding the whole
// state takes (0.8 s for 27 MiB of registers, measured); with it Apply is
// held off only while the view is taken.
//
// SnapshotView is called where Snapshot would be: with Apply excluded,
// possibly alongside reads (Log.Read), never alongside another
// SnapshotView. It must return quickly, and what it returns must not
// depend on anything a later Apply or Restore changes. The log then calls
// the returned func once, without any lock and concurrently with Apply,
// reads and Restore. It must write exactly the bytes Snapshot would have
// written at the moment of the view, so that Restore reads either, and
// replicas that took views and replicas that called Snapshot agree byte for
// byte.
type SnapshotViewer interface {
	SnapshotView() (write func(w io.Writer) error)
}

// Entry is one log entry as the state machine sees it.
type Entry struct {
	Revision int64
	// Time is the log's clock: the proposer's timestamp, raised to the
	// largest timestamp applied before it so that it never goes backwards.
	// State machines use it for TTLs and expiry instead of reading a clock.
	Time     time.Time
	Proposer string // replica ID that proposed the entry
	Cmd      []byte // the service's command, opaque to the log
}

// Event is a change a watcher can see. The state machine fills Type, Key and
// Data; the log stamps Revision.
type Event struct {
	Revision int64  `json:"revision"`
	Type     string `json:"type"`
	Key      string `json:"key"`
	Data     []byte `json:"data,omitempty"`
}

// Result is the outcome of a proposal.
type Result struct {
	// Revision is the entry's revision. For a duplicate it is the revision
	// of the first, effective proposal with the same idempotency key.
	Revision int64
	// Value is what the state machine's Apply returned.
	Value []byte
	// Duplicate reports that an earlier entry with the same idempotency key
	// took effect and this one was an applied no-op.
	Duplicate bool
}

// ProposeOptions qualify a proposal.
type ProposeOptions struct {
	// IdempotencyKey makes retries safe: within the dedupe window, a second
	// entry with the same key is a no-op that returns the first result.
	IdempotencyKey string
}

// Consistency selects how fresh a read must be.
type Consistency int

const (
	// Linearizable reads reflect every write acknowledged before the read
	// began: the replica learns the stream's last sequence and waits until
	// it applied it.
	Linearizable Consistency = iota
	// Serializable reads use the replica's local state at once; they may
	// be stale but never show a state that did not exist.
	Serializable
)

// ParseConsistency parses "linearizable" (or "") and "serializable".
func ParseConsistency(s string) (Consistency, error) {
	switch s {
	case "", "linearizable":
		return Linearizable, nil
	case "serializable":
		return Serializable, nil
	default:
		return 0, fmt.Errorf("consistency %q: want linearizable or serializable", s)
	}
}

// Errors. Services map them to HTTP statuses (see platform/fault).
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("qlog: log is closed")
	// ErrNotReady wraps Ready's answer while the replica is still
	// replaying the log.
	ErrNotReady = errors.New("qlog: not ready")
	// ErrWatchLagged ends a watch whose reader fell so far behind that the
	// events it had not read were dropped from the buffer. The watcher can
	// resume from its last revision + 1 if that is still held.
	ErrWatchLagged = errors.New("qlog: watcher fell behind and was cut off")
	// ErrUnavailable wraps a transient condition of NATS or JetStream (no
	// stream leader, a timed-out API request, JetStream temporarily
	// unavailable) that stopped an operation before it took effect. The
	// operation had no effect and can be retried at once.
	ErrUnavailable = errors.New("qlog: NATS JetStream is unavailable")
)

// CompactedError is returned when a watch or history read asks for a
// revision older than the replica still holds.
type CompactedError struct {
	Requested int64
	// CompactRevision is the oldest revision that can still be asked for.
	CompactRevision int64
}

func (e *CompactedError) Error() string {
	return fmt.Sprintf("qlog: revision %d is compacted; the oldest held is %d", e.Requested, e.CompactRevision)
}

// FailedError reports that the replica fail-stopped: it saw something that
// would make it diverge (a gap, a sequence going backwards, a hash that
// disagrees with the voters) and stopped serving rather than answer wrongly.
type FailedError struct{ Reason string }

func (e *FailedError) Error() string { return "qlog: replica stopped: " + e.Reason }
