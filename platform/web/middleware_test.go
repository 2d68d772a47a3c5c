package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRequestContext: the IDs the server makes are 32 lower-case hex
// digits, all different, the same in the context and the answer; the
// request's context is still its parent's for cancellation and other keys;
// a handler inside another keeps the outer ID and takes its traceparent.
func TestRequestContext(t *testing.T) {
	type otherKey struct{}
	var got *http.Request
	h := withRequestContext(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r }))
	seen := map[string]bool{}
	for range 1000 {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
		req := httptest.NewRequestWithContext(parent, http.MethodGet, "/", nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		id := RequestID(got.Context())
		if len(id) != 32 || !lowerHex(id) || rec.Header().Get(RequestIDHeader) != id || seen[id] {
			t.Fatalf("request ID %q (answered %q), seen before: %v", id, rec.Header().Get(RequestIDHeader), seen[id])
		}
		seen[id] = true
		if got.Context().Value(otherKey{}) != "v" {
			t.Fatal("the parent context's values are lost")
		}
		child, stop := context.WithTimeout(got.Context(), time.Minute)
		cancel()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("cancelling the parent did not cancel a child of the request's context")
		}
		stop()
	}

	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set(RequestIDHeader, "outer")
	req = WithRequestID(httptest.NewRecorder(), req)
	req.Header.Set("Traceparent", tp)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if RequestID(got.Context()) != "outer" || Traceparent(got.Context()) != tp {
		t.Fatalf("inside WithRequestID: ID %q, traceparent %q", RequestID(got.Context()), Traceparent(got.Context()))
	}
	if Traceparent(req.Context()) != "" {
		t.Fatal("the outer request's context changed")
	}
}

// TestMetricsCache: the cached series count as WithLabelValues' would, and
// past maxCachedSeries requests are still counted.
func TestMetricsCache(t *testing.T) {
	m := newMetrics(prometheus.NewRegistry(), "t")
	for i := range maxCachedSeries + 10 {
		m.of("/r", "GET", 200).requests.Inc()
		m.of("/r", "M"+string(rune('a'+i%26))+string(rune('a'+i/26)), 200).requests.Inc()
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/r", "GET", "200")); n != maxCachedSeries+10 {
		t.Fatalf("GET /r 200 counted %v times, want %d", n, maxCachedSeries+10)
	}
	if n := testutil.ToFloat64(m.requests.WithLabelValues("/r", "Mzz", "200")); n != 1 {
		t.Fatalf("Mzz counted %v times, want 1", n)
	}
	if n := testutil.CollectAndCount(m.requests); n != maxCachedSeries+11 {
		t.Fatalf("%d series, want %d", n, maxCachedSeries+11)
	}
	if len(m.series) != maxCachedSeries {
		t.Fatalf("%d cached series, want %d", len(m.series), maxCachedSeries)
	}
}
