package metrics_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

// app is a service's metrics as client_golang keeps them.
type app struct {
	reg      *prometheus.Registry
	depth    *prometheus.GaugeVec
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
	payload  prometheus.Summary
}

func newApp() *app {
	a := &app{
		reg:      prometheus.NewRegistry(),
		depth:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "queue_depth", Help: "Jobs waiting."}, []string{"shard"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Requests served."}, []string{"code"}),
		latency:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "latency_seconds", Help: "Request latency."}),
		payload:  prometheus.NewSummary(prometheus.SummaryOpts{Name: "payload_bytes", Help: "Request sizes."}),
	}
	a.reg.MustRegister(a.depth, a.requests, a.latency, a.payload,
		prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "temperature_celsius", Help: "Untyped."}, func() float64 { return 21.5 }))
	a.depth.WithLabelValues("0").Set(2)
	a.depth.WithLabelValues("1").Set(3)
	a.requests.WithLabelValues("200").Add(10)
	a.requests.WithLabelValues("500").Add(5)
	a.latency.Observe(0.1)
	a.latency.Observe(0.3)
	a.payload.Observe(100)
	return a
}

// serve starts an HTTP server for h and returns the registry's view of
// it as instance id of service web, with metricsPath /metrics.
func serve(t *testing.T, id string, h http.Handler) catalog.Instance {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return instanceAt(t, id, srv.Listener.Addr().String(), "/metrics")
}

func instanceAt(t *testing.T, id, addr, path string) catalog.Instance {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return catalog.Instance{Service: "web", ID: id, Address: host, Port: p, Status: "passing",
		Metadata: map[string]string{metrics.MetricsPathKey: path}}
}

// client is a scrape client whose connections go when the test ends.
func client(t *testing.T, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// contentTypes records the Content-Type each response was served with.
type contentTypes struct {
	mu   sync.Mutex
	seen []string
}

func (c *contentTypes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		c.mu.Lock()
		defer c.mu.Unlock()
		c.seen = append(c.seen, w.Header().Get("Content-Type"))
	})
}

func (c *contentTypes) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		return ""
	}
	return c.seen[len(c.seen)-1]
}

// render lists one instance's samples as "name value" lines, checking
// the fields every sample shares.
func render(t *testing.T, samples []metrics.Sample, inst catalog.Instance, now time.Time) string {
	t.Helper()
	var lines []string
	for _, s := range samples {
		if s.Instance != inst.ID {
			continue
		}
		if s.Service != inst.Service || !s.Timestamp.Equal(now) || s.Request != 0 {
			t.Errorf("sample %+v: want service %s, timestamp %s, no request", s, inst.Service, now)
		}
		lines = append(lines, fmt.Sprintf("%s %g", s.Name, s.Value))
	}
	return strings.Join(lines, "\n")
}

const firstScrape = `latency_seconds_count 2
latency_seconds_sum 0.4
payload_bytes_count 1
payload_bytes_sum 100
queue_depth 5
requests_total 15
temperature_celsius 21.5`

func TestScrapeFormats(t *testing.T) {
	a := newApp()
	var protoCT, textCT contentTypes
	handler := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{})
	proto := serve(t, "web-proto", protoCT.wrap(handler))
	text := serve(t, "web-text", textCT.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("Accept") // an endpoint that only speaks text
		handler.ServeHTTP(w, r)
	})))
	unscraped := proto
	unscraped.ID, unscraped.Metadata = "web-none", map[string]string{"zone": "a"}

	s := metrics.NewScraper(client(t, 2*time.Second))
	samples, errs := s.Scrape(t.Context(), []catalog.Instance{proto, unscraped, text}, t0)
	if len(errs) > 0 {
		t.Fatalf("Scrape errors: %v", errs)
	}
	if got := protoCT.last(); !strings.HasPrefix(got, "application/vnd.google.protobuf") || !strings.Contains(got, "encoding=delimited") {
		t.Errorf("promhttp answered with %q, want delimited protobuf", got)
	}
	if got := textCT.last(); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("the text-only endpoint answered with %q, want text/plain", got)
	}
	for _, inst := range []catalog.Instance{proto, text} {
		if got := render(t, samples, inst, t0); got != firstScrape {
			t.Errorf("Scrape of %s:\n%s\nwant:\n%s", inst.ID, got, firstScrape)
		}
	}
	if got := render(t, samples, unscraped, t0); got != "" {
		t.Errorf("an instance without %s was scraped:\n%s", metrics.MetricsPathKey, got)
	}
	// Samples come in the order of the instances.
	if len(samples) != 14 || samples[0].Instance != proto.ID || samples[13].Instance != text.ID {
		t.Errorf("Scrape gave %d samples, from %s to %s; want 14, web-proto's first", len(samples), samples[0].Instance, samples[len(samples)-1].Instance)
	}
}

// TestScrapeHTTPS: an instance registered with the metadata scheme https
// is scraped over TLS, through the client's transport; the same instance
// without it is asked in plain HTTP, which its TLS listener refuses.
func TestScrapeHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(promhttp.HandlerFor(newApp().reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	tr := srv.Client().Transport.(*http.Transport)
	t.Cleanup(tr.CloseIdleConnections)
	s := metrics.NewScraper(metrics.NewScrapeClient(tr))
	for _, tc := range []struct {
		name, scheme string
		wantErr      bool
	}{
		{"https", "https", false},
		{"no scheme", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inst := instanceAt(t, "web-tls", srv.Listener.Addr().String(), "/metrics")
			if tc.scheme != "" {
				inst.Metadata[catalog.SchemeKey] = tc.scheme
			}
			samples, errs := s.Scrape(t.Context(), []catalog.Instance{inst}, t0)
			if tc.wantErr != (len(errs) > 0) || tc.wantErr == (len(samples) > 0) {
				t.Fatalf("Scrape = %d samples, errors %v; want error %v", len(samples), errs, tc.wantErr)
			}
		})
	}
}

func TestScrapeCounterRates(t *testing.T) {
	var current atomic.Pointer[app]
	current.Store(newApp())
	inst := serve(t, "web-1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(current.Load().reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	s := metrics.NewScraper(client(t, 2*time.Second))
	scrape := func(now time.Time) string {
		t.Helper()
		samples, errs := s.Scrape(t.Context(), []catalog.Instance{inst}, now)
		if len(errs) > 0 {
			t.Fatalf("Scrape errors: %v", errs)
		}
		return render(t, samples, inst, now)
	}

	scrape(at(0))
	a := current.Load()
	a.requests.WithLabelValues("200").Add(25)
	a.requests.WithLabelValues("503").Add(5)
	a.latency.Observe(0.5)
	a.payload.Observe(20)
	a.depth.WithLabelValues("0").Set(0) // gauges have no rate
	want := `latency_seconds_count 3
latency_seconds_count:rate 0.1
latency_seconds_sum 0.9
latency_seconds_sum:rate 0.05
payload_bytes_count 2
payload_bytes_count:rate 0.1
payload_bytes_sum 120
payload_bytes_sum:rate 2
queue_depth 3
requests_total 45
requests_total:rate 3
temperature_celsius 21.5`
	if got := scrape(at(10 * time.Second)); got != want {
		t.Fatalf("second scrape, 10 s on:\n%s\nwant:\n%s", got, want)
	}

	// The instance restarts: its counters start again from zero.
	restarted := prometheus.NewRegistry()
	requests := prometheus.NewCounter(prometheus.CounterOpts{Name: "requests_total", Help: "Requests served."})
	restarted.MustRegister(requests)
	requests.Add(4)
	current.Store(&app{reg: restarted})
	if got, want := scrape(at(20*time.Second)), "requests_total 4"; got != want {
		t.Fatalf("after a restart:\n%s\nwant:\n%s", got, want)
	}
	requests.Add(20)
	if got, want := scrape(at(30*time.Second)), "requests_total 24\nrequests_total:rate 2"; got != want {
		t.Fatalf("10 s after the restart:\n%s\nwant:\n%s", got, want)
	}

	// Forget drops the memory of instances not kept, and only theirs.
	s.Forget(map[string]bool{"web-1": true})
	requests.Add(10)
	if got, want := scrape(at(40*time.Second)), "requests_total 34\nrequests_total:rate 1"; got != want {
		t.Fatalf("after Forget keeping it:\n%s\nwant:\n%s", got, want)
	}
	s.Forget(map[string]bool{"web-2": true})
	if got, want := scrape(at(50*time.Second)), "requests_total 34"; got != want {
		t.Fatalf("after Forget dropping it:\n%s\nwant:\n%s", got, want)
	}
}

func TestScrapeFailures(t *testing.T) {
	good := serve(t, "good", promhttp.HandlerFor(newApp().reg, promhttp.HandlerOpts{}))
	failing := serve(t, "status-500", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "collector failed", http.StatusInternalServerError)
	}))
	slow := serve(t, "slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	huge := serve(t, "huge", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		line := "# " + strings.Repeat("x", 1021) + "\n"
		for range metrics.MaxScrapeBytes/len(line) + 1 {
			if _, err := w.Write([]byte(line)); err != nil {
				return
			}
		}
	}))
	lying := serve(t, "lying-protobuf", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One message claiming a petabyte, in 11 bytes.
		w.Header().Set("Content-Type", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited")
		w.Write(append(binary.AppendUvarint(nil, 1<<50), "abc"...))
	}))
	garbage := serve(t, "garbage", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("queue_depth{shard=\"0\" 2\n"))
	}))
	badPath := good
	badPath.ID, badPath.Metadata = "bad-path", map[string]string{metrics.MetricsPathKey: "metrics"}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	refused := instanceAt(t, "refused", closed.Listener.Addr().String(), "/metrics")

	instances := []catalog.Instance{failing, slow, good, huge, lying, garbage, badPath, refused}
	start := time.Now()
	// The client's timeout must leave time to stream the huge body (4 MiB
	// over loopback took over 500 ms on a loaded CI machine) while still
	// cutting the slow instance, which answers after 10 s, well before.
	samples, errs := metrics.NewScraper(client(t, 3*time.Second)).Scrape(t.Context(), instances, t0)
	if elapsed := time.Since(start); elapsed > 8*time.Second {
		t.Errorf("Scrape took %s; the slow instance should have timed out after 3s", elapsed)
	}
	if got := render(t, samples, good, t0); got != firstScrape {
		t.Errorf("Scrape of the good instance:\n%s\nwant:\n%s", got, firstScrape)
	}
	if len(samples) != 7 {
		t.Errorf("Scrape gave %d samples, want only the good instance's 7", len(samples))
	}
	wantErrs := []struct{ id, says string }{
		{"status-500", "500 Internal Server Error"},
		{"slow", "Timeout"},
		{"huge", "body over 4194304 bytes"},
		{"lying-protobuf", "a message of 1125899906842624 bytes"},
		{"garbage", "decode"},
		{"bad-path", `metricsPath "metrics": want a path starting with /`},
		{"refused", "refused"},
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("Scrape errors = %q, want %d", errs, len(wantErrs))
	}
	for i, want := range wantErrs {
		got := errs[i].Error()
		if !strings.HasPrefix(got, "scrape web instance "+want.id+": ") || !strings.Contains(got, want.says) {
			t.Errorf("error %d = %q, want one naming %s and saying %q", i, got, want.id, want.says)
		}
	}
}

// Many instances: all scraped, never more than 16 at once.
func TestScrapeBounded(t *testing.T) {
	var inFlight, peak atomic.Int64
	handler := promhttp.HandlerFor(newApp().reg, promhttp.HandlerOpts{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		handler.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var instances []catalog.Instance
	for i := range 50 {
		instances = append(instances, instanceAt(t, fmt.Sprintf("web-%02d", i), srv.Listener.Addr().String(), "/metrics"))
	}
	samples, errs := metrics.NewScraper(client(t, 5*time.Second)).Scrape(t.Context(), instances, t0)
	if len(errs) > 0 {
		t.Fatalf("Scrape errors: %v", errs)
	}
	if len(samples) != 50*7 {
		t.Errorf("Scrape gave %d samples, want %d", len(samples), 50*7)
	}
	if p := peak.Load(); p > 16 || p < 2 {
		t.Errorf("at most %d scrapes ran at once, want 2 to 16", p)
	}
}

// The default client stays where the registry says the instance is.
func TestScrapeDefaultClientRefusesRedirects(t *testing.T) {
	var followed atomic.Bool
	inst := serve(t, "web-1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			followed.Store(true)
		}
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	_, errs := metrics.NewScraper(nil).Scrape(context.Background(), []catalog.Instance{inst}, t0)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "302 Found") {
		t.Fatalf("Scrape errors = %q, want one saying 302 Found", errs)
	}
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
}
