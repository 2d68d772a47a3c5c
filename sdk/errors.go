package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Error is a problem Steward answered (RFC 9457 application/problem+json).
// errors.Is matches it against ErrNotFound, ErrPreconditionFailed and the
// other sentinels by status.
type Error struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Field names the request field at fault in a 400, if one is.
	Field string `json:"field,omitempty"`
	// Revision is the current revision a 412 or a 410 names, when it does.
	Revision int64 `json:"revision,omitempty"`
	// RequestID is the X-Request-Id of the call, for the server's log.
	RequestID string `json:"-"`
}

func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("steward: %d: %s", e.Status, msg)
}

// Is reports whether target is the sentinel of e's status.
func (e *Error) Is(target error) bool {
	s, ok := target.(sentinel)
	return ok && int(s) == e.Status
}

// sentinel is an error that stands for every Error of one status.
type sentinel int

func (s sentinel) Error() string { return "steward: " + strings.ToLower(http.StatusText(int(s))) }

// Sentinels for errors.Is.
var (
	ErrBadRequest         error = sentinel(http.StatusBadRequest)
	ErrUnauthorized       error = sentinel(http.StatusUnauthorized)
	ErrForbidden          error = sentinel(http.StatusForbidden)
	ErrNotFound           error = sentinel(http.StatusNotFound)
	ErrConflict           error = sentinel(http.StatusConflict)
	ErrGone               error = sentinel(http.StatusGone)
	ErrPreconditionFailed error = sentinel(http.StatusPreconditionFailed)
	ErrTooManyRequests    error = sentinel(http.StatusTooManyRequests)
	ErrUnavailable        error = sentinel(http.StatusServiceUnavailable)
)

// IsNotFound reports whether err says what was asked for does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// problem reads the problem in res, an answer that is not 2xx, and closes
// its body.
func problem(res *http.Response) error {
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return problemOf(res.StatusCode, res.Header, body)
}

// problemOf is the Error of an answer's status, headers and body.
func problemOf(status int, h http.Header, body []byte) error {
	e := &Error{}
	if err := json.Unmarshal(body, e); err != nil || e.Status == 0 {
		e = &Error{Detail: strings.TrimSpace(string(body))}
	}
	e.Status = status
	e.RequestID = h.Get("X-Request-Id")
	return e
}
