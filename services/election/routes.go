package election

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/election/lease"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler.
func NewServer(l *qlog.Log, m *lease.Machine, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Handler: qloghttp.Handler{Log: l, Logger: logger}, log: l, machine: m, logger: logger}
	return web.NewHandler(qloghttp.ServerOptions(ServiceName, l, logger, openAPIDocument, s.routes))
}

// routes is the whole API.
func (s *server) routes(r chi.Router) {
	r.Get("/v1/elections", s.handleList())
	r.Get("/v1/elections/{name}", s.handleGet())
	r.Post("/v1/elections/{name}/campaign", s.handleCampaign())
	r.Post("/v1/elections/{name}/renew", s.handleRenew())
	r.Post("/v1/elections/{name}/resign", s.handleResign())
	r.Get("/v1/elections/{name}/watch", s.handleWatch())
}
