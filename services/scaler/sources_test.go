package scaler_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/pgstore/pgtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// instance is a real HTTP server exposing a Prometheus gauge, registered
// in the registry with metricsPath, as a service that wants to be scraped
// registers.
func startScrapedInstance(t *testing.T, p *plane, service, id string, queue float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "queue_depth", Help: "Jobs waiting."})
	g.Set(queue)
	reg.MustRegister(g)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	portN, _ := strconv.Atoi(port)
	rc, err := sdk.New(p.registry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Services().Register(context.Background(), service, id, api.Registration{Address: host, Port: portN,
		Metadata: &map[string]string{"metricsPath": "/metrics"}}); err != nil {
		t.Fatal(err)
	}
}

// TestScrapedMetrics: the leader scrapes the Prometheus endpoints of the
// service's registered instances and scales on a per-instance average,
// HPA's Pods metric: two instances each with 30 queued jobs against a
// target of 10 per instance propose ceil(2 × 3) = 6.
func TestScrapedMetrics(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	rc.mu.Lock()
	rc.replicas = 2
	rc.mu.Unlock()
	startScrapedInstance(t, p, "jobs", "jobs-1", 30)
	startScrapedInstance(t, p, "jobs", "jobs-2", 30)
	spec := `{"service":"jobs","maxReplicas":10,"syncPeriod":"200ms",
		"metrics":[{"name":"queue_depth","target":{"type":"averageValue","value":10}}],
		"driver":{"type":"webhook","url":"` + rc.srv.URL + `","secret":"s3cret","readCurrent":true}}`
	expect(t, call(t, "PUT", n.url+"/v1/scalers/jobs", spec), 201)
	webtest.WaitFor(t, 15*time.Second, "a scale to 6 on the scraped queue depth", func() bool { r, _ := rc.snapshot(); return r == 6 })
	d := getScaler(t, n.url, "jobs").Status.LastDecision
	if d == nil || len(d.Metrics) != 1 || d.Metrics[0].Usage != 30 || d.Metrics[0].Ready != 2 {
		t.Fatalf("last decision = %+v, want queue_depth usage 30 over 2 ready instances", d)
	}
}

// TestDecisionsFromPostgres: the replicas hold only the newest decisions
// (keep = 3 here); older ones are read from the history archive in
// PostgreSQL, with their actuations, and a restarted replica (restored
// from its snapshot in PostgreSQL) serves the same list and status.
func TestDecisionsFromPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{pool: pool, keep: 3})
	go func() { _ = n.rep.Archive(ctx) }()
	rc := startReceiver(t)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), 201)
	push(t, n.url, "web", 45)
	webtest.WaitFor(t, 15*time.Second, "a scale to 5", func() bool { r, _ := rc.snapshot(); return r == 5 })
	webtest.WaitFor(t, 15*time.Second, "10 decisions", func() bool { return len(decisions(t, n.url, "web")) >= 10 })
	var ds []scalersDecision
	for _, d := range decisions(t, n.url, "web") {
		ds = append(ds, scalersDecision{d.Revision, d.DesiredReplicas, d.Actuation != nil})
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].rev >= ds[i-1].rev {
			t.Fatalf("decisions not newest first: %+v", ds)
		}
	}
	// The 1 → 5 decision is older than the three held: it came from
	// PostgreSQL, joined with its actuation.
	up := ds[len(ds)-1]
	for _, d := range ds {
		if d.desired == 5 && d.acted {
			up = d
		}
	}
	if !up.acted || up.desired != 5 {
		t.Fatalf("decisions = %+v, want the 1 → 5 decision with its actuation among them", ds)
	}
	// Restarted from its snapshot, the replica has the same scaler and
	// the same history.
	if _, err := n.rep.Log.TakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	n.kill()
	n = startNode(t, p, "scaler-0", nodeOptions{pool: pool, keep: 3})
	if st := getScaler(t, n.url, "web").Status; st.CurrentReplicas != 5 {
		t.Fatalf("after a restart the status = %+v, want 5 replicas", st)
	}
	found := false
	for _, d := range decisions(t, n.url, "web") {
		found = found || (d.Revision == up.rev && d.Actuation != nil)
	}
	if !found {
		t.Fatalf("after a restart the 1 → 5 decision (revision %d) is gone", up.rev)
	}
}

type scalersDecision struct {
	rev     int64
	desired int
	acted   bool
}
