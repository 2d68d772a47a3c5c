package scaler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/scaler/hpa"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

type server struct {
	qloghttp.Handler
	log     *qlog.Log
	machine *ledger.Machine
	archive DecisionArchive
	// publish hands pushed samples to every replica's store.
	publish func([]metrics.Sample) error
	logger  *slog.Logger
	table   []authhttp.Route // the routes with their Needs
}

// DecisionArchive reads a scaler's events older than the replicas hold
// (pgstore.History).
type DecisionArchive interface {
	KeyEvents(ctx context.Context, key string, before int64, limit int) ([]qlog.Event, error)
}

// Limits of request bodies: a spec, a pushed batch of samples, a
// simulation request with its series.
const (
	specBodyLimit     = 256 << 10
	pushBodyLimit     = 4 << 20
	simulateBodyLimit = 16 << 20
)

// maxBatchBytes is the log's group-commit bound; a decision with its
// inputs is a few KiB.
const maxBatchBytes = 4 << 20

// maxCommandBytes bounds one encoded command so that it fits a batch.
const maxCommandBytes = maxBatchBytes - 1<<10

// nameParam reads and checks {name}, percent-decoded once
// (web.PathParam) like every name in a path.
func nameParam(r *http.Request) (string, error) {
	name, err := web.PathParam(r, "name")
	if err != nil {
		return "", err
	}
	return name, ledger.ValidateName(name)
}

// commit proposes c, sets the revision it was applied at and answers a
// refused command's fault.
func (s *server) commit(w http.ResponseWriter, r *http.Request, c ledger.Command) (ledger.Result, error) {
	res, _, err := qloghttp.Commit[ledger.Result](w, r, s.log, c, maxCommandBytes)
	return res, err
}

func (s *server) handlePut() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		ifMatch, ifNoneMatch, err := qloghttp.Preconditions(r)
		if err != nil {
			return err
		}
		spec, err := web.Decode[ledger.Spec](w, r, specBodyLimit)
		if err != nil {
			return err
		}
		res, err := s.commit(w, r, ledger.Command{Op: ledger.OpPut, Name: name, Spec: &spec, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch, By: authhttp.By(r.Context())})
		if err != nil {
			return err
		}
		switch res.Status {
		case ledger.Created:
			qloghttp.SetETag(w, res.Scaler.ModRevision)
			return web.Encode(w, http.StatusCreated, res.Scaler)
		case ledger.Updated:
			qloghttp.SetETag(w, res.Scaler.ModRevision)
			return web.Encode(w, http.StatusOK, res.Scaler)
		}
		return qloghttp.ErrIdempotencyReuse(r)
	})
}

func (s *server) handleDelete() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		ifMatch, ifNoneMatch, err := qloghttp.Preconditions(r)
		if err != nil {
			return err
		}
		if ifNoneMatch {
			return fault.New(fault.Invalid, "If-None-Match: * means create-only; a delete takes If-Match")
		}
		res, err := s.commit(w, r, ledger.Command{Op: ledger.OpDelete, Name: name, IfMatch: ifMatch, By: authhttp.By(r.Context())})
		if err != nil {
			return err
		}
		if res.Status != ledger.Deleted {
			return qloghttp.ErrIdempotencyReuse(r)
		}
		return web.Encode(w, http.StatusOK, res.Scaler)
	})
}

// read runs fn on the state at the consistency the request asks for
// (linearizable by default) and sets the revision it reflects.
func (s *server) read(w http.ResponseWriter, r *http.Request, fn func()) error {
	c, err := qloghttp.Consistency(r)
	if err != nil {
		return err
	}
	return s.log.Read(r.Context(), c, func(rev int64) error {
		fn()
		qloghttp.SetRevision(w, rev)
		return nil
	})
}

func (s *server) handleGet() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		index, wait, blocking, err := qloghttp.Blocking(r)
		if err != nil {
			return err
		}
		if blocking {
			// Consul's blocking query: answer once anything about the
			// scaler (spec, decision, actuation, deletion) was applied
			// after index, or when the wait ends.
			if err := qloghttp.WaitKey(r, s.log, index+1, wait, name); err != nil {
				return err
			}
			// A wait cut by its token's revocation answers why (401/403).
			if err := authhttp.Cause(r.Context()); err != nil {
				return err
			}
		}
		var sc *ledger.Scaler
		if err := s.read(w, r, func() { sc = s.machine.Get(name) }); err != nil {
			return err
		}
		if sc == nil {
			return fault.New(fault.NotFound, "no scaler %s", name)
		}
		qloghttp.SetETag(w, sc.ModRevision)
		return web.Encode(w, http.StatusOK, sc)
	})
}

// listResponse is GET /v1/scalers's body.
type listResponse struct {
	Items []ledger.Scaler `json:"items"`
	// Next is the name to pass as ?after= for the next page, null on the
	// last page.
	Next *string `json:"next"`
}

func (s *server) handleList() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		limit, err := qloghttp.Limit(r, qloghttp.MaxLimit)
		if err != nil {
			return err
		}
		after := r.URL.Query().Get("after")
		var (
			resp listResponse
			more bool
		)
		if err := s.read(w, r, func() { resp.Items, more = s.machine.List(after, int(limit)) }); err != nil {
			return err
		}
		if more {
			next := resp.Items[len(resp.Items)-1].Name
			resp.Next = &next
		}
		// With auth on, a page drops the scalers the token may not read;
		// next still pages on from the last one looked at.
		readable := authhttp.Filter(r.Context(), auth.Scalers, auth.Read)
		resp.Items = slices.DeleteFunc(resp.Items, func(sc ledger.Scaler) bool { return !readable(sc.Name) })
		return web.Encode(w, http.StatusOK, resp)
	})
}

// decisionsResponse is GET /v1/scalers/{name}/decisions's body.
type decisionsResponse struct {
	Items []ledger.Decision `json:"items"`
	// Complete is false when older decisions exist than the replicas hold
	// and no archive (PostgreSQL) was there to read them from.
	Complete bool `json:"complete"`
}

func (s *server) handleDecisions() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		limit, err := qloghttp.Limit(r, 20)
		if err != nil {
			return err
		}
		ds, complete, err := s.decisions(w, r, name, int(limit))
		if err != nil {
			return err
		}
		return web.Encode(w, http.StatusOK, decisionsResponse{Items: ds, Complete: complete})
	})
}

// decisions returns up to limit of a scaler's newest decisions, newest
// first: those the replicas hold, then older ones from the archive.
func (s *server) decisions(w http.ResponseWriter, r *http.Request, name string, limit int) ([]ledger.Decision, bool, error) {
	var (
		sc       *ledger.Scaler
		ds       []ledger.Decision
		complete bool
	)
	if err := s.read(w, r, func() {
		sc = s.machine.Get(name)
		ds, complete = s.machine.Recent(name, limit)
	}); err != nil {
		return nil, false, err
	}
	if sc == nil {
		return nil, false, fault.New(fault.NotFound, "no scaler %s", name)
	}
	if ds == nil {
		ds = []ledger.Decision{}
	}
	if len(ds) == limit || complete {
		return ds, true, nil
	}
	if s.archive == nil {
		return ds, false, nil
	}
	before := sc.ModRevision + 1
	if len(ds) > 0 {
		before = ds[len(ds)-1].Revision
	}
	older, err := s.archived(r.Context(), name, sc.CreateRevision, before, limit-len(ds))
	if err != nil {
		return nil, false, err
	}
	return append(ds, older...), true, nil
}

// archived reads up to limit decisions of a scaler from the archive,
// newest first, with revision in [from, before), joining each with its
// actuation.
func (s *server) archived(ctx context.Context, name string, from, before int64, limit int) ([]ledger.Decision, error) {
	var out []ledger.Decision
	acts := map[int64]ledger.Actuation{}
	// Actuations follow their decisions, so reading newest first meets an
	// actuation before its decision.
	for len(out) < limit && before > from {
		evs, err := s.archive.KeyEvents(ctx, name, before, 2*(limit-len(out))+2)
		if err != nil {
			return nil, fmt.Errorf("read archived decisions: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			before = ev.Revision
			if ev.Revision < from || len(out) == limit {
				return out, nil
			}
			switch ev.Type {
			case ledger.EventActuation:
				var a ledger.ActuationEvent
				if err := json.Unmarshal(ev.Data, &a); err == nil {
					acts[a.DecisionRevision] = a.Actuation
				}
			case ledger.EventDecision:
				var d ledger.Decision
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					return nil, fmt.Errorf("archived decision %d: %w", ev.Revision, err)
				}
				if a, ok := acts[d.Revision]; ok {
					d.Actuation = &a
				}
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// simulateRequest is POST /v1/scalers/{name}/simulate's body. Both parts
// are optional: the spec defaults to the scaler's, the series to the one
// its recorded decisions saw (their observed values, oldest first).
type simulateRequest struct {
	Spec   *ledger.Spec `json:"spec,omitempty"`
	Series *hpa.Series  `json:"series,omitempty"`
}

// Validate bounds the series; the spec is checked with its defaults.
func (q simulateRequest) Validate() error {
	if q.Series == nil {
		return nil
	}
	if len(q.Series.Points) > hpa.MaxSimulationSteps {
		return fault.New(fault.Invalid, "series.points: at most %d", hpa.MaxSimulationSteps)
	}
	if q.Series.Replicas < 0 || q.Series.Replicas > hpa.MaxReplicas {
		return fault.New(fault.Invalid, "series.replicas: want 0 to %d", hpa.MaxReplicas)
	}
	return nil
}

// simulateResponse is what the simulation decided.
type simulateResponse struct {
	Decisions []hpa.Decision    `json:"decisions"`
	Summary   simulationSummary `json:"summary"`
	// Series is the series replayed (the recorded one, when none was
	// given).
	Series hpa.Series `json:"series"`
}

// simulationSummary sums the decisions up.
type simulationSummary struct {
	Decisions     int `json:"decisions"`
	Changes       int `json:"changes"`
	MinReplicas   int `json:"minReplicas"`
	MaxReplicas   int `json:"maxReplicas"`
	FinalReplicas int `json:"finalReplicas"`
}

func summarize(ds []hpa.Decision) simulationSummary {
	sum := simulationSummary{Decisions: len(ds)}
	for i, d := range ds {
		if d.Scale() {
			sum.Changes++
		}
		if i == 0 || d.DesiredReplicas < sum.MinReplicas {
			sum.MinReplicas = d.DesiredReplicas
		}
		sum.MaxReplicas = max(sum.MaxReplicas, d.DesiredReplicas)
		sum.FinalReplicas = d.DesiredReplicas
	}
	return sum
}

func (s *server) handleSimulate() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		req, err := web.Decode[simulateRequest](w, r, simulateBodyLimit)
		if err != nil {
			return err
		}
		var spec ledger.Spec
		if req.Spec != nil {
			spec = *req.Spec
			if err := spec.Validate(); err != nil {
				return err
			}
		} else {
			var sc *ledger.Scaler
			if err := s.read(w, r, func() { sc = s.machine.Get(name) }); err != nil {
				return err
			}
			if sc == nil {
				return fault.New(fault.NotFound, "no scaler %s: give a spec to simulate", name)
			}
			spec = sc.Spec
		}
		var series hpa.Series
		if req.Series != nil {
			series = *req.Series
		} else {
			ds, _, err := s.decisions(w, r, name, hpa.MaxSimulationSteps)
			if err != nil {
				return err
			}
			series = recordedSeries(ds)
			if len(series.Points) == 0 {
				return fault.New(fault.Invalid, "scaler %s has recorded no metrics yet: give a series", name)
			}
		}
		decisions, err := hpa.Simulate(spec.Spec, series)
		if err != nil {
			return fault.Wrap(fault.Invalid, err, err.Error())
		}
		if decisions == nil {
			decisions = []hpa.Decision{}
		}
		return web.Encode(w, http.StatusOK, simulateResponse{Decisions: decisions, Summary: summarize(decisions), Series: series})
	})
}

// recordedSeries turns decisions (newest first) into the series they saw,
// oldest first, starting from the first one's replica count.
func recordedSeries(ds []ledger.Decision) hpa.Series {
	var series hpa.Series
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if len(d.Observed) == 0 {
			continue
		}
		if len(series.Points) == 0 {
			series.Replicas = d.CurrentReplicas
		}
		series.Points = append(series.Points, hpa.Point{At: d.At, Metrics: d.Observed})
	}
	slices.SortStableFunc(series.Points, func(a, b hpa.Point) int { return a.At.Compare(b.At) })
	return series
}

// pushResponse is POST /v1/metrics's body.
type pushResponse struct {
	Accepted int `json:"accepted"`
}

func (s *server) handlePush() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, pushBodyLimit)
		if err != nil {
			return err
		}
		var p metrics.Push
		if err := web.Unmarshal(body, &p); err != nil {
			return err
		}
		now := time.Now()
		if err := p.Validate(now); err != nil {
			return err
		}
		for i := range p.Samples {
			if p.Samples[i].Timestamp.IsZero() {
				p.Samples[i].Timestamp = now
			}
		}
		if err := s.publish(p.Samples); err != nil {
			return fault.Wrap(fault.Unavailable, err, "cannot hand the samples to the scaler replicas")
		}
		return web.Encode(w, http.StatusAccepted, pushResponse{Accepted: len(p.Samples)})
	})
}

// handleRollout answers the scaler's newest rollout, in progress or
// finished; 404 when the scaler never rolled one out.
func (s *server) handleRollout() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		var (
			ro     *ledger.Rollout
			exists bool
		)
		if err := s.read(w, r, func() { ro, exists = s.machine.CurrentRollout(name) }); err != nil {
			return err
		}
		switch {
		case !exists:
			return fault.New(fault.NotFound, "no scaler %s", name)
		case ro == nil:
			return fault.New(fault.NotFound, "scaler %s has not rolled out a template change yet", name)
		}
		return web.Encode(w, http.StatusOK, ro)
	})
}

// rolloutsResponse is GET /v1/scalers/{name}/rollouts's body.
type rolloutsResponse struct {
	Items []ledger.Rollout `json:"items"`
}

// handleRollouts answers the history: the rollout in progress, then the
// finished ones the replicas hold, newest first.
func (s *server) handleRollouts() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		limit, err := qloghttp.Limit(r, ledger.KeepRollouts+1)
		if err != nil {
			return err
		}
		var (
			items  []ledger.Rollout
			exists bool
		)
		if err := s.read(w, r, func() {
			_, exists = s.machine.CurrentRollout(name)
			items = s.machine.Rollouts(name, int(limit))
		}); err != nil {
			return err
		}
		if !exists {
			return fault.New(fault.NotFound, "no scaler %s", name)
		}
		return web.Encode(w, http.StatusOK, rolloutsResponse{Items: items})
	})
}

// handleRolloutControl makes a pause, resume, abort or promote of the
// rollout in progress (409 when there is none, or it is already so).
func (s *server) handleRolloutControl(op string) http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		if _, err := web.ReadBody(w, r, 1<<10); err != nil { // no body is needed; a form is refused
			return err
		}
		res, err := s.commit(w, r, ledger.Command{Op: op, Name: name, By: authhttp.By(r.Context())})
		if err != nil {
			return err
		}
		if res.Status != ledger.Recorded || res.Rollout == nil {
			return qloghttp.ErrIdempotencyReuse(r)
		}
		return web.Encode(w, http.StatusOK, res.Rollout)
	})
}
