package registry

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// TestEveryRouteHasANeed: a route mounted without an access rule fails.
func TestEveryRouteHasANeed(t *testing.T) {
	r, table := routed()
	unruled, err := authhttp.Unruled(r, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(unruled) > 0 {
		t.Fatalf("routes without a Need: %v", unruled)
	}
	if len(table) < 12 {
		t.Fatalf("%d routes in the table, want the 12 of the API", len(table))
	}
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
