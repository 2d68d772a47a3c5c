package election

import (
	"encoding/json"
	"net/http"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/election/lease"
)

// Watch event types beside lease's elected, resigned and expired: the
// state a stream starts from when the client names no resume point.
const (
	eventCurrent = "current" // data: the leadership
	eventVacant  = "vacant"  // data: {"name"}
)

// handleWatch streams an election's leadership changes as server-sent
// events, id = revision: elected, resigned and expired, each with the
// leadership as data; a handover is resigned or expired and then elected
// at one revision, the id on the last. A stream without a resume point
// (Last-Event-ID or fromRevision) begins with the election as it is, a
// current or vacant event, so an observer never has to read and watch
// separately; a resumed stream sends only what changed after it. A start
// older than this replica holds answers 410 with compactRevision.
func (s *server) handleWatch() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		return s.WatchKey(w, r, name, func(rev int64) qlog.Event { return startEvent(name, s.machine.Get(name), rev) }, nil)
	})
}

func startEvent(name string, cur *lease.Leadership, rev int64) qlog.Event {
	if cur == nil {
		data, _ := json.Marshal(map[string]string{"name": name})
		return qlog.Event{Revision: rev, Type: eventVacant, Key: name, Data: data}
	}
	data, _ := json.Marshal(cur)
	return qlog.Event{Revision: rev, Type: eventCurrent, Key: name, Data: data}
}
