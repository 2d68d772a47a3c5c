package config

import (
	"net/http"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/services/config/kv"
)

// handleWatch streams changes as server-sent events: event is put or
// delete, data is {entry, prevEntry}, and id is the revision, sent with the
// last event of each revision (see sse.WriteRevision). A client resumes
// with Last-Event-ID (or fromRevision); a start older than this replica
// holds answers 410 with compactRevision before the stream begins.
func (s *server) handleWatch() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		key, prefix := q.Get("key"), q.Get("prefix")
		switch {
		case key != "" && prefix != "":
			return fault.New(fault.Invalid, "watch takes key or prefix, not both")
		case key != "":
			if err := kv.ValidateKey(key); err != nil {
				return err
			}
		case prefix != "":
			if err := kv.ValidatePrefix(prefix); err != nil {
				return err
			}
		default:
			return fault.New(fault.Invalid, "watch needs key or prefix")
		}
		from, err := sse.ResumeFrom(r, "fromRevision", 0) // 0: the next revision, as etcd and the document say
		if err != nil {
			return err
		}
		// Keyed watches: an apply wakes only the watchers it concerns.
		var watch *qlog.Watch
		if key != "" {
			watch, err = s.log.WatchKey(from, key)
		} else {
			watch, err = s.log.WatchPrefix(from, prefix)
		}
		if err != nil {
			return err
		}
		qloghttp.SetRevision(w, s.log.Revision())
		return sse.Stream{Watch: watch, Revision: sse.WriteRevision, Hub: s.Watches}.Serve(w, r)
	})
}
