// Package scaler is Steward's autoscaler service: scalers (HPA v2 specs
// with a driver) over HTTP/JSON, replicated through platform/qlog, and a
// control loop that runs on the elected leader among the replicas. The
// algorithm (Kubernetes HPA's) is in hpa, the replicated state in ledger,
// the reconciler in control, the actuators in driver and the samples it
// reads in metrics; this package is the HTTP API and its declaration to
// the service skeleton (platform/service).
package scaler

import (
	_ "embed"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler. publish hands pushed
// samples to the replicas; archive (nil without PostgreSQL) holds the
// decisions older than the replicas keep.
func NewServer(l *qlog.Log, m *ledger.Machine, archive DecisionArchive, publish func([]metrics.Sample) error, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Handler: qloghttp.Handler{Log: l, Logger: logger}, log: l, machine: m, archive: archive, publish: publish, logger: logger}
	return web.NewHandler(qloghttp.ServerOptions(ServiceName, l, logger, openAPIDocument, s.routes))
}

// routes is the whole API.
func (s *server) routes(r chi.Router) {
	r.Get("/v1/scalers", s.handleList())
	r.Get("/v1/scalers/{name}", s.handleGet())
	r.Put("/v1/scalers/{name}", s.handlePut())
	r.Delete("/v1/scalers/{name}", s.handleDelete())
	r.Get("/v1/scalers/{name}/decisions", s.handleDecisions())
	r.Post("/v1/scalers/{name}/simulate", s.handleSimulate())
	r.Get("/v1/scalers/{name}/watch", s.handleWatch())
	r.Post("/v1/metrics", s.handlePush())
}
