package registry

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
)

// TestEveryRouteHasANeed: a route mounted without an access rule fails.
func TestEveryRouteHasANeed(t *testing.T) {
	r, table := routed()
	authtest.EveryRouteHasANeed(t, r, table, 12)
}

// RouteTable is the API's route table, for the auth matrix of the
// external tests (auth_test.go), which must cover every route.
func RouteTable() []authhttp.Route {
	_, table := routed()
	return table
}

// routed mounts the API on a fresh router and returns it with its table.
func routed() (chi.Router, []authhttp.Route) {
	s := &server{}
	r := chi.NewRouter()
	s.routes(r)
	return r, s.table
}
