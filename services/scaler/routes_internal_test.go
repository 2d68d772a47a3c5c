package scaler

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
)

// RouteTable is the API's route table with each route's Need, for the
// auth matrix of auth_test.go.
func RouteTable() []authhttp.Route {
	s := &server{}
	s.routes(chi.NewRouter())
	return s.table
}

// TestEveryRouteHasANeed: a route mounted without an access rule fails.
func TestEveryRouteHasANeed(t *testing.T) {
	s := &server{}
	r := chi.NewRouter()
	s.routes(r)
	authtest.EveryRouteHasANeed(t, r, s.table, 14)
}
