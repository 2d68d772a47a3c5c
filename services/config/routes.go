package config

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/config/kv"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler; history is read from the
// replica's memory only.
func NewServer(l *qlog.Log, store *kv.Machine, logger *slog.Logger) http.Handler {
	return newServer(l, store, nil, logger)
}

func newServer(l *qlog.Log, store *kv.Machine, archive historyArchive, logger *slog.Logger) http.Handler {
	s := &server{Handler: qloghttp.Handler{Log: l, Logger: logger}, log: l, store: store, archive: archive, logger: logger}
	return web.NewHandler(qloghttp.ServerOptions(ServiceName, l, logger, openAPIDocument, s.routes))
}

// routes is the whole API.
func (s *server) routes(r chi.Router) {
	r.Route("/v1", func(r chi.Router) {
		r.Get("/kv", s.handleList())
		r.Delete("/kv", s.handleDeletePrefix())
		r.Put("/kv/*", s.handlePut())
		r.Get("/kv/*", s.handleGet())
		r.Delete("/kv/*", s.handleDelete())
		r.Post("/txn", s.handleTxn())
		r.Get("/watch", s.handleWatch())
		r.Get("/history", s.handleHistory())
		r.Post("/leases", s.handleGrant())
		r.Get("/leases/{id}", s.handleLeaseGet())
		r.Post("/leases/{id}/keepalive", s.handleKeepalive())
		r.Delete("/leases/{id}", s.handleRevoke())
	})
}
