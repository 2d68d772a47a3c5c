package scaler

import (
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth/authhttp"
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
	unruled, err := authhttp.Unruled(r, s.table)
	if err != nil {
		t.Fatal(err)
	}
	if len(unruled) > 0 {
		t.Fatalf("routes without a Need: %v", unruled)
	}
	if len(s.table) != 8 {
		t.Fatalf("%d routes in the table, want the 8 of the API", len(s.table))
	}
}
