package authhttp_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// BenchmarkGuard is the CPU auth adds to one request, in this process:
// a GET through a route with a kv Need, served by a handler that does
// nothing, with the Guard off (no middleware: the route's Need passes
// the request through) and on (a token of one role with a kv rule, its
// principal cached as every request after the first finds it). What it
// costs beside a real request's work is in bench -only=auth.
func BenchmarkGuard(b *testing.B) {
	ctx := b.Context()
	discard := slog.New(slog.DiscardHandler)
	l, m := authLog(b, "authbench")
	create, secret := auth.CreateToken("", auth.TokenRequest{Roles: []string{"app"}})
	apply(b, l, readerRole("app", "/app/"), create)
	var table []authhttp.Route
	r := chi.NewRouter()
	key := func(r *http.Request) (string, error) { return "/" + chi.URLParam(r, "*"), nil }
	authhttp.NewRouter(r, &table).Get("/v1/kv/*", authhttp.Read(auth.KV, key), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	g := authhttp.NewGuard(l, m, false, discard)
	for _, side := range []struct {
		name string
		h    http.Handler
	}{{"off", r}, {"on", g.Middleware(r)}} {
		b.Run(side.name, func(b *testing.B) {
			req := httptest.NewRequestWithContext(ctx, "GET", "/v1/kv/app/a", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			for b.Loop() {
				w := httptest.NewRecorder()
				side.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
