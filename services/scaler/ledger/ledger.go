// Package ledger is the scaler service's replicated state: every
// scaler's spec, its status, the hpa.State its decisions left, the
// newest decisions, its rollouts (rollout.go), and the fence that keeps a deposed leader's decisions
// and actuations out of the log. It is a qlog state machine: Apply is
// deterministic and does no I/O; the control loop (package control) does
// the measuring and the driver calls and proposes what it decided.
package ledger

import (
	"time"

	"github.com/stewardhq/steward/platform/qlog/envelope"

	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/strategy"
)

// Spec is what PUT /v1/scalers/{name} takes: the service to scale, the
// autoscaler (HPA v2's fields, flat) and the driver that acts.
type Spec struct {
	Service string `json:"service"`
	hpa.Spec
	Driver driver.Spec `json:"driver"`
	// Strategy says how a change of the driver's template is rolled out;
	// a rolling update with Kubernetes' defaults when omitted.
	Strategy *strategy.Spec `json:"strategy,omitempty"`
}

// Scaler is one scaler as clients see it.
type Scaler struct {
	Name string `json:"name"`
	// Spec is the spec with every omitted field filled with its default,
	// as Kubernetes shows an HPA; a webhook secret is never shown.
	Spec Spec `json:"spec"`
	// Generation counts the spec's versions; decisions name the one they
	// were made under.
	Generation     int64  `json:"generation"`
	CreateRevision int64  `json:"createRevision"`
	ModRevision    int64  `json:"modRevision"`
	Status         Status `json:"status"`
}

// Status is what the control loop last saw and did, HPA's status with the
// decision that explains it.
type Status struct {
	// CurrentReplicas is the count the driver reported at the last
	// decision, or after the last actuation.
	CurrentReplicas int `json:"currentReplicas"`
	// DesiredReplicas is the last decision's.
	DesiredReplicas int `json:"desiredReplicas"`
	// LastScaleTime is the log time of the last actuation that changed the
	// count.
	LastScaleTime *time.Time `json:"lastScaleTime,omitempty"`
	// ObservedGeneration is the spec generation of the last decision.
	ObservedGeneration int64           `json:"observedGeneration,omitempty"`
	Conditions         []hpa.Condition `json:"conditions"`
	LastDecision       *Decision       `json:"lastDecision,omitempty"`
	// DriverError is the last actuation's error, cleared by the next
	// actuation that succeeds.
	DriverError string `json:"driverError,omitempty"`
}

// Decision is one decision the control loop made and recorded, with its
// inputs and, once the driver answered, what the driver did.
type Decision struct {
	// Revision is the log revision the decision was recorded at.
	Revision   int64  `json:"revision"`
	Generation int64  `json:"generation"`
	Leader     string `json:"leader"`
	// Token is the leader's fencing token.
	Token int64 `json:"token"`
	// By is the token id the decide command was made with, if any: the
	// scaler process's own token, as the control loop makes decisions.
	By string `json:"by,omitempty"`
	// Observed is, per metric, the service-wide quantity the decision saw
	// (a value, or the total over instances): one point of the series
	// simulate replays when asked to use the recorded one.
	Observed map[string]float64 `json:"observed,omitempty"`
	hpa.Decision
	// Actuation is set once the driver answered a decision that scales.
	Actuation *Actuation `json:"actuation,omitempty"`
}

// Actuation is one driver call and its outcome.
type Actuation struct {
	// Revision is where the outcome was recorded.
	Revision int64     `json:"revision"`
	At       time.Time `json:"at"`
	Replicas int       `json:"replicas"`
	// Result is the driver's answer; Error is set instead when it failed
	// (including a refusal because the caller was fenced).
	Result *driver.Result `json:"result,omitempty"`
	Error  string         `json:"error,omitempty"`
	// By is the token id of the command that recorded it: the actuate
	// command's, or for an actuation abandoned by a new leader, its lead
	// command's.
	By string `json:"by,omitempty"`
}

// Fence is the newest leadership the log has seen: commands carrying an
// older token are refused.
type Fence struct {
	Token   int64  `json:"token"`
	Replica string `json:"replica,omitempty"`
}

// Command is one proposed change.
type Command struct {
	Op   string `json:"op"`
	Name string `json:"name,omitempty"`
	// put
	Spec *Spec `json:"spec,omitempty"`
	// put, delete: If-Match (the scaler's ModRevision) and If-None-Match:
	// * (only if there is none), checked at apply time.
	IfMatch     *int64 `json:"ifMatch,omitempty"`
	IfNoneMatch bool   `json:"ifNoneMatch,omitempty"`
	// lead, decide, actuate: the leader and its token.
	Replica string `json:"replica,omitempty"`
	Token   int64  `json:"token,omitempty"`
	// decide: the spec the leader decided under, as Work gave it. The
	// generation restarts at 1 when a scaler is deleted and put again;
	// SpecRevision (the spec's ModRevision) tells the two apart.
	Generation   int64      `json:"generation,omitempty"`
	SpecRevision int64      `json:"specRevision,omitempty"`
	Decision     *Decision  `json:"decision,omitempty"`
	State        *hpa.State `json:"state,omitempty"`
	// actuate: the decision's revision and what the driver did.
	DecisionRevision int64      `json:"decisionRevision,omitempty"`
	Actuation        *Actuation `json:"actuation,omitempty"`
	// rolloutIntend, rolloutDone, rolloutReport: the leader's step.
	Rollout *RolloutCmd `json:"rollout,omitempty"`
	// By is the id of the token that made the command: the request's
	// for a put or delete, the scaler process's own (STEWARD_AUTH_TOKEN)
	// for the control loop's lead, decide and actuate; empty with auth
	// off. It is the audit of who changed a scaler.
	By string `json:"by,omitempty"`
}

// Ops.
const (
	OpPut     = "put"
	OpDelete  = "delete"
	OpLead    = "lead"
	OpDecide  = "decide"
	OpActuate = "actuate"
)

// Result statuses. A refused command's result also carries the fault a
// client sees (envelope.Problem): notFound, preconditionFailed and invalid
// as they read, fenced and stale as conflicts.
const (
	Created  = "created"
	Updated  = "updated"
	Deleted  = "deleted"
	Led      = "led"
	Recorded = "recorded"
	// Fenced: the command's token is older than the fence.
	Fenced   = "fenced"
	NotFound = "notFound"
	// Stale: the decision was made under a spec that is no longer
	// current, or the actuation names a decision the replicas no longer
	// hold.
	Stale = "stale"
	// PreconditionFailed: IfMatch or IfNoneMatch did not hold; Scaler is
	// the scaler as it is, if any.
	PreconditionFailed = "preconditionFailed"
	Invalid            = "invalid"
)

// Result is what Apply answers a command.
type Result struct {
	Status string  `json:"status"`
	Scaler *Scaler `json:"scaler,omitempty"`
	Fence  *Fence  `json:"fence,omitempty"`
	// Rollout is the scaler's rollout after a rollout command; Action
	// the intent an intend recorded, with its ids.
	Rollout *Rollout `json:"rollout,omitempty"`
	Action  *Action  `json:"action,omitempty"`
	envelope.Problem
}

// Err is the fault of a refused command, with the modRevision of the
// scaler as it is, if it exists, so a client can read again and retry.
func (r Result) Err() error {
	if r.Scaler == nil {
		return r.Problem.Err()
	}
	return r.ErrWith(map[string]any{"modRevision": r.Scaler.ModRevision})
}

// Event types, with the scaler's name as key. Decision and actuation
// events carry the Decision and Actuation as JSON; the history archive
// keeps them in PostgreSQL past what the replicas keep in memory.
const (
	EventPut       = "put"
	EventDeleted   = "deleted"
	EventDecision  = "decision"
	EventActuation = "actuation"
	// EventRollout carries a RolloutEvent: a rollout started, a step,
	// a pause, resume, abort or promote, its end.
	EventRollout = "rollout"
)

// PutEvent is the data of a put event: the scaler, and By, the token id
// of the write (omitted when it has none, as with auth off).
type PutEvent struct {
	*Scaler
	By string `json:"by,omitempty"`
}

// DeletedEvent is the data of a deleted event made with a token; one
// made without carries no data, as before auth.
type DeletedEvent struct {
	Name string `json:"name"`
	By   string `json:"by"`
}

// ActuationEvent is the data of an actuation event.
type ActuationEvent struct {
	DecisionRevision int64 `json:"decisionRevision"`
	Actuation
}
