// Package lease is the election service's replicated state machine:
// named elections, each with at most one leader holding a lease with a
// TTL and a line of queued candidates. It is pure (no I/O, no clock: log
// time comes in each entry) and deterministic, so every replica of the
// service applies the same entries to the same state.
//
// # Tokens
//
// A leader's fencing token is the revision of the log entry that made it
// leader. Revisions are the log's one total order, so tokens strictly
// increase across every election of the service, and no two leaderships
// ever share one, whatever crashes and restarts happen around them.
//
// # Expiry and handover
//
// A lease is over once log time passes its deadline: any command on the
// election applied after that time finds it lapsed (settle), and an expire
// command, proposed by whichever replica notices the deadline first (see
// Due), ends it when no other command comes. Queued candidates are part of
// the state, so when a leader resigns or its lease lapses the head of the
// line becomes leader in that same entry: no polling, no herd.
package lease

import (
	"encoding/json"
	"time"

	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// Limits on what a command may carry, checked by the service before it
// proposes (Validate*) and relied on here.
const (
	MinTTL        = time.Second
	MaxTTL        = time.Hour
	MaxNameBytes  = 128
	MaxCandidate  = 256
	MaxValueBytes = 64 << 10
	// MaxQueue bounds the line of one election, so a misbehaving client
	// cannot grow the replicated state without bound.
	MaxQueue = 1024
)

// Command is a proposal to the state machine; Op selects the fields that
// matter.
type Command struct {
	// Op is campaign, renew, resign, keep, withdraw or expire.
	Op        string `json:"op"`
	Name      string `json:"name"`
	Candidate string `json:"candidate,omitempty"`
	// TTL is the lease a campaign asks for, kept for its renewals.
	TTL   time.Duration   `json:"ttl,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// Token names the leadership a renew or resign is about.
	Token int64 `json:"token,omitempty"`
	// Hold, on a campaign, asks to wait in line when someone else leads.
	// The place is held for Hold of log time and kept by keep commands
	// (the waiting request's heartbeat), so a waiter whose request died
	// leaves the line on its own.
	Hold time.Duration `json:"hold,omitempty"`
	// Waiter names the waiting request a campaign with Hold, a keep, a
	// withdraw and a resign by a request that gave up are about. A leadership won from the line remembers it, so
	// that a keep or withdraw of one request never takes a leadership the
	// same candidate won through another request for its own (a request
	// that gave up would resign it). Empty matches empty: entries written
	// before waiters were named behave as they did.
	Waiter string `json:"waiter,omitempty"`
	// Since is an expire's precondition: the deadline of Candidate's place
	// (or of the leader's lease, when Candidate is empty) was not renewed
	// after this revision.
	Since int64 `json:"since,omitempty"`
	// By is the id of the token the request that made the command was
	// authenticated with (empty with auth off, and on the expiries the
	// replicas propose): the audit of who changed an election.
	By string `json:"by,omitempty"`
}

// Status is the outcome class of a command. A command whose precondition
// fails is an applied no-op whose status says why, and whose fault
// (envelope.Problem) says how a client sees it: taken, queueFull,
// notLeader and absent are conflicts, noop a failed precondition.
type Status string

// Statuses.
const (
	// Elected: the candidate leads (just won, or already led).
	Elected Status = "elected"
	// Taken: someone else leads and the campaign did not ask to wait.
	Taken Status = "taken"
	// QueueFull: someone else leads and the line is at MaxQueue.
	QueueFull Status = "queueFull"
	// Queued: the candidate waits in line; Position says where.
	Queued Status = "queued"
	// Renewed: the lease was extended.
	Renewed Status = "renewed"
	// Resigned: the leadership ended; Leader is the next one, if any.
	Resigned Status = "resigned"
	// NotLeader: the candidate and token given do not lead.
	NotLeader Status = "notLeader"
	// Withdrawn: the candidate left the line.
	Withdrawn Status = "withdrawn"
	// Absent: the candidate neither leads nor waits.
	Absent Status = "absent"
	// Expired: an expire command ended a lease or a place in line.
	Expired Status = "expired"
	// Noop: an expire command found nothing due (a duplicate, or raced by
	// a renewal).
	Noop Status = "noop"
	// Invalid: the command does not decode or names an unknown op.
	Invalid Status = "invalid"
)

// Result is what Apply returns for a command (JSON-encoded).
type Result struct {
	Status Status `json:"status"`
	// Leader is the election's leadership after the command, if anyone
	// leads: the caller's own for elected and renewed, the one in the way
	// for taken, queued and notLeader, the next one for resigned.
	Leader *Leadership `json:"leader,omitempty"`
	// Position is a queued candidate's place in line, 1 first.
	Position int `json:"position,omitempty"`
	envelope.Problem
}

// Err is the fault of a refused command, naming the leadership in the way,
// if anyone leads.
func (r Result) Err() error { return r.ErrWith(map[string]any{"leader": r.Leader}) }

// Leadership is one leader's term as clients see it.
type Leadership struct {
	Name   string `json:"name"`
	Leader string `json:"leader"`
	// Term counts the leaderships of this election, 1 first.
	Term int64 `json:"term"`
	// Token is the fencing token: the revision at which this leadership
	// began.
	Token     int64           `json:"token"`
	Value     json.RawMessage `json:"value,omitempty"`
	TTL       string          `json:"ttl"`
	ExpiresAt time.Time       `json:"expiresAt"`
	// Queue is how many candidates wait in line.
	Queue int `json:"queue"`
}

// EventData is the data of an elected, resigned or expired event: the
// leadership, and By, the token id of the command whose entry the event
// is in (omitted when it has none, as with auth off).
type EventData struct {
	*Leadership
	By string `json:"by,omitempty"`
}

// Event types, as watchers see them. A handover is two events at one
// revision: resigned or expired for the old leadership, then elected.
const (
	EventElected  = "elected"
	EventResigned = "resigned"
	EventExpired  = "expired"
)
