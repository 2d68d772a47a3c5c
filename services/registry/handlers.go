package registry

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// IndexHeader carries a list's index for blocking queries: the revision
// of the last change to what was listed (Consul's X-Consul-Index).
const IndexHeader = "X-Steward-Index"

type server struct {
	qloghttp.Handler
	log        *qlog.Log
	store      *catalog.Machine
	allowLocal bool
	table      []authhttp.Route // the routes with their Needs
}

// Body limits: a registration is at most 64 tags, 64 metadata entries and
// a check, well under 64 KiB.
const (
	bodyLimit       = 64 << 10
	maxCommandBytes = 128 << 10
)

// commit proposes c and answers a refused command's fault. Every write
// goes through here, so here it is signed with the request's token id.
func (s *server) commit(w http.ResponseWriter, r *http.Request, c catalog.Command) (catalog.Result, error) {
	c.By = authhttp.By(r.Context())
	res, _, err := qloghttp.Commit[catalog.Result](w, r, s.log, c, maxCommandBytes)
	return res, err
}

// instanceParams reads and checks {service} and {id}.
func instanceParams(r *http.Request) (string, string, error) {
	svc, err := serviceParam(r)
	if err != nil {
		return "", "", err
	}
	id, err := web.PathParam(r, "id")
	if err != nil {
		return "", "", err
	}
	return svc, id, catalog.ValidateID(id)
}

// serviceParam reads and checks {service}, percent-decoded once
// (web.PathParam) like every name in a path.
func serviceParam(r *http.Request) (string, error) {
	svc, err := web.PathParam(r, "service")
	if err != nil {
		return "", err
	}
	return svc, catalog.ValidateService(svc)
}

// writeInstance answers the instance a command returned.
func writeInstance(w http.ResponseWriter, r *http.Request, res catalog.Result) error {
	if res.Instance == nil {
		return qloghttp.ErrIdempotencyReuse(r)
	}
	return web.Encode(w, http.StatusOK, res.Instance)
}

func (s *server) handleRegister() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, id, err := instanceParams(r)
		if err != nil {
			return err
		}
		lease, _, err := qloghttp.Int64Query(r, "lease", 1)
		if err != nil {
			return err
		}
		reg, err := web.Decode[catalog.Registration](w, r, bodyLimit)
		if err != nil {
			return err
		}
		if err := reg.Normalize(s.allowLocal); err != nil {
			return err
		}
		res, err := s.commit(w, r, catalog.Command{Op: "register", Service: svc, ID: id, Register: &reg, Lease: lease})
		if err != nil {
			return err
		}
		return writeInstance(w, r, res)
	})
}

func (s *server) handleHeartbeat() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, id, err := instanceParams(r)
		if err != nil {
			return err
		}
		rep := catalog.Report{Status: catalog.Passing}
		if r.ContentLength != 0 {
			// A heartbeat may say how the instance is, or say nothing.
			body, err := web.ReadBody(w, r, bodyLimit)
			if err != nil {
				return err
			}
			if len(body) > 0 {
				if err := web.Unmarshal(body, &rep); err != nil {
					return err
				}
			}
		}
		if err := catalog.ValidateReport(&rep); err != nil {
			return err
		}
		res, err := s.commit(w, r, catalog.Command{Op: "heartbeat", Service: svc, ID: id, Report: &rep})
		if err != nil {
			return err
		}
		return writeInstance(w, r, res)
	})
}

func (s *server) handleDeregister() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, id, err := instanceParams(r)
		if err != nil {
			return err
		}
		res, err := s.commit(w, r, catalog.Command{Op: "deregister", Service: svc, ID: id})
		if err != nil {
			return err
		}
		return writeInstance(w, r, res)
	})
}

func (s *server) handleClearProtection() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, err := serviceParam(r)
		if err != nil {
			return err
		}
		if _, err := s.commit(w, r, catalog.Command{Op: "clear", Service: svc}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
}

func (s *server) handleInstance() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, id, err := instanceParams(r)
		if err != nil {
			return err
		}
		c, err := qloghttp.Consistency(r)
		if err != nil {
			return err
		}
		var inst *catalog.Instance
		if err := s.read(w, r, c, func() { inst = s.store.Instance(svc, id) }); err != nil {
			return err
		}
		if inst == nil {
			return fault.New(fault.NotFound, "instance %s/%s is not registered", svc, id)
		}
		return web.Encode(w, http.StatusOK, inst)
	})
}

// read runs fn inside a read of consistency c and sets the revision it
// reflects.
func (s *server) read(w http.ResponseWriter, r *http.Request, c qlog.Consistency, fn func()) error {
	return s.log.Read(r.Context(), c, func(rev int64) error {
		qloghttp.SetRevision(w, rev)
		fn()
		return nil
	})
}

// blockingRead answers a list: at once, or, with ?index=N, once the list's
// index passes N (an event that filter accepts is applied) or the wait
// ends. list runs inside a read and returns the list's index.
func (s *server) blockingRead(w http.ResponseWriter, r *http.Request, filter func(qlog.Event) bool, list func() int64) error {
	c, err := qloghttp.Consistency(r)
	if err != nil {
		return err
	}
	index, wait, blocking, err := qloghttp.Blocking(r)
	if err != nil {
		return err
	}
	var idx, rev int64
	run := func(c qlog.Consistency) error {
		return s.log.Read(r.Context(), c, func(at int64) error {
			rev, idx = at, list()
			return nil
		})
	}
	if err := run(c); err != nil {
		return err
	}
	if blocking && idx <= index {
		// Nothing the filter cares about changed up to rev.
		if err := qloghttp.WaitEvent(r, s.log, max(index, rev)+1, wait, filter); err != nil {
			return err
		}
		if r.Context().Err() != nil {
			// Cut short: the client left, or its token was revoked
			// or lost the access (answered 401 or 403).
			return authhttp.Cause(r.Context())
		}
		if err := run(qlog.Serializable); err != nil {
			return err
		}
	}
	if idx == 0 {
		// Nothing has ever changed here: the revision read at is the
		// index to wait beyond.
		idx = rev
	}
	qloghttp.SetRevision(w, rev)
	w.Header().Set(IndexHeader, strconv.FormatInt(idx, 10))
	return nil
}

func (s *server) handleInstances() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		svc, err := serviceParam(r)
		if err != nil {
			return err
		}
		f, err := filterParams(r)
		if err != nil {
			return err
		}
		var out []catalog.Instance
		err = s.blockingRead(w, r, func(ev qlog.Event) bool { return ev.Key == svc }, func() int64 {
			var idx int64
			out, idx = s.store.Instances(svc, f)
			return idx
		})
		if err != nil {
			return err
		}
		return web.Encode(w, http.StatusOK, out)
	})
}

// filterParams reads ?status=&tag=&zone=.
func filterParams(r *http.Request) (catalog.Filter, error) {
	q := r.URL.Query()
	f := catalog.Filter{Status: catalog.Status(q.Get("status")), Tag: q.Get("tag"), Zone: q.Get("zone")}
	if f.Status != "" && !f.Status.Valid() {
		return f, fault.New(fault.Invalid, "status=%q: want passing, warning or critical", f.Status)
	}
	return f, nil
}

func (s *server) handleServices() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		// With auth on, the list and what wakes a blocking query are
		// the services the token may read.
		readable := authhttp.Filter(r.Context(), auth.Services, auth.Read)
		var out []catalog.Service
		err := s.blockingRead(w, r, func(ev qlog.Event) bool { return readable(ev.Key) }, func() int64 {
			out = slices.DeleteFunc(s.store.Services(), func(svc catalog.Service) bool { return !readable(svc.Name) })
			return s.store.LastChange()
		})
		if err != nil {
			return err
		}
		return web.Encode(w, http.StatusOK, out)
	})
}

// grantRequest is POST /v1/registry/leases.
type grantRequest struct {
	TTL catalog.Duration `json:"ttl"`
}

func (g grantRequest) Validate() error { return catalog.ValidateLeaseTTL(g.TTL) }

func (s *server) handleGrant() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		req, err := web.Decode[grantRequest](w, r, 4<<10)
		if err != nil {
			return err
		}
		return s.leaseOp(w, r, catalog.Command{Op: "grant", TTL: req.TTL}, http.StatusCreated)
	})
}

func (s *server) handleKeepalive() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		return s.leaseOp(w, r, catalog.Command{Op: "keepalive", Lease: id}, http.StatusOK)
	})
}

func (s *server) handleRevoke() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		return s.leaseOp(w, r, catalog.Command{Op: "revoke", Lease: id}, http.StatusOK)
	})
}

func (s *server) leaseOp(w http.ResponseWriter, r *http.Request, c catalog.Command, status int) error {
	res, err := s.commit(w, r, c)
	if err != nil {
		return err
	}
	if res.Lease == nil {
		return qloghttp.ErrIdempotencyReuse(r)
	}
	return web.Encode(w, status, res.Lease)
}

func (s *server) handleLease() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		var l *catalog.Lease
		if err := s.read(w, r, qlog.Linearizable, func() { l = s.store.Lease(id) }); err != nil {
			return err
		}
		if l == nil {
			return fault.New(fault.NotFound, "lease %d does not exist", id)
		}
		return web.Encode(w, http.StatusOK, l)
	})
}
