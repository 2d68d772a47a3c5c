// Package fault classifies errors by what went wrong, so that domain packages
// (which import no net/http) can say "not found" or "precondition failed" and
// the web layer can turn that into a status code in exactly one place.
package fault

import (
	"errors"
	"fmt"
)

// Kind is the class of an error as a client sees it.
type Kind int

// The kinds. Internal is the zero value so that an unclassified error is
// never mistaken for a client error.
const (
	Internal           Kind = iota // a bug or an unexpected failure: 500
	Invalid                        // malformed or out-of-range input: 400
	Unauthorized                   // missing or bad credentials: 401
	Forbidden                      // credentials lack a right: 403
	NotFound                       // no such thing: 404
	NotAllowed                     // the method is not allowed on the resource: 405
	Conflict                       // state forbids it, e.g. a stale fencing token: 409
	Gone                           // asked for history that was compacted: 410
	PreconditionFailed             // If-Match / If-None-Match did not hold: 412
	TooLarge                       // body or value over a limit: 413
	UnsupportedMedia               // wrong Content-Type: 415
	Unavailable                    // not ready, e.g. replica catching up or fail-stopped: 503
	Timeout                        // the operation did not finish in time: 504
	TooManyRequests                // a rate limit refused it: 429
	BadGateway                     // an upstream failed or answered nonsense: 502
	LoopDetected                   // a proxy saw its own request come back: 508
	ClientClosed                   // the client went away before the answer: nginx's 499
)

var kindNames = [...]string{
	Internal:           "internal",
	Invalid:            "invalid",
	Unauthorized:       "unauthorized",
	Forbidden:          "forbidden",
	NotFound:           "not-found",
	NotAllowed:         "method-not-allowed",
	Conflict:           "conflict",
	Gone:               "gone",
	PreconditionFailed: "precondition-failed",
	TooLarge:           "too-large",
	UnsupportedMedia:   "unsupported-media-type",
	Unavailable:        "unavailable",
	Timeout:            "timeout",
	TooManyRequests:    "too-many-requests",
	BadGateway:         "bad-gateway",
	LoopDetected:       "loop-detected",
	ClientClosed:       "client-closed",
}

// String returns the kind's slug, used as the last segment of a problem type URI.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Error is a classified error with an optional set of extra fields that the
// web layer adds to the problem document (for example the current
// modRevision of a key after a failed compare-and-set).
type Error struct {
	Kind   Kind
	Detail string
	Fields map[string]any
	Err    error // the cause, if any; not shown to clients
}

// New returns an error of the given kind whose detail is formatted like fmt.Sprintf.
func New(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause; detail is what the client is told.
func Wrap(kind Kind, cause error, detail string) *Error {
	return &Error{Kind: kind, Detail: detail, Err: cause}
}

// With returns a copy of e carrying one more field for the problem document.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Fields = make(map[string]any, len(e.Fields)+1)
	for k, v := range e.Fields {
		c.Fields[k] = v
	}
	c.Fields[key] = value
	return &c
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}
