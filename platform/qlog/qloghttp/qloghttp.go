// Package qloghttp is the HTTP side every service built on qlog shares:
// the revision header, mapping log errors to problems, proposing a command
// from a request (size limit, Idempotency-Key), and blocking reads.
package qloghttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/platform/web"
)

// RevisionHeader carries the revision a response reflects.
const RevisionHeader = "X-Steward-Revision"

// MaxWait bounds a blocking read's wait.
const MaxWait = 5 * time.Minute

// DefaultWait is a blocking read's wait when the client names none.
const DefaultWait = 30 * time.Second

// SetRevision sets the revision header.
func SetRevision(w http.ResponseWriter, rev int64) {
	w.Header().Set(RevisionHeader, strconv.FormatInt(rev, 10))
}

// RevisionMiddleware stamps every answer with the revision the replica is
// at; handlers that know a more precise one overwrite it.
func RevisionMiddleware(l *qlog.Log) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			SetRevision(w, l.Revision())
			next.ServeHTTP(w, r)
		})
	}
}

// Classify maps log errors to fault kinds; everything else passes through.
// The order matters: an unknown outcome stays one (504, retry with the
// same Idempotency-Key) whatever NATS error it carries, since the write
// may have happened; a transient NATS or JetStream condition had no effect
// (503 with Retry-After: the client may simply retry).
func Classify(err error) error { return classify(err, unknownOutcome) }

// classify is Classify with the words for an operation that ran out of
// time: a write's outcome is unknown, a read merely did not complete.
func classify(err error, timedOut string) error {
	var (
		ce *qlog.CompactedError
		fe *qlog.FailedError
	)
	switch {
	case errors.As(err, &ce):
		return fault.Wrap(fault.Gone, err, fmt.Sprintf("revision %d is compacted", ce.Requested)).With("compactRevision", ce.CompactRevision)
	case errors.As(err, &fe), errors.Is(err, qlog.ErrClosed), errors.Is(err, qlog.ErrNotReady):
		return fault.Wrap(fault.Unavailable, err, "this replica is not serving: "+err.Error())
	case errors.Is(err, qlog.ErrUnknownOutcome):
		return fault.Wrap(fault.Timeout, err, timedOut)
	case Transient(err):
		return fault.Wrap(fault.Unavailable, err, "NATS JetStream is unavailable for the moment; nothing was done, retry")
	case errors.Is(err, context.DeadlineExceeded):
		return fault.Wrap(fault.Timeout, err, timedOut)
	}
	return err
}

const (
	unknownOutcome = "the write was not confirmed in time; retry with the same Idempotency-Key"
	readTimedOut   = "the read did not complete in time; nothing was changed, retry"
)

// readOnly reports whether r's method changes nothing.
func readOnly(r *http.Request) bool {
	return r.Method == http.MethodGet || r.Method == http.MethodHead
}

// jsUnavailable is JetStream's API error 10008, "JetStream system
// temporarily unavailable": the meta leader or a stream leader is being
// elected.
const jsUnavailable = 10008

// Transient reports whether err is a NATS or JetStream condition that
// passes by itself and stopped the operation before it took effect:
// qlog.ErrUnavailable, or one of the raw errors the log may still let
// through (a request that timed out or found no responder, a JetStream
// API request without an answer or answered 10008, a connection that is
// reconnecting or closed).
func Transient(err error) bool {
	switch {
	case errors.Is(err, qlog.ErrUnavailable),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrNoServers),
		errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	}
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil && je.APIError().ErrorCode == jsUnavailable {
		return true
	}
	var ne nats.JetStreamError
	return errors.As(err, &ne) && ne.APIError() != nil && ne.APIError().ErrorCode == jsUnavailable
}

// Handler adapts handlers that return their failure, and serves the
// service's watch streams.
type Handler struct {
	Log    *qlog.Log
	Logger *slog.Logger
	// Watches serves the service's watch streams with a few goroutines
	// (sse.Stream.Hub); nil gives each stream a goroutine of its own.
	Watches *sse.Hub
}

// NewHandler is a Handler for a service on l, its streams served by a Hub
// of their own.
func NewHandler(l *qlog.Log, logger *slog.Logger) Handler {
	return Handler{Log: l, Logger: logger, Watches: sse.NewHub()}
}

// Handle answers h's error as problem+json, with the revision the replica
// is at unless h set a more precise one.
func (h Handler) Handle(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		if ww, ok := w.(middleware.WrapResponseWriter); ok && ww.Status() != 0 {
			// The answer was already on its way (the client went away
			// while it was written): there is no one to tell.
			h.Logger.Debug("response failed after it started", "path", r.URL.Path, "request_id", web.RequestID(r.Context()), "err", err)
			return
		}
		h.Fail(w, r, err)
	}
}

// Fail answers err as problem+json.
func (h Handler) Fail(w http.ResponseWriter, r *http.Request, err error) {
	if w.Header().Get(RevisionHeader) == "" {
		SetRevision(w, h.Log.Revision())
	}
	timedOut := unknownOutcome
	if readOnly(r) {
		timedOut = readTimedOut
	}
	web.Error(w, r, h.Logger, classify(err, timedOut))
}

// Propose encodes cmd as the log carries it (JSON without HTML escaping,
// which would make each '<', '>' and '&' six bytes), refuses it with 413
// if it and its Idempotency-Key exceed maxBytes, proposes it with the
// request's Idempotency-Key, and decodes the state machine's result into
// out. A cmd that is a CommandAppender encodes itself, and an out that is
// a ResultDecoder decodes what it can itself.
func Propose(r *http.Request, l *qlog.Log, cmd any, maxBytes int, out any) (qlog.Result, error) {
	b, err := encodeCommand(cmd)
	if err != nil {
		return qlog.Result{}, err
	}
	idem := r.Header.Get("Idempotency-Key")
	quoted, _ := json.Marshal(idem)
	if n := len(b) + len(quoted); n > maxBytes {
		return qlog.Result{}, fault.New(fault.TooLarge, "the command is %d bytes encoded, over the limit of %d", n, maxBytes).With("limit", maxBytes)
	}
	res, err := l.Propose(r.Context(), b, qlog.ProposeOptions{IdempotencyKey: idem})
	if err != nil {
		return res, err
	}
	if d, ok := out.(ResultDecoder); ok && d.DecodeResult(res.Value) {
		return res, nil
	}
	if err := json.Unmarshal(res.Value, out); err != nil {
		return res, fmt.Errorf("decode result: %w", err)
	}
	return res, nil
}

// A ResultDecoder decodes a result its state machine wrote as
// json.Unmarshal decodes it into a zero value, without the reflection,
// when it has a shape the decoder knows; false leaves it to
// json.Unmarshal.
type ResultDecoder interface {
	DecodeResult(b []byte) bool
}

// A CommandAppender appends itself to b in exactly the bytes a
// json.Encoder with SetEscapeHTML(false) writes for it, without the
// newline and the reflection: a service's hottest commands.
type CommandAppender interface {
	AppendCommand(b []byte) ([]byte, error)
}

// encodeCommand encodes cmd as a json.Encoder with SetEscapeHTML(false)
// does, without the newline.
func encodeCommand(cmd any) ([]byte, error) {
	if a, ok := cmd.(CommandAppender); ok {
		return a.AppendCommand(make([]byte, 0, 256))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cmd); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Refusable is a state machine's result that says whether the command was
// refused, as envelope.Problem does.
type Refusable interface {
	Err() error
}

// Commit proposes cmd as Propose does, sets the revision it was applied
// at, and answers the fault a refused command's result carries: the one
// place a state machine's refusal becomes an error, which Handler.Fail
// answers as problem+json. The result is returned refused or not, for a
// caller that tells more about a refusal.
func Commit[R Refusable](w http.ResponseWriter, r *http.Request, l *qlog.Log, cmd any, maxBytes int) (R, int64, error) {
	var out R
	res, err := Propose(r, l, cmd, maxBytes, &out)
	if err != nil {
		return out, res.Revision, err
	}
	SetRevision(w, res.Revision)
	return out, res.Revision, out.Err()
}

// ErrIdempotencyReuse answers a retry whose Idempotency-Key was first used
// for a different kind of request: the log returns the first request's
// result, which lacks what the handler needs.
func ErrIdempotencyReuse(r *http.Request) error {
	return fault.New(fault.Conflict, "Idempotency-Key %q was first used for a different kind of request", r.Header.Get("Idempotency-Key"))
}

// Int64Query reads an optional integer query parameter of at least min.
func Int64Query(r *http.Request, name string, min int64) (int64, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < min {
		return 0, false, fault.New(fault.Invalid, "query parameter %s=%q: want an integer ≥ %d", name, v, min)
	}
	return n, true, nil
}

// MaxLimit caps ?limit= on lists.
const MaxLimit = 1000

// Limit reads a list's ?limit= (at least 1), def when absent, capped at
// MaxLimit.
func Limit(r *http.Request, def int64) (int64, error) {
	limit, ok, err := Int64Query(r, "limit", 1)
	if !ok {
		limit = def
	}
	return min(limit, MaxLimit), err
}

// LeaseID reads the {id} of a /leases/{id} route: a positive integer.
func LeaseID(r *http.Request) (int64, error) {
	v, err := web.PathParam(r, "id")
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.New(fault.Invalid, "lease id %q: want a positive integer", v)
	}
	return id, nil
}

// Consistency reads ?consistency=linearizable|serializable.
func Consistency(r *http.Request) (qlog.Consistency, error) {
	c, err := qlog.ParseConsistency(r.URL.Query().Get("consistency"))
	if err != nil {
		return 0, fault.New(fault.Invalid, "%v", err)
	}
	return c, nil
}

// Blocking reads a blocking read's ?index=N&wait=D. ok is false when the
// request has no index.
func Blocking(r *http.Request) (index int64, wait time.Duration, ok bool, err error) {
	index, ok, err = Int64Query(r, "index", 0)
	if err != nil {
		return 0, 0, false, err
	}
	wait = DefaultWait
	if v := r.URL.Query().Get("wait"); v != "" {
		if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > MaxWait {
			return 0, 0, false, fault.New(fault.Invalid, "wait=%q: want a duration up to %s", v, MaxWait)
		}
	}
	return index, wait, ok, nil
}

// WaitEvent blocks until an event that filter accepts is applied at a
// revision of at least from, the wait ends, the client goes away or the
// server stops. The caller then answers what it reads: a timeout is not an
// error for a blocking read. The wait holds one of the client's slots for
// long-lived requests (web.Hold); the error is the refusal when the
// client holds all of them already.
func WaitEvent(r *http.Request, l *qlog.Log, from int64, wait time.Duration, filter func(qlog.Event) bool) error {
	return waitWatch(r, wait, func() (*qlog.Watch, error) { return l.Watch(from, filter) })
}

// WaitKey is WaitEvent for the events of one key, on a keyed watch: the
// wait is woken only by the writes to that key (qlog.Log.WatchKey), so
// that thousands of blocking queries on different keys do not all wake
// on every write.
func WaitKey(r *http.Request, l *qlog.Log, from int64, wait time.Duration, key string) error {
	return waitWatch(r, wait, func() (*qlog.Watch, error) { return l.WatchKey(from, key) })
}

func waitWatch(r *http.Request, wait time.Duration, open func() (*qlog.Watch, error)) error {
	release, err := web.Hold(r)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	watch, err := open()
	if err != nil {
		return nil
	}
	defer watch.Close()
	go func() {
		select {
		case <-web.Stopping(r.Context()):
			cancel()
		case <-ctx.Done():
		}
	}()
	_, _ = watch.Next(ctx)
	return nil
}

// Preconditions reads a conditional write's If-Match ("<modRevision>",
// quoted or not, also weak) and If-None-Match (only *, create-only): the
// same conventions in every service.
func Preconditions(r *http.Request) (ifMatch *int64, ifNoneMatch bool, err error) {
	if v := r.Header.Get("If-Match"); v != "" {
		t := strings.TrimPrefix(strings.TrimSpace(v), "W/")
		n, err := strconv.ParseInt(strings.Trim(t, `"`), 10, 64)
		if err != nil || n < 0 {
			return nil, false, fault.New(fault.Invalid, "If-Match %q: want a quoted modRevision such as \"42\"", v)
		}
		ifMatch = &n
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if strings.TrimSpace(v) != "*" {
			return nil, false, fault.New(fault.Invalid, "If-None-Match supports only *")
		}
		ifNoneMatch = true
	}
	return ifMatch, ifNoneMatch, nil
}

// SetETag sets the ETag of a resource at modRevision, the value its
// If-Match takes.
func SetETag(w http.ResponseWriter, modRevision int64) {
	w.Header().Set("ETag", `"`+strconv.FormatInt(modRevision, 10)+`"`)
}

// WatchKey serves a stream of one key's events, id = revision. A stream
// with a resume point (Last-Event-ID or ?fromRevision=) sends only what
// came after it; one without begins with start(revision), the key's state
// as it is at a linearizable revision (start runs inside Log.Read), so
// an observer never has to read and watch separately. write writes one
// revision's events (sse.WriteRevision if nil). A start older than the
// replica holds answers 410 with compactRevision.
func (h Handler) WatchKey(w http.ResponseWriter, r *http.Request, key string, start func(revision int64) qlog.Event, write func(io.Writer, []qlog.Event) error) error {
	l := h.Log
	from, err := sse.ResumeFrom(r, "fromRevision", 0)
	if err != nil {
		return err
	}
	var first []qlog.Event
	if from == 0 {
		if err := l.Read(r.Context(), qlog.Linearizable, func(revision int64) error {
			first, from = []qlog.Event{start(revision)}, revision+1
			return nil
		}); err != nil {
			return err
		}
	}
	watch, err := l.WatchKey(from, key)
	if err != nil {
		return err
	}
	if write == nil {
		write = sse.WriteRevision
	}
	SetRevision(w, l.Revision())
	return sse.Stream{Watch: &primed{Source: watch, first: first}, Revision: write, Hub: h.Watches}.Serve(w, r)
}

// primed is a watch that yields some events of its own first.
type primed struct {
	sse.Source
	first []qlog.Event
}

// Notify passes on to the watch: a Hub can serve a primed stream.
func (p *primed) Notify(f func()) bool {
	n, ok := p.Source.(interface{ Notify(func()) bool })
	return ok && n.Notify(f)
}

func (p *primed) TryNextRevision() ([]qlog.Event, error) {
	if first := p.first; first != nil {
		p.first = nil
		return first, nil
	}
	return p.Source.TryNextRevision()
}

// StatusPath is where every service on a log serves the replica's
// status (qlog.Log.Status), unversioned like /readyz: an operator's
// overview, and the gateway's GET /gateway/cluster, read it.
const StatusPath = "/status"

// ServerOptions are the web options every service on a log shares: ready
// when the log is, the revision on every answer, the log's and the watch
// Hub's metrics on /metrics, the replica's status on /status, its OpenAPI
// document on /openapi.json. The service adds its routes and anything of
// its own.
func (h Handler) ServerOptions(service string, openAPI []byte, routes func(chi.Router)) web.Options {
	l, logger := h.Log, h.Logger
	o := web.Options{
		Service: service,
		Logger:  logger,
		Ready:   func(context.Context) error { return l.Ready() },
		// Every answer says which revision it reflects; handlers that know
		// a more precise one overwrite this.
		Middleware: []func(http.Handler) http.Handler{RevisionMiddleware(l)},
		Routes: func(r chi.Router) {
			r.Get(StatusPath, func(w http.ResponseWriter, req *http.Request) {
				_ = web.Encode(w, http.StatusOK, l.Status(req.Context()))
			})
			if routes != nil {
				routes(r)
			}
		},
		OpenAPI: openAPI,
	}
	if l != nil { // nil only to list the routes
		o.Collectors = []prometheus.Collector{l.Collector()}
	}
	if h.Watches != nil {
		o.Collectors = append(o.Collectors, h.Watches)
	}
	return o
}
