package config

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler without auth; history is
// read from the replica's memory only.
func NewServer(l *qlog.Log, store *kv.Machine, logger *slog.Logger) http.Handler {
	return newServer(l, store, nil, logger, nil)
}

// newServer returns the service's handler; secure (the replica's
// Secure, nil without auth) puts the auth Guard in front of it.
func newServer(l *qlog.Log, store *kv.Machine, archive historyArchive, logger *slog.Logger, secure func(web.Options) web.Options) http.Handler {
	s := &server{Handler: qloghttp.NewHandler(l, logger), log: l, store: store, archive: archive, logger: logger}
	o := s.ServerOptions(ServiceName, openAPIDocument, s.routes)
	if secure == nil {
		secure = authhttp.Disabled // /v1/auth answers that auth is off
	}
	o = secure(o)
	return web.NewHandler(o)
}

// routes is the whole API, each route with the access it needs. The
// gateway's route documents (keys under RoutesPrefix) are granted by a
// kv rule or by a routes rule on the route's name.
func (s *server) routes(r chi.Router) {
	rt := authhttp.NewRouter(r, &s.table)
	keys := func(access auth.Access, name func(*http.Request) (string, error)) authhttp.Need {
		return authhttp.Need{Resource: auth.KV, Access: access, Name: name, Also: routeDocument}
	}
	list := keys(auth.Read, listPrefix)
	list.InHandler = true
	deletePrefix, watch := keys(auth.Write, queryParam("prefix")), keys(auth.Read, watchedKeys)
	deletePrefix.Prefix, watch.Prefix = true, true
	rt.Get("/v1/kv", list, s.handleList())
	rt.Delete("/v1/kv", deletePrefix, s.handleDeletePrefix())
	rt.Put("/v1/kv/*", keys(auth.Write, keyParam), s.handlePut())
	rt.Get("/v1/kv/*", keys(auth.Read, keyParam), s.handleGet())
	rt.Delete("/v1/kv/*", keys(auth.Write, keyParam), s.handleDelete())
	rt.Post("/v1/txn", authhttp.Handler(auth.KV, auth.Read), s.handleTxn())
	rt.Get("/v1/watch", watch, s.handleWatch())
	rt.Get("/v1/history", keys(auth.Read, queryParam("key")), s.handleHistory())
	rt.Post("/v1/leases", authhttp.Write(auth.Leases, nil), s.handleGrant())
	rt.Get("/v1/leases/{id}", authhttp.Read(auth.Leases, nil), s.handleLeaseGet())
	rt.Post("/v1/leases/{id}/keepalive", authhttp.Write(auth.Leases, nil), s.handleKeepalive())
	rt.Delete("/v1/leases/{id}", authhttp.Write(auth.Leases, nil), s.handleRevoke())
}

// RoutesPrefix is where the gateway's route documents live
// (gateway/routesource.Prefix).
const RoutesPrefix = "/steward/gateway/routes/"

// routeDocument names a key under RoutesPrefix as a route for the
// routes resource.
func routeDocument(key string) (auth.Resource, string, bool) {
	name, ok := strings.CutPrefix(key, RoutesPrefix)
	return auth.Routes, name, ok
}

// keyAccess is nil when the request's token may act with access on key
// (always with auth off): a kv rule or, for a route document, a routes
// rule allows it; else the kv rule's refusal.
func keyAccess(ctx context.Context, key string, access auth.Access) error {
	err := authhttp.Check(ctx, auth.KV, key, access)
	if err != nil {
		if res, name, ok := routeDocument(key); ok && authhttp.Check(ctx, res, name, access) == nil {
			return nil
		}
	}
	return err
}

// queryParam returns the Need's name from a query parameter.
func queryParam(name string) func(*http.Request) (string, error) {
	return func(r *http.Request) (string, error) { return r.URL.Query().Get(name), nil }
}

// listPrefix is the prefix a list covers ("/" when none is given).
func listPrefix(r *http.Request) (string, error) {
	if p := r.URL.Query().Get("prefix"); p != "" {
		return p, nil
	}
	return "/", nil
}

// watchedKeys is the key or prefix a watch covers.
func watchedKeys(r *http.Request) (string, error) {
	q := r.URL.Query()
	if k := q.Get("key"); k != "" {
		return k, nil
	}
	return q.Get("prefix"), nil
}
