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

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/services/scaler/ledger"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

//go:embed api/openapi.json
var openAPIDocument []byte

// NewServer returns the service's HTTP handler without auth. publish
// hands pushed samples to the replicas; archive (nil without PostgreSQL)
// holds the decisions older than the replicas keep.
func NewServer(l *qlog.Log, m *ledger.Machine, archive DecisionArchive, publish func([]metrics.Sample) error, logger *slog.Logger) http.Handler {
	return newServer(l, m, archive, publish, logger, nil)
}

// newServer returns the service's handler; secure (the replica's
// Secure, nil without auth) puts the auth Guard in front of it.
func newServer(l *qlog.Log, m *ledger.Machine, archive DecisionArchive, publish func([]metrics.Sample) error, logger *slog.Logger, secure func(web.Options) web.Options) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{Handler: qloghttp.NewHandler(l, logger), log: l, machine: m, archive: archive, publish: publish, logger: logger}
	o := s.ServerOptions(ServiceName, openAPIDocument, s.routes)
	if secure != nil {
		o = secure(o)
	}
	return web.NewHandler(o)
}

// routes is the whole API, each route with the access it needs: scalers
// read or write on the scaler's name (a simulation only reads), metrics
// write to push samples; the list shows only what the token may read.
func (s *server) routes(r chi.Router) {
	rt := authhttp.NewRouter(r, &s.table)
	rt.Get("/v1/scalers", authhttp.Handler(auth.Scalers, auth.Read), s.handleList())
	rt.Get("/v1/scalers/{name}", authhttp.Read(auth.Scalers, nameParam), s.handleGet())
	rt.Put("/v1/scalers/{name}", authhttp.Write(auth.Scalers, nameParam), s.handlePut())
	rt.Delete("/v1/scalers/{name}", authhttp.Write(auth.Scalers, nameParam), s.handleDelete())
	rt.Get("/v1/scalers/{name}/decisions", authhttp.Read(auth.Scalers, nameParam), s.handleDecisions())
	rt.Post("/v1/scalers/{name}/simulate", authhttp.Read(auth.Scalers, nameParam), s.handleSimulate())
	rt.Get("/v1/scalers/{name}/watch", authhttp.Read(auth.Scalers, nameParam), s.handleWatch())
	rt.Get("/v1/scalers/{name}/rollout", authhttp.Read(auth.Scalers, nameParam), s.handleRollout())
	rt.Get("/v1/scalers/{name}/rollouts", authhttp.Read(auth.Scalers, nameParam), s.handleRollouts())
	rt.Post("/v1/scalers/{name}/rollout/pause", authhttp.Write(auth.Scalers, nameParam), s.handleRolloutControl(ledger.OpRolloutPause))
	rt.Post("/v1/scalers/{name}/rollout/resume", authhttp.Write(auth.Scalers, nameParam), s.handleRolloutControl(ledger.OpRolloutResume))
	rt.Post("/v1/scalers/{name}/rollout/abort", authhttp.Write(auth.Scalers, nameParam), s.handleRolloutControl(ledger.OpRolloutAbort))
	rt.Post("/v1/scalers/{name}/rollout/promote", authhttp.Write(auth.Scalers, nameParam), s.handleRolloutControl(ledger.OpRolloutPromote))
	rt.Post("/v1/metrics", authhttp.Write(auth.Metrics, nil), s.handlePush())
}
