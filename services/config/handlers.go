package config

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
)

type server struct {
	qloghttp.Handler
	log     *qlog.Log
	store   *kv.Machine
	archive historyArchive // nil: history only from memory
	logger  *slog.Logger
	table   []authhttp.Route // the routes with their Needs
}

// historyArchive holds events older than the replica keeps (pgstore.History).
type historyArchive interface {
	KeyEvents(ctx context.Context, key string, before int64, limit int) ([]qlog.Event, error)
}

// bodyLimit bounds a request body: a value plus room for a txn envelope.
const bodyLimit = kv.MaxValueBytes + 64<<10

// maxBatchBytes is the log's group-commit bound (qlog.Config.MaxBatchBytes):
// one proposal can never be larger.
const maxBatchBytes = 4 << 20

// maxCommandBytes bounds one encoded command plus its idempotency key, so a
// proposal always fits a batch; a larger one is refused with 413 instead of
// failing inside the log.
const maxCommandBytes = maxBatchBytes - 1<<10

// txnBodyLimit bounds a transaction body. 128 ops of 1 MiB values cannot
// fit one log entry, so the bound is what one command can hold.
const txnBodyLimit = maxCommandBytes

// keyParam is the key of /v1/kv/{key...}: the path after /v1/kv,
// percent-decoded once (web.PathParam), so /v1/kv/app/db/url and
// /v1/kv/app%2Fdb%2Furl name the key /app/db/url and /v1/kv/a%252Fb the
// key /a%2Fb. The decoded key is then checked as any key is: an empty,
// "." or ".." segment, escaped or not, is refused, so no key reaches
// outside the prefix it is written under.
func keyParam(r *http.Request) (string, error) {
	p, err := web.PathParam(r, "*")
	if err != nil {
		return "", err
	}
	key := "/" + p
	return key, kv.ValidateKey(key)
}

// commit proposes c, sets the revision it was applied at and answers a
// refused command's fault; the caller writes the success. Every write
// goes through here, so here it is signed with the request's token id.
func (s *server) commit(w http.ResponseWriter, r *http.Request, c kv.Command) (kv.Result, int64, error) {
	c.By = authhttp.By(r.Context())
	return qloghttp.Commit[kv.Result](w, r, s.log, c, maxCommandBytes)
}

// commitEntry commits a put or delete and answers the entry it returns.
func (s *server) commitEntry(w http.ResponseWriter, r *http.Request, c kv.Command) error {
	res, rev, err := s.commit(w, r, c)
	if err != nil {
		return err
	}
	if res.Entry == nil {
		return qloghttp.ErrIdempotencyReuse(r)
	}
	return writeEntry(w, rev, res.Entry)
}

func parseFence(v string) (*kv.Fence, error) {
	if v == "" {
		return nil, nil
	}
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return nil, fault.New(fault.Invalid, "X-Steward-Fence %q: want <name>:<token>", v)
	}
	tok, err := strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || tok < 0 {
		return nil, fault.New(fault.Invalid, "X-Steward-Fence %q: token must be a non-negative integer", v)
	}
	return &kv.Fence{Name: v[:i], Token: tok}, nil
}

// conditions reads If-Match, If-None-Match and X-Steward-Fence into c.
func conditions(r *http.Request, c *kv.Command) error {
	var err error
	if c.IfMatch, c.IfNoneMatch, err = qloghttp.Preconditions(r); err != nil {
		return err
	}
	f, err := parseFence(r.Header.Get("X-Steward-Fence"))
	c.Fence = f
	return err
}

func writeEntry(w http.ResponseWriter, rev int64, e *kv.Entry) error {
	qloghttp.SetRevision(w, rev)
	qloghttp.SetETag(w, e.ModRevision)
	// The bytes web.Encode wrote, without its reflection and its
	// compaction of the (compact) value.
	b, err := kv.AppendEntryJSON(make([]byte, 0, len(e.Key)+len(e.Value)+128), e)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return web.WriteJSON(w, http.StatusOK, append(b, '\n'))
}

func (s *server) handlePut() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		key, err := keyParam(r)
		if err != nil {
			return err
		}
		body, err := web.ReadBody(w, r, bodyLimit)
		if err != nil {
			return err
		}
		value, err := kv.CompactValue(body)
		if err != nil {
			return err
		}
		c := kv.Command{Op: "put", Key: key, Value: value}
		if err := conditions(r, &c); err != nil {
			return err
		}
		if c.Lease, _, err = qloghttp.Int64Query(r, "lease", 1); err != nil {
			return err
		}
		return s.commitEntry(w, r, c)
	})
}

func (s *server) handleGet() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		key, err := keyParam(r)
		if err != nil {
			return err
		}
		c, err := qloghttp.Consistency(r)
		if err != nil {
			return err
		}
		at, _, err := qloghttp.Int64Query(r, "revision", 1)
		if err != nil {
			return err
		}
		index, wait, blocking, err := qloghttp.Blocking(r)
		if err != nil {
			return err
		}
		if blocking && at != 0 {
			return fault.New(fault.Invalid, "index and revision cannot be combined")
		}

		e, rev, err := s.get(r.Context(), c, key, at)
		if err == nil && blocking && (e == nil || e.ModRevision <= index) {
			e, rev, err = s.waitChange(r, key, index, rev, wait)
		}
		if err != nil {
			return err
		}
		if e == nil {
			qloghttp.SetRevision(w, rev)
			return fault.New(fault.NotFound, "key %s not found", key)
		}
		return writeEntry(w, rev, e)
	})
}

func (s *server) get(ctx context.Context, c qlog.Consistency, key string, at int64) (*kv.Entry, int64, error) {
	var (
		e   *kv.Entry
		rev int64
	)
	err := s.log.Read(ctx, c, func(revision int64) error {
		rev = revision
		if at > revision {
			return fault.New(fault.Invalid, "revision %d is in the future; the store is at %d", at, revision)
		}
		var err error
		e, err = s.store.Get(key, at)
		return err
	})
	return e, rev, err
}

// waitChange blocks until key's modRevision passes index (the key was
// written or deleted after it), the wait ends, or the server stops; then
// it answers the key as it is.
func (s *server) waitChange(r *http.Request, key string, index, seenRev int64, wait time.Duration) (*kv.Entry, int64, error) {
	// Nothing changed the key up to seenRev, so watch from the next one.
	if err := qloghttp.WaitKey(r, s.log, max(index, seenRev)+1, wait, key); err != nil {
		return nil, 0, err
	}
	return s.get(r.Context(), qlog.Serializable, key, 0)
}

func (s *server) handleDelete() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		key, err := keyParam(r)
		if err != nil {
			return err
		}
		c := kv.Command{Op: "delete", Key: key}
		if err := conditions(r, &c); err != nil {
			return err
		}
		if c.IfNoneMatch {
			return fault.New(fault.Invalid, "If-None-Match is not supported on DELETE")
		}
		return s.commitEntry(w, r, c)
	})
}

func (s *server) handleDeletePrefix() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		prefix := r.URL.Query().Get("prefix")
		if prefix == "" {
			return fault.New(fault.Invalid, "prefix is required (use prefix=/ to delete everything)")
		}
		if err := kv.ValidatePrefix(prefix); err != nil {
			return err
		}
		c := kv.Command{Op: "deletePrefix", Prefix: prefix}
		f, err := parseFence(r.Header.Get("X-Steward-Fence"))
		if err != nil {
			return err
		}
		c.Fence = f
		res, rev, err := s.commit(w, r, c)
		if err != nil {
			return err
		}
		return web.Encode(w, http.StatusOK, map[string]int64{"deleted": res.Deleted, "revision": rev})
	})
}

// listResponse is GET /v1/kv's body.
type listResponse struct {
	Items    []kv.Entry `json:"items"`
	Revision int64      `json:"revision"`
	Next     *string    `json:"next"`
}

func (s *server) handleList() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		prefix := q.Get("prefix")
		if prefix == "" {
			prefix = "/"
		}
		if err := kv.ValidatePrefix(prefix); err != nil {
			return err
		}
		limit, err := qloghttp.Limit(r, 100)
		if err != nil {
			return err
		}
		keysOnly := false
		if v := q.Get("keysOnly"); v != "" {
			if keysOnly, err = strconv.ParseBool(v); err != nil {
				return fault.New(fault.Invalid, "keysOnly=%q: want true or false", v)
			}
		}
		c, err := qloghttp.Consistency(r)
		if err != nil {
			return err
		}
		var resp listResponse
		readable := func(key string) bool { return keyAccess(r.Context(), key, auth.Read) == nil }
		err = s.log.Read(r.Context(), c, func(rev int64) error {
			items, next := s.store.List(prefix, q.Get("after"), int(limit))
			resp.Revision = rev
			// With auth on, a page drops the keys the token may not
			// read; next still pages on from the last key looked at.
			resp.Items = slices.DeleteFunc(items, func(e kv.Entry) bool { return !readable(e.Key) })
			if next != "" {
				resp.Next = &next
			}
			return nil
		})
		if err != nil {
			return err
		}
		if resp.Items == nil {
			resp.Items = []kv.Entry{}
		}
		if keysOnly {
			for i := range resp.Items {
				resp.Items[i].Value = nil
			}
		}
		qloghttp.SetRevision(w, resp.Revision)
		return web.Encode(w, http.StatusOK, resp)
	})
}

// txnResponse is POST /v1/txn's body.
type txnResponse struct {
	Succeeded bool          `json:"succeeded"`
	Results   []kv.OpResult `json:"results"`
	Revision  int64         `json:"revision"`
}

func (s *server) handleTxn() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		txn, err := web.Decode[kv.Txn](w, r, txnBodyLimit)
		if err != nil {
			return err
		}
		if err := kv.ValidateTxn(&txn); err != nil {
			return err
		}
		if err := checkTxn(r.Context(), &txn); err != nil {
			return err
		}
		f, err := parseFence(r.Header.Get("X-Steward-Fence"))
		if err != nil {
			return err
		}
		res, rev, err := s.commit(w, r, kv.Command{Op: "txn", Txn: &txn, Fence: f})
		if err != nil {
			return err
		}
		if res.Txn == nil {
			return qloghttp.ErrIdempotencyReuse(r)
		}
		return web.Encode(w, http.StatusOK, txnResponse{Succeeded: res.Txn.Succeeded, Results: res.Txn.Results, Revision: rev})
	})
}

// checkTxn requires, with auth on, read access to every key a
// transaction compares or gets and write access to every key it puts or
// deletes (every key under a prefix it deletes), in either branch.
func checkTxn(ctx context.Context, txn *kv.Txn) error {
	for _, c := range txn.Compare {
		if err := keyAccess(ctx, c.Key, auth.Read); err != nil {
			return err
		}
	}
	for _, op := range slices.Concat(txn.Success, txn.Failure) {
		var err error
		switch {
		case op.Put != nil:
			err = keyAccess(ctx, op.Put.Key, auth.Write)
		case op.Get != nil:
			err = keyAccess(ctx, op.Get.Key, auth.Read)
		case op.Delete != nil && op.Delete.Prefix != "":
			err = authhttp.CheckPrefix(ctx, auth.KV, op.Delete.Prefix, auth.Write)
		case op.Delete != nil:
			err = keyAccess(ctx, op.Delete.Key, auth.Write)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// historyResponse is GET /v1/history's body.
type historyResponse struct {
	Key             string           `json:"key"`
	Items           []kv.HistoryItem `json:"items"`
	Revision        int64            `json:"revision"`
	CompactRevision int64            `json:"compactRevision"`
}

func (s *server) handleHistory() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		key := r.URL.Query().Get("key")
		if err := kv.ValidateKey(key); err != nil {
			return err
		}
		limit, err := qloghttp.Limit(r, 50)
		if err != nil {
			return err
		}
		resp := historyResponse{Key: key}
		oldest := int64(0) // oldest revision answered from memory
		err = s.log.Read(r.Context(), qlog.Linearizable, func(rev int64) error {
			resp.Items, resp.CompactRevision = s.store.History(key, int(limit))
			resp.Revision = rev
			oldest = rev + 1
			if n := len(resp.Items); n > 0 {
				oldest = resp.Items[n-1].ModRevision
			}
			return nil
		})
		if err != nil {
			return err
		}
		if s.archive != nil && int64(len(resp.Items)) < limit {
			events, err := s.archive.KeyEvents(r.Context(), key, oldest, int(limit)-len(resp.Items))
			if err != nil {
				return err
			}
			for _, ev := range events {
				var d kv.EventData
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					return fmt.Errorf("archived event %d of %s: %w", ev.Revision, key, err)
				}
				resp.Items = append(resp.Items, kv.HistoryItem{Entry: d.Entry, Deleted: ev.Type == "delete"})
			}
		}
		if resp.Items == nil {
			resp.Items = []kv.HistoryItem{}
		}
		qloghttp.SetRevision(w, resp.Revision)
		return web.Encode(w, http.StatusOK, resp)
	})
}

// leaseView is a lease on the wire.
type leaseView struct {
	ID        int64     `json:"id"`
	TTL       string    `json:"ttl"`
	ExpiresAt time.Time `json:"expiresAt"`
	Keys      []string  `json:"keys,omitempty"`
}

// viewLease is l on the wire with its TTL: l.TTL when l was read from
// the store, ttl when it came back from a commit (leaseOp).
func viewLease(l *kv.Lease, ttl time.Duration) leaseView {
	if l.TTL != 0 {
		ttl = l.TTL
	}
	return leaseView{ID: l.ID, TTL: ttl.String(), ExpiresAt: l.ExpiresAt.UTC(), Keys: l.Keys}
}

// Lease TTL bounds.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = 24 * time.Hour
)

type grantRequest struct {
	TTL string `json:"ttl"`
}

func (g grantRequest) Validate() error {
	d, err := time.ParseDuration(g.TTL)
	if err != nil || d < MinLeaseTTL || d > MaxLeaseTTL {
		return fault.New(fault.Invalid, "ttl %q: want a duration from %s to %s, such as \"10s\"", g.TTL, MinLeaseTTL, MaxLeaseTTL)
	}
	return nil
}

func (s *server) handleGrant() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		req, err := web.Decode[grantRequest](w, r, 4<<10)
		if err != nil {
			return err
		}
		ttl, _ := time.ParseDuration(req.TTL)
		return s.leaseOp(w, r, kv.Command{Op: "grant", TTL: ttl}, http.StatusCreated, ttl)
	})
}

func (s *server) handleKeepalive() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		// The store holds the lease before the keepalive if this replica
		// applied its grant already, and after it (a commit is applied
		// here before it returns) unless it was revoked in between.
		ttl, ok := s.leaseTTL(r.Context(), id, qlog.Serializable)
		res, err := s.leaseCommit(w, r, kv.Command{Op: "keepalive", ID: id})
		if err != nil {
			return err
		}
		if !ok {
			ttl, _ = s.leaseTTL(r.Context(), id, qlog.Serializable)
		}
		return web.Encode(w, http.StatusOK, viewLease(res.Lease, ttl))
	})
}

func (s *server) handleRevoke() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		// After the revoke no replica holds the lease: its TTL is read
		// first, linearizably, so that a lease granted through another
		// replica a moment ago is seen.
		ttl, _ := s.leaseTTL(r.Context(), id, qlog.Linearizable)
		return s.leaseOp(w, r, kv.Command{Op: "revoke", ID: id}, http.StatusOK, ttl)
	})
}

// leaseOp commits a lease command and answers the lease with ttl.
//
// The replicated result carries no TTL (kv.Lease.TTL is not encoded):
// results are hashed into the log's chain, so encoding it would make
// replicas of two versions disagree during a rolling upgrade. A lease's
// TTL is fixed at its grant and its id is never reused, so the handler
// knows it from the grant request or from the store.
func (s *server) leaseOp(w http.ResponseWriter, r *http.Request, c kv.Command, status int, ttl time.Duration) error {
	res, err := s.leaseCommit(w, r, c)
	if err != nil {
		return err
	}
	return web.Encode(w, status, viewLease(res.Lease, ttl))
}

// leaseCommit commits a lease command whose result names a lease.
func (s *server) leaseCommit(w http.ResponseWriter, r *http.Request, c kv.Command) (kv.Result, error) {
	res, _, err := s.commit(w, r, c)
	if err != nil {
		return res, err
	}
	if res.Lease == nil {
		return res, qloghttp.ErrIdempotencyReuse(r)
	}
	return res, nil
}

// leaseTTL reads lease id's TTL from the store at consistency c; false
// when the store holds no such lease or cannot be read.
func (s *server) leaseTTL(ctx context.Context, id int64, c qlog.Consistency) (ttl time.Duration, ok bool) {
	_ = s.log.Read(ctx, c, func(int64) error {
		ttl, ok = s.store.LeaseTTL(id)
		return nil
	})
	return ttl, ok
}

func (s *server) handleLeaseGet() http.HandlerFunc {
	return s.Handle(func(w http.ResponseWriter, r *http.Request) error {
		id, err := qloghttp.LeaseID(r)
		if err != nil {
			return err
		}
		var l *kv.Lease
		var rev int64
		err = s.log.Read(r.Context(), qlog.Linearizable, func(revision int64) error {
			l, rev = s.store.LeaseInfo(id), revision
			return nil
		})
		if err != nil {
			return err
		}
		qloghttp.SetRevision(w, rev)
		if l == nil {
			return fault.New(fault.NotFound, "lease %d does not exist", id)
		}
		return web.Encode(w, http.StatusOK, viewLease(l, 0))
	})
}
