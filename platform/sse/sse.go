// Package sse serves a qlog watch as a text/event-stream: the one loop every
// service's watch endpoint shares (headers, flush batching, heartbeats,
// client departure, server shutdown, resume with Last-Event-ID).
package sse

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/web"
)

// DefaultHeartbeat is how often an idle stream sends a comment, so proxies
// keep it open and clients notice a dead connection.
const DefaultHeartbeat = 15 * time.Second

// DefaultWriteTimeout is how long a client may leave a write to it blocked
// before its stream is cut.
const DefaultWriteTimeout = 10 * time.Second

// Source is what a stream reads: a *qlog.Watch.
type Source interface {
	Changed() <-chan struct{}
	TryNextRevision() ([]qlog.Event, error)
	// Done is closed when the source yields nothing more (its replica
	// closed): the stream ends as if the connection had dropped, and its
	// client goes to another replica.
	Done() <-chan struct{}
	// Close releases the source; Serve calls it once the stream ends
	// (or could not start).
	Close()
}

// Stream describes one event stream.
type Stream struct {
	Watch Source
	// Revision writes (or accumulates) the events of one revision.
	Revision func(w io.Writer, evs []qlog.Event) error
	// Idle, if set, is called whenever the stream has written everything
	// the replica holds, just before it flushes: a stream that coalesces
	// revisions writes its accumulated state here.
	Idle func(w io.Writer) error
	// Heartbeat defaults to DefaultHeartbeat.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to the client: a client that takes
	// nothing for that long (half of it at least, on an HTTP/1
	// connection), its connection's buffers full, is cut off rather than
	// holding a goroutine forever. The others are not slowed
	// meanwhile, since every stream reads the replica's events on its own
	// (a stream that falls further behind than the replica holds is cut
	// with ErrWatchLagged). Defaults to DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Hub, if set, serves the stream with a few goroutines shared with
	// other streams where it can (see Hub); nil gives each stream a
	// goroutine of its own.
	Hub *Hub
}

// Serve writes the stream until the client goes away, the watch fails or
// the server stops. It holds one of the client's slots for long-lived
// requests (web.Hold) while it runs, and returns an error only when it
// could not take one, before anything was written. Errors after the
// stream started are sent as an `error` event, because the status line is
// gone by then.
//
// Over HTTP/1, Serve takes the connection over from net/http and returns
// at once, leaving the stream to a goroutine of its own (see hijack and
// web.Detach): the request log line and metrics are then those of a 200
// answered when the stream began. What wraps the handler may still end
// the stream (with auth on, a revoked token ends its watches), and
// finishes with the request when the stream ends. Over HTTP/2, whose
// connections cannot be taken over, it serves the stream in the handler
// until the stream ends. Either way a stream ended from outside (its
// context cancelled) ends as one whose client left, without an event.
func (s Stream) Serve(w http.ResponseWriter, r *http.Request) error {
	release, err := web.Hold(r)
	if err != nil {
		s.Watch.Close()
		return err
	}
	if s.Heartbeat <= 0 {
		s.Heartbeat = DefaultHeartbeat
	}
	if s.WriteTimeout <= 0 {
		s.WriteTimeout = DefaultWriteTimeout
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	stopping := web.Stopping(r.Context())
	if c := s.hijack(w, r); c != nil {
		// The goroutine keeps nothing of r but what Detach gives it:
		// net/http cancels r's context as the handler returns.
		ctx, end, detached := web.Detach(r.Context())
		c.ended = ctx.Done()
		finish := func() {
			s.Watch.Close()
			c.c.Close()
			end()
			release()
		}
		if detached && s.Hub != nil && s.Hub.serve(ctx, s, c, stopping, finish) {
			return nil
		}
		serve := func() {
			defer finish()
			s.loop(c, stopping)
		}
		if !detached {
			serve()
			return nil
		}
		go serve()
		return nil
	}
	defer release()
	defer s.Watch.Close()
	rw := &responseSink{w: w, rc: http.NewResponseController(w), ctx: r.Context(), timeout: s.WriteTimeout}
	// An HTTP/1 connection keeps its write deadline for the requests
	// after this one.
	defer func() { _ = rw.rc.SetWriteDeadline(time.Time{}) }()
	w.WriteHeader(http.StatusOK)
	s.loop(rw, stopping)
	return nil
}

// sink is where a stream's loop writes: a response of its handler, or a
// connection taken over from net/http.
type sink interface {
	io.Writer
	// flush sends what was written since the last flush.
	flush() error
	// gone is closed when the client is known to have left, if the sink
	// can tell without reading, or when the request was ended from
	// outside the stream (a revoked token).
	gone() <-chan struct{}
	// probe reports an error when the client has left, for a sink that
	// cannot tell otherwise; it is called on heartbeats.
	probe() error
}

// loop writes the stream to out: one loop per watcher, woken by the
// applies its watch may concern (those of its key or prefix for a keyed
// qlog watch, every apply for a watch with a filter). It takes what the
// replica holds, writes it, flushes once (a syscall, made only when
// something was written), then waits for the next apply, a heartbeat, the
// client or shutdown.
func (s Stream) loop(out sink, stopping <-chan struct{}) {
	if _, err := io.WriteString(out, watchingComment); err != nil || out.flush() != nil {
		return
	}
	heartbeat := time.NewTicker(s.Heartbeat)
	defer heartbeat.Stop()
	for {
		changed := s.Watch.Changed()
		evs, err := s.Watch.TryNextRevision()
		if err != nil {
			writeWatchError(out, err)
			_ = out.flush()
			return
		}
		if evs != nil {
			if err := s.Revision(out, evs); err != nil {
				return // the client went away
			}
			continue // more may be held: write them before one flush
		}
		if s.Idle != nil {
			if err := s.Idle(out); err != nil {
				return
			}
		}
		if err := out.flush(); err != nil {
			return
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			if out.probe() != nil {
				return
			}
			_, _ = io.WriteString(out, heartbeatComment)
		case <-out.gone():
			return
		case <-s.Watch.Done():
			return
		case <-stopping:
			_, _ = io.WriteString(out, shutdownEvent)
			_ = out.flush()
			return
		}
	}
}

// What every stream writes besides its events, on either path.
const (
	watchingComment  = ": watching\n\n"
	heartbeatComment = ": heartbeat\n\n"
	shutdownEvent    = "event: shutdown\ndata: {}\n\n"
)

// writeWatchError writes the event that ends a stream whose watch failed.
func writeWatchError(w io.Writer, err error) {
	msg, _ := json.Marshal(map[string]string{"error": err.Error()})
	_ = Event(w, 0, "error", msg)
}

// responseSink writes a stream to its handler's response.
type responseSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	ctx     context.Context // the request's, while its handler runs: nothing outlives it
	timeout time.Duration
	written bool // since the last flush
}

func (s *responseSink) Write(p []byte) (int, error) {
	s.written = true
	return s.w.Write(p)
}

func (s *responseSink) flush() error {
	if !s.written {
		return nil
	}
	s.written = false
	// Best effort: a writer that cannot set deadlines flushes without.
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	return s.rc.Flush()
}

func (s *responseSink) gone() <-chan struct{} { return s.ctx.Done() }

func (s *responseSink) probe() error { return nil }

// Event writes one event; id 0 writes no id line.
func Event(w io.Writer, id int64, typ string, data []byte) error {
	var b [64]byte
	head := b[:0]
	if id > 0 {
		head = append(head, "id: "...)
		head = strconv.AppendInt(head, id, 10)
		head = append(head, '\n')
	}
	head = append(head, "event: "...)
	head = append(head, typ...)
	head = append(head, "\ndata: "...)
	if _, err := w.Write(head); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n\n")
	return err
}

// WriteRevision writes the events of one revision, a Stream's Revision
// for streams that send events as the log has them. Only the last carries
// the id line: a client cut off in the middle resumes (Last-Event-ID) from
// the previous revision and gets this one again whole, rather than
// resuming after it with some of its events never seen.
func WriteRevision(w io.Writer, evs []qlog.Event) error {
	for i, ev := range evs {
		var id int64
		if i == len(evs)-1 {
			id = ev.Revision
		}
		if err := Event(w, id, ev.Type, ev.Data); err != nil {
			return err
		}
	}
	return nil
}

// ResumeFrom returns the first revision a stream should send: the one after
// Last-Event-ID if the client sent it, else the query parameter param, else
// def.
func ResumeFrom(r *http.Request, param string, def int64) (int64, error) {
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		last, err := strconv.ParseInt(v, 10, 64)
		if err != nil || last < 0 {
			return 0, fault.New(fault.Invalid, "Last-Event-ID %q: want a revision", v)
		}
		return last + 1, nil
	}
	if v := r.URL.Query().Get(param); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, fault.New(fault.Invalid, "query parameter %s=%q: want a revision ≥ 1", param, v)
		}
		return n, nil
	}
	return def, nil
}
