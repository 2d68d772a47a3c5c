package election

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/election/lease"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler without auth.
func NewServer(l *qlog.Log, m *lease.Machine, logger *slog.Logger) http.Handler {
	return newServer(l, m, logger, nil)
}

// newServer returns the service's handler; secure (the replica's
// Secure, nil without auth) puts the auth Guard in front of it.
func newServer(l *qlog.Log, m *lease.Machine, logger *slog.Logger, secure func(web.Options) web.Options) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Handler: qloghttp.NewHandler(l, logger), log: l, machine: m, logger: logger}
	o := s.ServerOptions(ServiceName, openAPIDocument, s.routes)
	if secure != nil {
		o = secure(o)
	}
	return web.NewHandler(o)
}

// routes is the whole API, each route with the access it needs: reading
// an election or watching it needs elections read on its name, taking
// part in it elections write; the list shows only what the token may
// read.
func (s *server) routes(r chi.Router) {
	rt := authhttp.NewRouter(r, &s.table)
	rt.Get("/v1/elections", authhttp.Handler(auth.Elections, auth.Read), s.handleList())
	rt.Get("/v1/elections/{name}", authhttp.Read(auth.Elections, nameParam), s.handleGet())
	rt.Post("/v1/elections/{name}/campaign", authhttp.Write(auth.Elections, nameParam), s.handleCampaign())
	rt.Post("/v1/elections/{name}/renew", authhttp.Write(auth.Elections, nameParam), s.handleRenew())
	rt.Post("/v1/elections/{name}/resign", authhttp.Write(auth.Elections, nameParam), s.handleResign())
	rt.Get("/v1/elections/{name}/watch", authhttp.Read(auth.Elections, nameParam), s.handleWatch())
}
