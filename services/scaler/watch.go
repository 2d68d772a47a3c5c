package scaler

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// Watch event types beside the log's put, deleted, decision and
// actuation: the state a stream starts from when the client names no
// resume point.
const (
	eventCurrent = "current" // data: the scaler
	eventAbsent  = "absent"  // data: {"name"}
)

// handleWatch streams a scaler's changes as server-sent events, id =
// revision, as `kubectl get hpa -w` follows an HPA: put (data: the
// scaler), deleted ({"name"}), decision (the decision with its inputs)
// and actuation (what the driver did, with decisionRevision). A stream
// without a resume point (Last-Event-ID or fromRevision) begins with the
// scaler as it is, a current or absent event; a resumed one sends only
// what changed after it. A start older than this replica holds answers
// 410 with compactRevision.
func (s *server) handleWatch() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		return s.WatchKey(w, r, name, func(rev int64) qlog.Event { return startEvent(name, s.machine.Get(name), rev) }, writeRevision)
	})
}

// writeRevision writes a revision's events, giving a deletion its name
// as data (the log's deleted event carries none).
// The events are the log's, shared with other watchers: they are copied,
// never changed.
func writeRevision(w io.Writer, evs []qlog.Event) error {
	out := make([]qlog.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev
		if ev.Type == ledger.EventDeleted && len(ev.Data) == 0 {
			out[i].Data, _ = json.Marshal(map[string]string{"name": ev.Key})
		}
	}
	return sse.WriteRevision(w, out)
}

func startEvent(name string, cur *ledger.Scaler, rev int64) qlog.Event {
	if cur == nil {
		data, _ := json.Marshal(map[string]string{"name": name})
		return qlog.Event{Revision: rev, Type: eventAbsent, Key: name, Data: data}
	}
	data, _ := json.Marshal(cur)
	return qlog.Event{Revision: rev, Type: eventCurrent, Key: name, Data: data}
}
