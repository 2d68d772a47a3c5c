package proxy_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stewardhq/steward/gateway/balancer"
	"github.com/stewardhq/steward/gateway/proxy"
	"github.com/stewardhq/steward/gateway/route"
)

// instance starts an upstream answering with handler and returns it as
// a balancer instance of version.
func instance(t *testing.T, id, version string, handler http.HandlerFunc) balancer.Instance {
	t.Helper()
	up := httptest.NewServer(handler)
	t.Cleanup(up.Close)
	h, p, _ := net.SplitHostPort(up.Listener.Addr().String())
	port, _ := strconv.Atoi(p)
	return balancer.Instance{ID: id, Address: h, Port: port, Version: version}
}

// TestVersionSignals sends requests split 50/50 between v1, which always
// answers, and v2, which answers 500 to every fourth request, and checks
// the per-version counts both as Prometheus series and as Versions.
func TestVersionSignals(t *testing.T) {
	var n atomic.Int64
	v1 := instance(t, "a", "v1", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("v1")) })
	v2 := instance(t, "b", "v2", func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("v2"))
	})
	// Outlier detection would eject v2 after enough failures in a row;
	// one in four never makes a run of 1,000.
	pool := balancer.NewPool(balancer.Options{Outlier: balancer.Outlier{Consecutive: 1000}})
	pool.Update([]balancer.Instance{v1, v2})
	reg := prometheus.NewRegistry()
	px := proxy.New(proxy.Config{Pools: pools{"web": pool}, ID: "gw", Registerer: reg})
	rt, err := route.Parse("split", []byte(`{"match":{"pathPrefix":"/web/"},"service":"web","split":[{"version":"v1","weight":1},{"version":"v2","weight":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	px.SetRoutes(route.NewTable([]*route.Route{rt}))

	codes := map[int]int{}
	for range 400 {
		w := httptest.NewRecorder()
		// POST: never retried, so every request is one attempt.
		px.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/web/x", nil))
		codes[w.Code]++
	}
	got := map[string]proxy.VersionCounts{}
	for _, c := range px.Versions()["web"] {
		got[c.Version] = c
	}
	want500 := uint64(codes[http.StatusInternalServerError])
	if got["v1"].Requests+got["v2"].Requests != 400 || got["v1"].Failures != 0 || got["v2"].Failures != want500 {
		t.Fatalf("Versions()[web] = %+v, want 400 requests, v1 no failures, v2 %d (the 500s answered)", got, want500)
	}
	if r := got["v2"].Requests; r < 120 || r > 280 {
		t.Errorf("v2 served %d of 400 at weight 1:1", r)
	}
	for v, c := range got {
		if c.Since.IsZero() || c.Since.After(time.Now()) || len(c.Cumulative) != len(proxy.UpstreamBounds()) || c.Cumulative[len(c.Cumulative)-1] > c.Requests {
			t.Errorf("%s: %+v: want Since set, one cumulative count per bound, none above Requests", v, c)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	var observed uint64
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := labels(m)
			switch f.GetName() {
			case "steward_gateway_upstream_requests_total":
				counts[l["version"]+"/"+l["outcome"]] = m.GetCounter().GetValue()
			case "steward_gateway_upstream_request_duration_seconds":
				observed += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if counts["v2/5xx"] != float64(want500) || counts["v1/ok"] != float64(got["v1"].Requests) || counts["v2/ok"]+counts["v2/5xx"] != float64(got["v2"].Requests) || observed != 400 {
		t.Errorf("gathered %v and %d observations, want v2/5xx %d, v1/ok %d, 400 observed", counts, observed, want500, got["v1"].Requests)
	}
}

// TestVersionSignalsTransportError counts an upstream that cannot be
// reached as a failure of its version (the client gets 502).
func TestVersionSignalsTransportError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Accepts, then closes at once: a connection reset, not a refused dial.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer ln.Close()
	h, p, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(p)
	pool := balancer.NewPool(balancer.Options{Outlier: balancer.Outlier{Consecutive: 1000}})
	pool.Update([]balancer.Instance{{ID: "a", Address: h, Port: port, Version: "v9"}})
	px := proxy.New(proxy.Config{Pools: pools{"web": pool}, ID: "gw", Registerer: prometheus.NewRegistry()})
	for range 3 {
		w := httptest.NewRecorder()
		px.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/s/web/x", nil))
		if w.Code != http.StatusBadGateway {
			t.Fatalf("POST = %d, want 502", w.Code)
		}
	}
	c := px.Versions()["web"]
	if len(c) != 1 || c[0].Version != "v9" || c[0].Requests != 3 || c[0].Failures != 3 {
		t.Fatalf("Versions()[web] = %+v, want v9 with 3 requests, 3 failures", c)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
