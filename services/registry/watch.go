package registry

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/sse"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// InstanceSet is one event of a service's watch stream.
type InstanceSet = catalog.InstanceSet

// handleWatch streams a service's instance set as server-sent events
// (event: instances, id: revision), once at the start and again after every
// change. Each event is the whole set, so a stream is level-based like a
// Kubernetes informer: a client resuming with Last-Event-ID gets the
// current set if anything changed since that revision and nothing
// otherwise, and a slow client gets the latest set, never a stale one,
// because revisions that arrive together are sent as one event. No
// resume point is ever too old to answer.
func (s *server) handleWatch() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, err := serviceParam(r)
		if err != nil {
			return err
		}
		f, err := filterParams(r)
		if err != nil {
			return err
		}
		seen, err := sse.ResumeFrom(r, "fromRevision", 1)
		if err != nil {
			return err
		}
		seen-- // the last revision the client has
		st := &setStream{service: svc, filter: f, instances: map[string]catalog.Instance{}}
		err = s.log.Read(r.Context(), qlog.Serializable, func(rev int64) error {
			list, modRev := s.store.Instances(svc, catalog.Filter{})
			for _, inst := range list {
				st.instances[inst.ID] = inst
			}
			st.protected = s.store.Protected(svc)
			st.rev = rev
			st.dirty = modRev > seen || seen <= 0
			return nil
		})
		if err != nil {
			return err
		}
		// Outside the read (a Read may not call back into the log): the
		// watch replays whatever was applied after the set was taken.
		watch, err := s.log.WatchKey(st.rev+1, svc)
		if err != nil {
			return err
		}
		return sse.Stream{Watch: watch, Revision: st.apply, Idle: st.flush, Hub: s.Watches}.Serve(w, r)
	})
}

// setStream keeps one stream's copy of a service's instances.
type setStream struct {
	service   string
	filter    catalog.Filter
	instances map[string]catalog.Instance
	protected bool
	rev       int64
	by        string // the token of the latest change folded in
	dirty     bool
	// last is what the previous event said, to skip sending a filtered
	// set that a change to instances outside the filter left as it was.
	last []byte
}

// apply folds one revision's events into the set; flush writes it.
func (st *setStream) apply(_ io.Writer, evs []qlog.Event) error {
	for _, ev := range evs {
		switch ev.Type {
		case catalog.EventInstance, catalog.EventDeregister:
			var inst catalog.Instance
			if err := json.Unmarshal(ev.Data, &inst); err != nil {
				return err
			}
			if ev.Type == catalog.EventInstance {
				st.instances[inst.ID] = inst
			} else {
				delete(st.instances, inst.ID)
			}
			st.by = inst.By
		case catalog.EventService:
			var state catalog.ServiceState
			if err := json.Unmarshal(ev.Data, &state); err != nil {
				return err
			}
			st.protected, st.by = state.Protected, state.By
		}
		st.rev = ev.Revision
	}
	st.dirty = true
	return nil
}

func (st *setStream) flush(w io.Writer) error {
	if !st.dirty {
		return nil
	}
	st.dirty = false
	set := InstanceSet{Service: st.service, Revision: st.rev, Protected: st.protected, By: st.by, Instances: []catalog.Instance{}}
	for _, id := range slices.Sorted(maps.Keys(st.instances)) {
		if inst := st.instances[id]; st.filter.Match(&inst) {
			set.Instances = append(set.Instances, inst)
		}
	}
	content, err := json.Marshal(struct {
		P bool
		I []catalog.Instance
	}{set.Protected, set.Instances})
	if err != nil {
		return err
	}
	if st.last != nil && bytes.Equal(content, st.last) {
		return nil
	}
	st.last = content
	data, err := json.Marshal(set)
	if err != nil {
		return err
	}
	return sse.Event(w, st.rev, "instances", data)
}
