package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/logging"
)

// BenchmarkHandler measures what the middleware chain costs one request:
// a trivial GET route that writes a small JSON body, served by a bare chi
// router, by each built-in middleware alone around that router's route,
// and by NewHandler as the services build it. The handler is driven
// directly with a reused ResponseWriter, so the numbers are the chain's,
// not the network's or a recorder's. The logger is the one services run
// with by default (logging.New, JSON, info level) writing to io.Discard:
// the request log line is part of the cost. The request carries a valid
// traceparent and no X-Request-Id, so every layer does its full work (a
// new request ID is made for each request).
//
//	go test ./platform/web -run '^$' -bench BenchmarkHandler -benchmem -count=5
func BenchmarkHandler(b *testing.B) {
	logger := logging.New(io.Discard, logging.JSON, slog.LevelInfo)
	route := func(r chi.Router) {
		r.Get("/v1/items/{id}", func(w http.ResponseWriter, r *http.Request) {
			_ = Encode(w, http.StatusOK, benchItem{ID: chi.URLParam(r, "id"), Value: "hello", Revision: 7})
		})
	}
	layer := func(mws ...func(http.Handler) http.Handler) http.Handler {
		r := chi.NewRouter()
		r.Use(mws...)
		route(r)
		return r
	}
	bare := chi.NewRouter()
	route(bare)
	serviceLogger := logger.With("service", "bench")

	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"bare", bare},
		{"requestContext", layer(withRequestContext)},
		{"observe", layer(observe(serviceLogger, newMetrics(prometheus.NewRegistry(), "bench"), nil))},
		{"recoverPanics", layer(recoverPanics(serviceLogger))},
		{"NewHandler", NewHandler(Options{Service: "bench", Logger: logger, Registry: prometheus.NewRegistry(), Routes: route})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, "/v1/items/42", nil)
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			w := &benchWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.status, w.n = 0, 0
				bc.h.ServeHTTP(w, req)
			}
			if w.status != http.StatusOK || w.n == 0 {
				b.Fatalf("answered %d with %d bytes", w.status, w.n)
			}
		})
	}
}

type benchItem struct {
	ID       string `json:"id"`
	Value    string `json:"value"`
	Revision int    `json:"revision"`
}

// benchWriter is a reusable ResponseWriter that keeps only the status and
// the body's length.
type benchWriter struct {
	h         http.Header
	status, n int
}

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}
