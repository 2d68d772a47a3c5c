// Package envelope is what every qlog state machine does around its own
// logic: decode the command, apply it, encode the result, and say in the
// result, as a fault kind, how a client sees a command that was refused.
// The HTTP side then answers a refused command from the result alone
// (Problem.Err), so no service maps its own statuses to faults.
//
// Like the state machines it serves, it is deterministic: the result of a
// command is a function of the command and the state only, so that every
// replica hashes the same bytes into its chain.
package envelope

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/stewardhq/steward/platform/fault"
)

// Problem is embedded in a state machine's result: why a command was
// refused, if it was. A refused command is still an applied entry (a no-op
// whose result says why), so a retry with the same Idempotency-Key gets the
// same refusal.
type Problem struct {
	// Fault is the slug of the fault.Kind a client is answered with
	// ("not-found", "precondition-failed"), empty when the command took
	// effect. The slug, unlike the number, stays put when kinds are added,
	// and results live on in the log's dedupe table and in snapshots.
	Fault string `json:"fault,omitempty"`
	// Detail says what happened in words; a result that took effect may
	// carry one too.
	Detail string `json:"detail,omitempty"`
}

// Refuse is the problem of a command refused as kind; the detail is
// formatted like fmt.Sprintf.
func Refuse(kind fault.Kind, format string, args ...any) Problem {
	return Problem{Fault: kind.String(), Detail: fmt.Sprintf(format, args...)}
}

// Refusal returns the fault the command was refused with, nil when it took
// effect. A slug this binary does not know (written by a newer one) is
// fault.Internal.
func (p Problem) Refusal() *fault.Error {
	if p.Fault == "" {
		return nil
	}
	return &fault.Error{Kind: kinds[p.Fault], Detail: p.Detail}
}

// Err is Refusal as an error: nil when the command took effect.
func (p Problem) Err() error {
	if f := p.Refusal(); f != nil {
		return f
	}
	return nil
}

// ErrWith is Err with fields for the problem document, such as the
// modRevision a failed precondition found. A field whose value is its
// type's zero value (a nil pointer, 0) is left out, so a result names only
// what it holds.
func (p Problem) ErrWith(fields map[string]any) error {
	f := p.Refusal()
	if f == nil {
		return nil
	}
	for k, v := range fields {
		if v != nil && !reflect.ValueOf(v).IsZero() {
			f = f.With(k, v)
		}
	}
	return f
}

// kinds maps each fault.Kind's slug back to the kind; filled once from
// fault.Kind.String and never written again.
var kinds = func() map[string]fault.Kind {
	m := map[string]fault.Kind{}
	for k := fault.Kind(0); ; k++ {
		s := k.String()
		if s == fmt.Sprintf("kind(%d)", int(k)) {
			return m
		}
		m[s] = k
	}
}()

// Apply decodes cmd into a C, applies it and encodes the result, the one
// shape of every state machine's Apply. refused makes the result of a
// command refused around apply: one that does not decode (an invalid
// fault; apply never sees it), or, a bug, one whose result does not encode
// (an internal fault). Results are encoded by encoding/json, whose output
// depends only on the value (struct fields in order, map keys sorted), so
// replicas that computed the same result agree byte for byte. A command
// that is a CommandDecoder decodes itself where it can, and a result that
// is an Appender encodes itself, into those same bytes.
func Apply[C, R any](cmd []byte, apply func(*C) R, refused func(Problem) R) []byte {
	var c C
	var res R
	if d, ok := any(&c).(CommandDecoder); ok && d.DecodeCommand(cmd) {
		res = apply(&c)
	} else if err := json.Unmarshal(cmd, &c); err != nil {
		res = refused(Refuse(fault.Invalid, "undecodable command"))
	} else {
		res = apply(&c)
	}
	out, err := marshal(res)
	if err != nil {
		// A result that does not encode is a bug, and the same on every
		// replica: answer it as one rather than put nothing in the log.
		out, _ = json.Marshal(refused(Refuse(fault.Internal, "the result does not encode: %v", err)))
	}
	return out
}

// A CommandDecoder decodes the commands of the shapes it knows as
// json.Unmarshal decodes them into a zero value, without the reflection,
// and reports whether it did; it leaves any other command as it was, for
// json.Unmarshal: a state machine's hottest commands.
type CommandDecoder interface {
	DecodeCommand(b []byte) bool
}

// An Appender appends itself to b in exactly the bytes json.Marshal writes
// for it, without the reflection: a state machine's hottest results.
type Appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// marshal is json.Marshal, through AppendJSON when v has it.
func marshal(v any) ([]byte, error) {
	if a, ok := v.(Appender); ok {
		return a.AppendJSON(make([]byte, 0, 256))
	}
	return json.Marshal(v)
}
