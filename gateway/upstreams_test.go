package gateway_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
)

// upstreamsAnswer is GET /gateway/upstreams as the web console reads it.
type upstreamsAnswer struct {
	Services []struct {
		Service   string   `json:"service"`
		Versions  []string `json:"versions"`
		Instances []struct {
			ID       string  `json:"id"`
			Address  string  `json:"address"`
			Version  string  `json:"version"`
			Zone     string  `json:"zone"`
			Ejected  bool    `json:"ejected"`
			InFlight int64   `json:"inFlight"`
			EWMAMs   float64 `json:"ewmaMs"`
		} `json:"instances"`
	} `json:"services"`
}

// TestGatewayUpstreams: GET /gateway/upstreams shows the balancer's state
// of a service's instances: the failing one ejected by outlier detection,
// a request in flight on the slow one, each one's version, zone, address
// and latency, sorted by service and instance id.
func TestGatewayUpstreams(t *testing.T) {
	p := startPlane(t)
	slow := startUpstream(t, p, "api", "api-1", api.Registration{Version: new("v1"), Zone: new("a")})
	bad := startUpstream(t, p, "api", "api-2", api.Registration{Version: new("v2"), Zone: new("b")})
	startUpstream(t, p, "web", "web-1", api.Registration{})
	bad.fail.Store(true)
	g := startGateway(t, p)
	putRoute(t, p, "api", `{"match":{"pathPrefix":"/api/"},"service":"api","loadBalancer":{"policy":"round-robin"}}`)
	webtest.WaitFor(t, 10*time.Second, "the route", func() bool { c, _, _ := get(t, g.url+"/api/x"); return c == 200 || c == 500 })
	get(t, g.url+"/s/web/x")

	var got upstreamsAnswer
	webtest.WaitFor(t, 10*time.Second, "api-2 ejected", func() bool {
		get(t, g.url+"/api/x")
		got = upstreamsAnswer{}
		getJSON(t, g.url+"/gateway/upstreams", &got)
		return len(got.Services) == 2 && len(got.Services[0].Instances) == 2 && got.Services[0].Instances[1].Ejected
	})
	done := make(chan struct{})
	slow.delay.Store(int64(3 * time.Second))
	go func() {
		defer close(done)
		get(t, g.url+"/api/slow")
	}()
	raw := map[string]any{}
	webtest.WaitFor(t, 2*time.Second, "a request in flight on api-1", func() bool {
		got = upstreamsAnswer{}
		raw, _ = getJSON(t, g.url+"/gateway/upstreams", &got)
		return got.Services[0].Instances[0].InFlight == 1
	})
	<-done

	if k, want := keys(raw["services"].([]any)[0]), []string{"instances", "service", "versions"}; !slices.Equal(k, want) {
		t.Errorf("a service's fields = %v, want %v", k, want)
	}
	inst := raw["services"].([]any)[0].(map[string]any)["instances"].([]any)[0]
	if k, want := keys(inst), []string{"address", "ejected", "ewmaMs", "id", "inFlight", "scheme", "version", "weight", "zone"}; !slices.Equal(k, want) {
		t.Errorf("an instance's fields = %v, want %v", k, want)
	}
	apiSvc, web := got.Services[0], got.Services[1]
	if apiSvc.Service != "api" || !slices.Equal(apiSvc.Versions, []string{"v1", "v2"}) || web.Service != "web" || web.Versions == nil || len(web.Versions) != 0 {
		t.Fatalf("services = %+v, want api with versions v1 and v2, then web with []", got.Services)
	}
	for i, want := range []struct {
		id, version, zone, addr string
		ejected                 bool
	}{
		{"api-1", "v1", "a", slow.srv.Listener.Addr().String(), false},
		{"api-2", "v2", "b", bad.srv.Listener.Addr().String(), true},
	} {
		in := apiSvc.Instances[i]
		if in.ID != want.id || in.Version != want.version || in.Zone != want.zone || in.Address != want.addr || in.Ejected != want.ejected || in.EWMAMs <= 0 {
			t.Errorf("instance %d = %+v, want %s %s zone %s at %s, ejected %v, a latency", i, in, want.id, want.version, want.zone, want.addr, want.ejected)
		}
	}
	if in := apiSvc.Instances[1]; in.InFlight != 0 {
		t.Errorf("api-2 has %d requests in flight, want 0", in.InFlight)
	}
}
