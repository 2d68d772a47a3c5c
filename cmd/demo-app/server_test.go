package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/envconf"
)

func TestWork(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		status      int
		worked      string
	}{
		{"default", "", http.StatusOK, "2ms"},
		{"override", "?work=5ms", http.StatusOK, "5ms"},
		{"zero", "?work=0s", http.StatusOK, "0s"},
		{"capped at a second", "?work=1h", http.StatusOK, "1s"},
		{"not a duration", "?work=lots", http.StatusBadRequest, ""},
		{"negative", "?work=-5ms", http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := newServer(behaviour{id: "demo-x", service: "demo", work: 2 * time.Millisecond}, reg, slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+tc.query, nil))
			if rec.Code != tc.status {
				t.Fatalf("GET /%s = %d %s, want %d", tc.query, rec.Code, rec.Body, tc.status)
			}
			wantCount := 0.0
			if tc.status == http.StatusOK {
				wantCount = 1
				var got workResponse
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if want := (workResponse{Instance: "demo-x", Worked: tc.worked}); got != want {
					t.Fatalf("GET /%s = %+v, want %+v", tc.query, got, want)
				}
			} else if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("GET /%s: Content-Type %q, want application/problem+json", tc.query, ct)
			}
			if got := gathered(t, reg, "demo_requests_total"); got != wantCount {
				t.Errorf("demo_requests_total = %v, want %v", got, wantCount)
			}
			if got := gathered(t, reg, "demo_in_flight"); got != 0 {
				t.Errorf("demo_in_flight = %v after the request, want 0", got)
			}
		})
	}
}

// gathered is the value of reg's unlabelled counter or gauge name.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s is not gathered", name)
	return 0
}

func TestRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := newServer(behaviour{id: "demo-x", service: "demo"}, reg, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/metrics", http.StatusOK},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nope", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, name := range []string{"demo_requests_total", "demo_in_flight"} {
		if !strings.Contains(rec.Body.String(), "\n"+name+" ") {
			t.Errorf("/metrics has no %s:\n%s", name, rec.Body)
		}
	}
}

func TestBurnStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := burn(ctx, time.Hour); err == nil {
		t.Fatal("burn(ctx, 1h) = nil after ctx ended, want its error")
	}
	if got := time.Since(start); got > 5*time.Second {
		t.Fatalf("burn ran %s after ctx ended", got)
	}
}

func TestSettings(t *testing.T) {
	for _, k := range []string{"PORT", "STEWARD_PORT", "STEWARD_INSTANCE_ID", "STEWARD_REGISTRY_URL",
		"STEWARD_DEMO_SERVICE", "STEWARD_DEMO_WORK", "STEWARD_ADVERTISE_ADDR"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	var s Settings
	if err := envconf.Load(&s); err != nil {
		t.Fatal(err)
	}
	if s.Port != 0 || s.RegistryURL != "http://127.0.0.1:8082" || s.Service != "demo" || s.Work != 20*time.Millisecond || s.AdvertiseAddr != "" {
		t.Fatalf("defaults = %+v", s)
	}
	host, _ := os.Hostname()
	if got, want := s.instanceID(), "demo-"+host+"-"; !strings.HasPrefix(got, want) {
		t.Fatalf("instanceID() = %q, want %s<pid>", got, want)
	}

	// What the process driver sets; an empty registry URL turns
	// registering off rather than falling back to the default.
	t.Setenv("PORT", "4321")
	t.Setenv("STEWARD_INSTANCE_ID", "demo-7")
	t.Setenv("STEWARD_REGISTRY_URL", "")
	t.Setenv("STEWARD_DEMO_WORK", "50ms")
	s = Settings{}
	if err := envconf.Load(&s); err != nil {
		t.Fatal(err)
	}
	if s.Port != 4321 || s.instanceID() != "demo-7" || s.RegistryURL != "" || s.Work != 50*time.Millisecond {
		t.Fatalf("settings = %+v", s)
	}
	if err := s.validate(); err != nil {
		t.Fatalf("validate() = %v", err)
	}
}

// TestErrorRate: at STEWARD_DEMO_ERROR_RATE 0.05 exactly one GET / in
// twenty is answered 500 (a problem), the others 200 with the version.
func TestErrorRate(t *testing.T) {
	h := newServer(behaviour{id: "demo-x", service: "demo", version: "v3", errorRate: 0.05}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	failed := 0
	for i := range 200 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?work=0s", nil))
		switch rec.Code {
		case http.StatusInternalServerError:
			failed++
			if i%20 != 19 {
				t.Errorf("request %d failed: not spread evenly", i)
			}
		case http.StatusOK:
			if !strings.Contains(rec.Body.String(), `"version":"v3"`) {
				t.Errorf("answer %s names no version", rec.Body)
			}
		default:
			t.Fatalf("GET / = %d", rec.Code)
		}
	}
	if failed != 10 {
		t.Errorf("%d of 200 failed, want 10", failed)
	}
}
