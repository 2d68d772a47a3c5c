// Package sse serves a qlog watch as a text/event-stream: the one loop every
// service's watch endpoint shares (headers, flush batching, heartbeats,
// client departure, server shutdown, resume with Last-Event-ID).
package sse

import (
	"encoding/json"
	"fmt"
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

// Source is what a stream reads: a *qlog.Watch.
type Source interface {
	Changed() <-chan struct{}
	TryNextRevision() ([]qlog.Event, error)
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
}

// Serve writes the stream until the client goes away, the watch fails or
// the server stops. It holds one of the client's slots for long-lived
// requests (web.Hold) while it runs, and returns an error only when it
// could not take one, before anything was written. Errors after the
// stream started are sent as an `error` event, because the status line is
// gone by then.
func (s Stream) Serve(w http.ResponseWriter, r *http.Request) error {
	release, err := web.Hold(r)
	if err != nil {
		return err
	}
	defer release()
	s.stream(w, r)
	return nil
}

func (s Stream) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": watching\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	every := s.Heartbeat
	if every <= 0 {
		every = DefaultHeartbeat
	}
	// One loop per watcher, no goroutine of its own: take what the replica
	// holds, write it, flush once, then wait for the next apply, a
	// heartbeat, the client or shutdown.
	ctx := r.Context()
	heartbeat := time.NewTicker(every)
	defer heartbeat.Stop()
	// A watcher is woken by every entry the replica applies, whatever
	// its filter; the flush (a syscall) is only made when something was
	// written.
	cw := &countingWriter{w: w}
	w2 := io.Writer(cw)
	flushed := int64(0)
	for {
		changed := s.Watch.Changed()
		evs, err := s.Watch.TryNextRevision()
		if err != nil {
			msg, _ := json.Marshal(map[string]string{"error": err.Error()})
			_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", msg)
			_ = rc.Flush()
			return
		}
		if evs != nil {
			if err := s.Revision(w2, evs); err != nil {
				return // the client went away
			}
			continue // more may be held: write them before one flush
		}
		if s.Idle != nil {
			if err := s.Idle(w2); err != nil {
				return
			}
		}
		if cw.n != flushed {
			if err := rc.Flush(); err != nil {
				return
			}
			flushed = cw.n
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			_, _ = fmt.Fprint(w2, ": heartbeat\n\n")
		case <-ctx.Done():
			return
		case <-web.Stopping(ctx):
			_, _ = fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
			_ = rc.Flush()
			return
		}
	}
}

// Event writes one event; id 0 writes no id line.
func Event(w io.Writer, id int64, typ string, data []byte) error {
	if id > 0 {
		if _, err := fmt.Fprintf(w, "id: %d\n", id); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
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

// countingWriter counts what a stream wrote, to know whether to flush.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
