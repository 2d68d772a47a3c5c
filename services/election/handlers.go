package election

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"github.com/stewardhq/steward/services/election/lease"
)

type server struct {
	qloghttp.Handler
	log     *qlog.Log
	machine *lease.Machine
	logger  *slog.Logger
	table   []authhttp.Route // the routes with their Needs
}

// bodyLimit bounds a request body: a value plus its envelope.
const bodyLimit = lease.MaxValueBytes + 4<<10

// maxBatchBytes is the log's group-commit bound; election commands are
// small, so the default batch is plenty.
const maxBatchBytes = 1 << 20

// maxCommandBytes bounds one encoded command plus its idempotency key, so
// that a proposal always fits a batch.
const maxCommandBytes = maxBatchBytes - 1<<10

// maxHold bounds how long a waiting candidate's place in line outlives its
// request's last heartbeat: a request that died (its replica crashed)
// leaves the line within this, so a dead waiter is rarely elected. The
// request renews its place every hold/3.
const maxHold = 5 * time.Second

func holdFor(ttl time.Duration) time.Duration { return min(ttl, maxHold) }

// nameParam reads and checks {name}, percent-decoded once
// (web.PathParam) like every name in a path.
func nameParam(r *http.Request) (string, error) {
	name, err := web.PathParam(r, "name")
	if err != nil {
		return "", err
	}
	return name, lease.ValidateName(name)
}

// campaignRequest is POST /v1/elections/{name}/campaign's body.
type campaignRequest struct {
	Candidate string          `json:"candidate"`
	TTL       string          `json:"ttl"`
	Value     json.RawMessage `json:"value,omitempty"`
}

func (c campaignRequest) Validate() error {
	if err := lease.ValidateCandidate(c.Candidate); err != nil {
		return err
	}
	if _, err := lease.ParseTTL(c.TTL); err != nil {
		return err
	}
	return lease.ValidateValue(c.Value)
}

// tokenRequest is the body of renew and resign.
type tokenRequest struct {
	Candidate string `json:"candidate"`
	Token     int64  `json:"token"`
}

func (t tokenRequest) Validate() error {
	if err := lease.ValidateCandidate(t.Candidate); err != nil {
		return err
	}
	if t.Token < 1 {
		return fault.New(fault.Invalid, "token %d: want the positive token campaign answered", t.Token)
	}
	return nil
}

// resignResponse is POST /v1/elections/{name}/resign's body.
type resignResponse struct {
	Name string `json:"name"`
	// Token is the token of the leadership that ended.
	Token int64 `json:"token"`
	// Next is the leadership that began in the same revision, if a
	// candidate waited.
	Next *lease.Leadership `json:"next"`
}

// listResponse is GET /v1/elections's body.
type listResponse struct {
	Items    []lease.Leadership `json:"items"`
	Revision int64              `json:"revision"`
	Next     *string            `json:"next"`
}

// commit sends a command with the request's Idempotency-Key, sets the
// revision it was applied at and answers a refused command's fault.
func (s *server) commit(w http.ResponseWriter, r *http.Request, c lease.Command) (lease.Result, int64, error) {
	return qloghttp.Commit[lease.Result](w, r, s.log, c, maxCommandBytes)
}

// proposeOwn sends a command the service makes on its own behalf (a
// waiting request's heartbeat and withdrawal, the resignation of a win
// nobody is left to hear of), never under the client's Idempotency-Key.
func (s *server) proposeOwn(ctx context.Context, c lease.Command) (lease.Result, int64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return lease.Result{}, 0, err
	}
	res, err := s.log.Propose(ctx, b, qlog.ProposeOptions{})
	if err != nil {
		return lease.Result{}, 0, err
	}
	var out lease.Result
	if err := json.Unmarshal(res.Value, &out); err != nil {
		return lease.Result{}, 0, fmt.Errorf("decode result: %w", err)
	}
	return out, res.Revision, nil
}

// conflict is a 409 that names the leadership in the way, if any: the
// answer to a wait that ended without a win, which the machine did not
// refuse.
func conflict(l *lease.Leadership, format string, args ...any) error {
	f := fault.New(fault.Conflict, format, args...)
	if l != nil {
		f = f.With("leader", l)
	}
	return f
}

func writeLeadership(w http.ResponseWriter, rev int64, l *lease.Leadership) error {
	qloghttp.SetRevision(w, rev)
	return web.Encode(w, http.StatusOK, l)
}

func (s *server) handleCampaign() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		var wait time.Duration
		if v := r.URL.Query().Get("wait"); v != "" {
			if wait, err = time.ParseDuration(v); err != nil || wait < 0 || wait > qloghttp.MaxWait {
				return fault.New(fault.Invalid, "wait=%q: want a duration up to %s", v, qloghttp.MaxWait)
			}
		}
		if wait > 0 {
			// A candidate that may wait in line holds the request as a
			// watch does; refused before it joins the line.
			release, err := web.Hold(r)
			if err != nil {
				return err
			}
			defer release()
		}
		req, err := web.Decode[campaignRequest](w, r, bodyLimit)
		if err != nil {
			return err
		}
		ttl, _ := lease.ParseTTL(req.TTL)
		c := lease.Command{Op: "campaign", Name: name, Candidate: req.Candidate, TTL: ttl, Value: compactValue(req.Value), By: authhttp.By(r.Context())}
		if wait > 0 {
			c.Hold = holdFor(ttl)
			c.Waiter = waiterName(r)
		}
		res, rev, err := s.commit(w, r, c)
		if err != nil {
			return err
		}
		switch res.Status {
		case lease.Elected:
			return writeLeadership(w, rev, res.Leader)
		case lease.Queued:
			return s.await(w, r, c, rev, wait)
		}
		return qloghttp.ErrIdempotencyReuse(r)
	})
}

// waiterName names a waiting campaign request: by its Idempotency-Key when
// it has one (a retry is the same request, and the log answers it with
// the first one's place), else at random.
func waiterName(r *http.Request) string {
	if k := r.Header.Get("Idempotency-Key"); k != "" {
		return "key:" + k
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func leaderName(l *lease.Leadership) string {
	if l == nil {
		return "nobody"
	}
	return l.Leader
}

// compactValue drops an explicit null (no value) and insignificant space.
func compactValue(v json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil || buf.String() == "null" || buf.Len() == 0 {
		return nil
	}
	return buf.Bytes()
}

// await waits for a queued candidate's turn. The place in line is
// replicated state, so the win itself needs nothing from this request: the
// state machine elects the head of the line in the entry that ends the
// previous leadership, and this request only learns of it from the watch.
// What the request does is keep its place (a keep command every hold/3,
// so that a request that died leaves the line) and leave the line when it
// gives up. If it won meanwhile, giving up finds that out: the client is
// told, or, if it went away, the leadership nobody holds is resigned.
func (s *server) await(w http.ResponseWriter, r *http.Request, c lease.Command, seen int64, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	mine := func(ev qlog.Event) bool { return ev.Key == c.Name && ev.Type == lease.EventElected }
	watch, err := s.log.Watch(seen+1, mine)
	if err != nil {
		return err
	}
	keep := time.NewTicker(c.Hold / 3)
	defer keep.Stop()
	for {
		changed := watch.Changed()
		evs, err := watch.TryNextRevision()
		if err != nil {
			// Cut off (lagged or the replica stopped): a keep says where
			// the candidate stands, and a fresh watch goes on from there.
			res, rev, kerr := s.proposeOwn(r.Context(), lease.Command{Op: "keep", Name: c.Name, Candidate: c.Candidate, Waiter: c.Waiter, By: c.By})
			if kerr != nil {
				return errors.Join(err, kerr)
			}
			if done, err := s.standing(w, c, res, rev); done {
				return err
			}
			if watch, err = s.log.Watch(rev+1, mine); err != nil {
				return err
			}
			continue
		}
		for _, ev := range evs {
			var l lease.Leadership
			if err := json.Unmarshal(ev.Data, &l); err != nil {
				return fmt.Errorf("elected event %d: %w", ev.Revision, err)
			}
			if l.Leader == c.Candidate {
				return writeLeadership(w, ev.Revision, &l)
			}
		}
		if evs != nil {
			continue
		}
		select {
		case <-changed:
		case <-keep.C:
			// A keep that cannot commit within the hold is moot (the place
			// lapses meanwhile); waiting on it longer would only stop this
			// request from seeing the watch and its own deadline.
			kctx, kcancel := context.WithTimeout(r.Context(), c.Hold)
			res, rev, err := s.proposeOwn(kctx, lease.Command{Op: "keep", Name: c.Name, Candidate: c.Candidate, Waiter: c.Waiter, By: c.By})
			kcancel()
			switch {
			case r.Context().Err() != nil:
				return s.giveUp(w, r, c)
			case err != nil && s.log.Ready() != nil:
				return err // this replica stopped serving
			case err != nil:
				s.logger.Debug("a waiting candidate's keep failed; waiting on", "election", c.Name, "candidate", c.Candidate,
					"request_id", web.RequestID(r.Context()), "err", err)
				continue
			}
			if done, err := s.standing(w, c, res, rev); done {
				return err
			}
		case <-ctx.Done():
			return s.giveUp(w, r, c)
		case <-web.Stopping(r.Context()):
			return s.giveUp(w, r, c)
		}
	}
}

// standing answers a waiting request from a keep's result: done when the
// candidate leads (200) or lost its place (409); not done while it waits.
func (s *server) standing(w http.ResponseWriter, c lease.Command, res lease.Result, rev int64) (bool, error) {
	switch res.Status {
	case lease.Queued:
		return false, nil
	case lease.Elected:
		return true, writeLeadership(w, rev, res.Leader)
	}
	qloghttp.SetRevision(w, rev)
	return true, conflict(res.Leader, "candidate %s lost its place in line for %s (its hold of %s lapsed)", c.Candidate, c.Name, c.Hold)
}

// giveUp ends a wait: the candidate leaves the line, unless it won.
func (s *server) giveUp(w http.ResponseWriter, r *http.Request, c lease.Command) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	res, rev, err := s.proposeOwn(ctx, lease.Command{Op: "withdraw", Name: c.Name, Candidate: c.Candidate, Waiter: c.Waiter, By: c.By})
	if err != nil {
		return err
	}
	qloghttp.SetRevision(w, rev)
	if res.Status == lease.Elected {
		if r.Context().Err() == nil {
			return writeLeadership(w, rev, res.Leader)
		}
		// The client went away and will never learn its token: let the
		// next candidate have the election now rather than after a TTL.
		if _, _, err := s.proposeOwn(ctx, lease.Command{Op: "resign", Name: c.Name, Candidate: c.Candidate, Token: res.Leader.Token, Waiter: c.Waiter, By: c.By}); err != nil {
			s.logger.Warn("could not resign a leadership won after its client went away", "election", c.Name, "candidate", c.Candidate,
				"request_id", web.RequestID(r.Context()), "err", err)
		}
		return r.Context().Err()
	}
	if r.Context().Err() != nil {
		return r.Context().Err()
	}
	return conflict(res.Leader, "election %s is still led by %s; the wait ended", c.Name, leaderName(res.Leader))
}

// tokenOp proposes a renew or resign from the request body; the machine
// refuses a token that does not lead. It returns the command it proposed.
func (s *server) tokenOp(w http.ResponseWriter, r *http.Request, op string) (lease.Command, lease.Result, int64, error) {
	name, err := nameParam(r)
	if err != nil {
		return lease.Command{}, lease.Result{}, 0, err
	}
	req, err := web.Decode[tokenRequest](w, r, 4<<10)
	if err != nil {
		return lease.Command{}, lease.Result{}, 0, err
	}
	c := lease.Command{Op: op, Name: name, Candidate: req.Candidate, Token: req.Token, By: authhttp.By(r.Context())}
	res, rev, err := s.commit(w, r, c)
	return c, res, rev, err
}

func (s *server) handleRenew() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		_, res, rev, err := s.tokenOp(w, r, "renew")
		if err != nil {
			return err
		}
		if res.Status != lease.Renewed {
			return qloghttp.ErrIdempotencyReuse(r)
		}
		return writeLeadership(w, rev, res.Leader)
	})
}

func (s *server) handleResign() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		c, res, _, err := s.tokenOp(w, r, "resign")
		if err != nil {
			return err
		}
		if res.Status != lease.Resigned {
			return qloghttp.ErrIdempotencyReuse(r)
		}
		return web.Encode(w, http.StatusOK, resignResponse{Name: c.Name, Token: c.Token, Next: res.Leader})
	})
}

func (s *server) handleGet() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		name, err := nameParam(r)
		if err != nil {
			return err
		}
		c, err := qloghttp.Consistency(r)
		if err != nil {
			return err
		}
		var l *lease.Leadership
		err = s.log.Read(r.Context(), c, func(rev int64) error {
			l = s.machine.Get(name)
			qloghttp.SetRevision(w, rev)
			return nil
		})
		if err != nil {
			return err
		}
		if l == nil {
			return fault.New(fault.NotFound, "nobody leads election %s", name)
		}
		return web.Encode(w, http.StatusOK, l)
	})
}

func (s *server) handleList() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		limit, err := qloghttp.Limit(r, 100)
		if err != nil {
			return err
		}
		after := r.URL.Query().Get("after")
		if after != "" {
			if err := lease.ValidateName(after); err != nil {
				return err
			}
		}
		c, err := qloghttp.Consistency(r)
		if err != nil {
			return err
		}
		var resp listResponse
		readable := authhttp.Filter(r.Context(), auth.Elections, auth.Read)
		err = s.log.Read(r.Context(), c, func(rev int64) error {
			items, more := s.machine.List(after, int(limit))
			if more {
				next := items[len(items)-1].Name
				resp.Next = &next
			}
			// With auth on, a page drops the elections the token may not
			// read; next still pages on from the last one looked at.
			resp.Items = slices.DeleteFunc(items, func(l lease.Leadership) bool { return !readable(l.Name) })
			resp.Revision = rev
			return nil
		})
		if err != nil {
			return err
		}
		if resp.Items == nil {
			resp.Items = []lease.Leadership{}
		}
		qloghttp.SetRevision(w, resp.Revision)
		return web.Encode(w, http.StatusOK, resp)
	})
}
