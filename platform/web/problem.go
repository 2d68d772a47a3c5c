package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/stewardhq/steward/platform/fault"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details document. Fields holds extension
// members, which are written at the top level beside the standard ones.
type Problem struct {
	Type     string
	Title    string
	Status   int
	Detail   string
	Instance string
	Fields   map[string]any
}

// MarshalJSON flattens the extension members beside the standard members.
// Standard members win over an extension of the same name.
func (p Problem) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Fields)+5)
	for k, v := range p.Fields {
		m[k] = v
	}
	m["type"] = p.Type
	m["title"] = p.Title
	m["status"] = p.Status
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// statusOf is the one mapping from domain error kinds to HTTP status codes.
func statusOf(k fault.Kind) int {
	switch k {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Unauthorized:
		return http.StatusUnauthorized
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.NotAllowed:
		return http.StatusMethodNotAllowed
	case fault.Conflict:
		return http.StatusConflict
	case fault.Gone:
		return http.StatusGone
	case fault.PreconditionFailed:
		return http.StatusPreconditionFailed
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge
	case fault.UnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	case fault.Timeout:
		return http.StatusGatewayTimeout
	case fault.TooManyRequests:
		return http.StatusTooManyRequests
	case fault.BadGateway:
		return http.StatusBadGateway
	case fault.LoopDetected:
		return http.StatusLoopDetected
	case fault.ClientClosed:
		return StatusClientClosed
	default:
		return http.StatusInternalServerError
	}
}

// StatusClientClosed is the status of a request whose client went away
// before it was answered (nginx's 499): nobody reads the answer, but the
// access log and the metrics say what happened rather than 500 or 504.
const StatusClientClosed = 499

// kindOf is err's kind as r's client sees it: fault.KindOf, except that a
// failure that followed from the client going away (the request's
// context canceled, and the error that cancellation or a wait it cut
// short) is ClientClosed.
func kindOf(r *http.Request, err error) fault.Kind {
	kind := fault.KindOf(err)
	if errors.Is(r.Context().Err(), context.Canceled) && (errors.Is(err, context.Canceled) || kind == fault.Timeout) {
		return fault.ClientClosed
	}
	return kind
}

// ProblemFor builds the problem document for err. Internal errors never
// leak their message to the client; they are logged by Error instead.
func ProblemFor(r *http.Request, err error) Problem {
	kind := kindOf(r, err)
	p := Problem{
		Type:     "urn:steward:problem:" + kind.String(),
		Status:   statusOf(kind),
		Instance: r.URL.Path,
	}
	p.Title = http.StatusText(p.Status)
	if kind == fault.ClientClosed {
		p.Title = "Client Closed Request"
	}
	var fe *fault.Error
	if errors.As(err, &fe) && kind != fault.Internal {
		p.Detail = fe.Detail
		p.Fields = fe.Fields
	}
	if kind == fault.Internal {
		p.Detail = "internal error; see the server log for this request id"
	}
	if id := RequestID(r.Context()); id != "" {
		if p.Fields == nil {
			p.Fields = map[string]any{}
		} else {
			fields := make(map[string]any, len(p.Fields)+1)
			for k, v := range p.Fields {
				fields[k] = v
			}
			p.Fields = fields
		}
		p.Fields["requestId"] = id
	}
	return p
}

// Error answers err as problem+json. 5xx answers are logged with the
// cause, at the level LogLevel gives their status. A 503 or 429 tells the
// client when to come back (Retry-After: 1) unless the handler already
// said; a 401 names the Bearer scheme (WWW-Authenticate).
func Error(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	p := ProblemFor(r, err)
	if p.Status >= 500 && logger != nil {
		logger.Log(r.Context(), LogLevel(p.Status), "request failed",
			"method", r.Method, "path", r.URL.Path, "status", p.Status,
			"request_id", RequestID(r.Context()), "err", err)
	}
	if p.Status == http.StatusUnauthorized {
		// RFC 6750: the scheme a client is to authenticate with.
		w.Header().Set("WWW-Authenticate", `Bearer realm="steward"`)
	}
	if p.Status == http.StatusServiceUnavailable || p.Status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	WriteProblem(w, p)
}

// LogLevel is how loudly an answer of this status is logged. ERROR is kept
// for what an operator must act on: a 500 is a bug, a 508 a routing loop.
// 502, 503 and 504 are conditions that pass by themselves and that clients
// retry (a replica starting or catching up, NATS electing a stream leader,
// an upstream down): WARN. Everything else, a client that went away
// included, is INFO.
func LogLevel(status int) slog.Level {
	switch {
	case status == http.StatusBadGateway, status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout:
		return slog.LevelWarn
	case status >= 500:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// WriteProblem writes p with its status and the problem media type.
func WriteProblem(w http.ResponseWriter, p Problem) {
	w.Header().Set("Content-Type", ProblemContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
