package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
)

// maxWork caps ?work=, so that one request cannot hold a CPU for long.
const maxWork = time.Second

// metricsPath is where /metrics is served; the app registers it as its
// metricsPath metadata for the scaler.
const metricsPath = "/metrics"

// newServer returns the app's handler: GET / (the work) beside web's
// /healthz, /readyz and /metrics, the last serving reg.
func newServer(id, service string, work time.Duration, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	m := newDemoMetrics(reg)
	return web.NewHandler(web.Options{
		Service:  service,
		Logger:   logger,
		Registry: reg,
		// Load tests and scrapes hit these all the time: log them at debug.
		QuietRoutes: []string{"/", "/healthz", metricsPath},
		Routes: func(r chi.Router) {
			r.Method(http.MethodGet, "/", handleWork(id, work, m, logger))
		},
	})
}

// demoMetrics are the series the demo adds to the process collector's.
type demoMetrics struct {
	requests prometheus.Counter
	inFlight prometheus.Gauge
}

func newDemoMetrics(reg prometheus.Registerer) *demoMetrics {
	m := &demoMetrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "demo_requests_total", Help: "GET / requests served.",
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "demo_in_flight", Help: "GET / requests burning CPU now.",
		}),
	}
	reg.MustRegister(m.requests, m.inFlight)
	return m
}

// workResponse is GET /'s answer.
type workResponse struct {
	Instance string `json:"instance"`
	Worked   string `json:"worked"`
}

// handleWork burns work of CPU time (or ?work=, capped at maxWork) and
// names the instance that did it.
func handleWork(id string, work time.Duration, m *demoMetrics, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := work
		if v := r.URL.Query().Get("work"); v != "" {
			var err error
			if d, err = time.ParseDuration(v); err != nil || d < 0 {
				web.Error(w, r, logger, fault.New(fault.Invalid, "work %q: want a duration such as 50ms, at most %s", v, maxWork))
				return
			}
			d = min(d, maxWork)
		}
		m.requests.Inc()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		if err := burn(r.Context(), d); err != nil {
			return // the client has gone: no one reads the answer
		}
		_ = web.Encode(w, http.StatusOK, workResponse{Instance: id, Worked: d.String()})
	})
}
