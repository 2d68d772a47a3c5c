package config

import (
	"net/http"
	"strings"

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
		from, err := sse.ResumeFrom(r, "fromRevision", 0) // 0: the next revision, as etcd and the document say
		if err != nil {
			return err
		}
		watch, err := s.log.Watch(from, filter)
		if err != nil {
			return err
		}
		qloghttp.SetRevision(w, s.log.Revision())
		return sse.Stream{Watch: watch, Revision: sse.WriteRevision}.Serve(w, r)
	})
}
