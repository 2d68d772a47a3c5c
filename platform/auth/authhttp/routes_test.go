package authhttp_test

import (
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
)

// TestUnruledFindsARouteWithoutANeed: Unruled lists exactly the routes
// mounted on the chi router directly, not the open ones.
func TestUnruledFindsARouteWithoutANeed(t *testing.T) {
	var table []authhttp.Route
	r := chi.NewRouter()
	rt := authhttp.NewRouter(r, &table)
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	rt.Get("/v1/kv/*", authhttp.Read(auth.KV, nil), ok)
	r.Get("/healthz", ok)
	r.Get("/metrics", ok)
	r.Post("/v1/sneaky", ok)
	got, err := authhttp.Unruled(r, table)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "POST /v1/sneaky" {
		t.Fatalf("Unruled = %v, want [POST /v1/sneaky]", got)
	}
}

func TestSwitch(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "ON": true, "true": true, "off": false, "false": false, "": false} {
		var s authhttp.Switch
		if err := s.UnmarshalText([]byte(in)); err != nil || bool(s) != want {
			t.Errorf("%q = %v, %v; want %v", in, s, err, want)
		}
	}
	var s authhttp.Switch
	if s.UnmarshalText([]byte("yes please")) == nil {
		t.Error(`"yes please" accepted`)
	}
}
