package registry

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/registry/catalog"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler without auth. allowLocal
// accepts local addresses (dev mode); the service's metrics go to reg
// (nil: a fresh one).
func NewServer(l *qlog.Log, store *catalog.Machine, allowLocal bool, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	return newServer(l, store, allowLocal, reg, logger, nil)
}

// newServer returns the service's handler; secure (the replica's
// Secure, nil without auth) puts the auth Guard in front of it.
func newServer(l *qlog.Log, store *catalog.Machine, allowLocal bool, reg *prometheus.Registry, logger *slog.Logger, secure func(web.Options) web.Options) http.Handler {
	s := &server{Handler: qloghttp.NewHandler(l, logger), log: l, store: store, allowLocal: allowLocal}
	o := s.ServerOptions(ServiceName, openAPIDocument, s.routes)
	o.Registry = reg
	o.QuietRoutes = []string{"/v1/services/{service}/instances/{id}/heartbeat", "/v1/registry/leases/{id}/keepalive"}
	if secure != nil {
		o = secure(o)
	}
	return web.NewHandler(o)
}

// routes is the whole API, each route with the access it needs: a
// service's instances by the service's name, the service list filtered
// to what the token may read, the registry's leases as a whole.
func (s *server) routes(r chi.Router) {
	rt := authhttp.NewRouter(r, &s.table)
	read, write := authhttp.Read(auth.Services, serviceParam), authhttp.Write(auth.Services, serviceParam)
	rt.Get("/v1/services", authhttp.Handler(auth.Services, auth.Read), s.handleServices())
	rt.Get("/v1/services/{service}/instances", read, s.handleInstances())
	rt.Put("/v1/services/{service}/instances/{id}", write, s.handleRegister())
	rt.Get("/v1/services/{service}/instances/{id}", read, s.handleInstance())
	rt.Delete("/v1/services/{service}/instances/{id}", write, s.handleDeregister())
	rt.Put("/v1/services/{service}/instances/{id}/heartbeat", write, s.handleHeartbeat())
	rt.Get("/v1/services/{service}/watch", read, s.handleWatch())
	rt.Delete("/v1/services/{service}/protection", write, s.handleClearProtection())
	rt.Post("/v1/registry/leases", authhttp.Write(auth.Leases, nil), s.handleGrant())
	rt.Get("/v1/registry/leases/{id}", authhttp.Read(auth.Leases, nil), s.handleLease())
	rt.Post("/v1/registry/leases/{id}/keepalive", authhttp.Write(auth.Leases, nil), s.handleKeepalive())
	rt.Delete("/v1/registry/leases/{id}", authhttp.Write(auth.Leases, nil), s.handleRevoke())
}
