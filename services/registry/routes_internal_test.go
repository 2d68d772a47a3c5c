package registry

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// TestEveryRouteHasANeed: a route mounted without an access rule fails.
func TestEveryRouteHasANeed(t *testing.T) {
	s := &server{}
	r := chi.NewRouter()
	s.routes(r)
	unruled, err := authhttp.Unruled(r, s.table)
	if err != nil {
		t.Fatal(err)
	}
	if len(unruled) > 0 {
		t.Fatalf("routes without a Need: %v", unruled)
	}
	if len(s.table) < 12 {
		t.Fatalf("%d routes in the table, want the 12 of the API", len(s.table))
	}
}

// RouteTable is the API's route table, for the auth matrix of the
// external tests (auth_test.go), which must cover every route.
func RouteTable() []authhttp.Route {
	s := &server{}
	s.routes(chi.NewRouter())
	return s.table
}
