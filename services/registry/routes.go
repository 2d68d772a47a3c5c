package registry

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler. allowLocal accepts local
// addresses (dev mode); the service's metrics go to reg (nil: a fresh one).
func NewServer(l *qlog.Log, store *catalog.Machine, allowLocal bool, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	s := &server{Handler: qloghttp.Handler{Log: l, Logger: logger}, log: l, store: store, allowLocal: allowLocal}
	o := qloghttp.ServerOptions(ServiceName, l, logger, openAPIDocument, s.routes)
	o.Registry = reg
	o.QuietRoutes = []string{"/v1/services/{service}/instances/{id}/heartbeat", "/v1/registry/leases/{id}/keepalive"}
	return web.NewHandler(o)
}

// routes is the whole API.
func (s *server) routes(r chi.Router) {
	r.Route("/v1", func(r chi.Router) {
		r.Get("/services", s.handleServices())
		r.Get("/services/{service}/instances", s.handleInstances())
		r.Put("/services/{service}/instances/{id}", s.handleRegister())
		r.Get("/services/{service}/instances/{id}", s.handleInstance())
		r.Delete("/services/{service}/instances/{id}", s.handleDeregister())
		r.Put("/services/{service}/instances/{id}/heartbeat", s.handleHeartbeat())
		r.Get("/services/{service}/watch", s.handleWatch())
		r.Delete("/services/{service}/protection", s.handleClearProtection())
		r.Post("/registry/leases", s.handleGrant())
		r.Get("/registry/leases/{id}", s.handleLease())
		r.Post("/registry/leases/{id}/keepalive", s.handleKeepalive())
		r.Delete("/registry/leases/{id}", s.handleRevoke())
	})
}
