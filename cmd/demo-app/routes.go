package main

import (
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
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

// behaviour is what GET / does: which instance of which version answers, the
// CPU time it burns, and the share it fails.
type behaviour struct {
	id, service, version string
	work                 time.Duration
	errorRate            float64
}

// newServer returns the app's handler: GET / (the work) beside web's
// /healthz, /readyz and /metrics, the last serving reg.
func newServer(a behaviour, reg *prometheus.Registry, logger *slog.Logger) http.Handler {
	m := newDemoMetrics(reg)
	return web.NewHandler(web.Options{
		Service:  a.service,
		Logger:   logger,
		Registry: reg,
		// Load tests and scrapes hit these all the time: log them at debug.
		QuietRoutes: []string{"/", "/healthz", metricsPath},
		Routes: func(r chi.Router) {
			r.Method(http.MethodGet, "/", handleWork(a, m, logger))
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
	Version  string `json:"version,omitempty"`
	Worked   string `json:"worked"`
}

// handleWork burns work of CPU time (or ?work=, capped at maxWork) and
// names the instance and version that did it; with an error rate, that
// share of requests (spread evenly: the nth fails when n×rate passes a
// whole number) is answered 500 instead, after the work.
func handleWork(a behaviour, m *demoMetrics, logger *slog.Logger) http.Handler {
	var served atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := a.work
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
		if n := served.Add(1); math.Floor(float64(n)*a.errorRate) > math.Floor(float64(n-1)*a.errorRate) {
			web.Error(w, r, logger, fault.New(fault.Internal, "a deliberate failure: STEWARD_DEMO_ERROR_RATE is %g", a.errorRate))
			return
		}
		_ = web.Encode(w, http.StatusOK, workResponse{Instance: a.id, Version: a.version, Worked: d.String()})
	})
}
