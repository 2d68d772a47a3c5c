package config

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
)

// TestEveryRouteHasANeed: a route mounted without an access rule fails.
func TestEveryRouteHasANeed(t *testing.T) {
	s := &server{}
	r := chi.NewRouter()
	s.routes(r)
	authtest.EveryRouteHasANeed(t, r, s.table, 12)
}
