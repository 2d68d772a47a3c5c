package config

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
)

// heartbeatEvery is how often an idle watch stream sends a comment, so
// proxies keep it open and clients notice a dead connection.
const heartbeatEvery = 15 * time.Second

// handleWatch streams changes as server-sent events: event is put or
// delete, data is {entry, prevEntry}, and id is the revision, sent with the
// last event of each revision (see writeRevision). A client resumes
// with Last-Event-ID (or fromRevision); a start older than this replica
// holds answers 410 with compactRevision before the stream begins.
func (s *server) handleWatch() http.HandlerFunc {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		key, prefix := q.Get("key"), q.Get("prefix")
		var filter func(qlog.Event) bool
		switch {
		case key != "" && prefix != "":
			return fault.New(fault.Invalid, "watch takes key or prefix, not both")
		case key != "":
			if err := kv.ValidateKey(key); err != nil {
				return err
			}
			filter = func(ev qlog.Event) bool { return ev.Key == key }
		case prefix != "":
			if err := kv.ValidatePrefix(prefix); err != nil {
				return err
			}
			filter = func(ev qlog.Event) bool { return strings.HasPrefix(ev.Key, prefix) }
		default:
			return fault.New(fault.Invalid, "watch needs key or prefix")
		}
		from, _, err := int64Query(r, "fromRevision", 1)
		if err != nil {
			return err
		}
		if v := r.Header.Get("Last-Event-ID"); v != "" {
			last, err := strconv.ParseInt(v, 10, 64)
			if err != nil || last < 0 {
				return fault.New(fault.Invalid, "Last-Event-ID %q: want a revision", v)
			}
			from = last + 1
		}
		watch, err := s.log.Watch(from, filter)
		if err != nil {
			return err
		}

		rc := http.NewResponseController(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		setRevision(w, s.log.Revision())
		w.WriteHeader(http.StatusOK)
		_, _ = fmt.Fprint(w, ": watching\n\n")
		if err := rc.Flush(); err != nil {
			return nil
		}

		// One loop per watcher, no goroutine of its own: take what the
		// replica holds, write it, flush once, then wait for the next
		// apply, a heartbeat, the client or shutdown.
		ctx := r.Context()
		heartbeat := time.NewTicker(heartbeatEvery)
		defer heartbeat.Stop()
		for {
			changed := watch.Changed()
			evs, err := watch.TryNextRevision()
			if err != nil {
				msg, _ := json.Marshal(map[string]string{"error": err.Error()})
				_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", msg)
				_ = rc.Flush()
				return nil
			}
			if evs != nil {
				if err := writeRevision(w, evs); err != nil {
					return nil // the client went away
				}
				continue // more may be held: write them before one flush
			}
			if err := rc.Flush(); err != nil {
				return nil
			}
			select {
			case <-changed:
			case <-heartbeat.C:
				_, _ = fmt.Fprint(w, ": heartbeat\n\n")
			case <-ctx.Done():
				return nil
			case <-web.Stopping(ctx):
				_, _ = fmt.Fprint(w, "event: shutdown\ndata: {}\n\n")
				_ = rc.Flush()
				return nil
			}
		}
	})
}

// writeRevision writes the events of one revision. Only the last carries
// the id line: a client cut off in the middle resumes (Last-Event-ID) from
// the previous revision and gets this one again whole, rather than
// resuming after it with some of its events never seen.
func writeRevision(w io.Writer, evs []qlog.Event) error {
	for i, ev := range evs {
		if i == len(evs)-1 {
			if _, err := fmt.Fprintf(w, "id: %d\n", ev.Revision); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, ev.Data); err != nil {
			return err
		}
	}
	return nil
}
