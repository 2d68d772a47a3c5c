package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stewardhq/steward/sdk/api"
)

// TestRollouts: the rollout calls reach their paths with their methods,
// the controls with an Idempotency-Key (the reads without one), their
// answers decode, and a 404 or 409 is ErrNotFound or ErrConflict.
func TestRollouts(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	rollout := `{"id":40,"generation":2,"phase":"%s","strategy":"RollingUpdate","from":{"hash":"a","version":"v1"},
		"to":{"hash":"b","version":"v2"},"pending":[],"progressAt":"2030-01-01T00:00:04Z","started":1,"stopped":0,
		"startedAt":"2030-01-01T00:00:00Z","versions":[{"hash":"b","version":"v2","running":1,"ready":1,"available":0,"draining":0}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s key=%t", r.Method, r.URL.Path, r.Header.Get("Idempotency-Key") != ""))
		mu.Unlock()
		switch r.URL.Path {
		case "/v1/scalers/none/rollout", "/v1/scalers/none/rollouts":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"status":404,"title":"Not Found","detail":"no scaler none"}`)
			return
		case "/v1/scalers/web/rollout/resume":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"status":409,"title":"Conflict","detail":"the rollout of scaler web is not paused"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/scalers/web/rollouts":
			fmt.Fprintf(w, `{"items":[`+rollout+`]}`, "Progressing")
		case "/v1/scalers/web/rollout/pause":
			fmt.Fprintf(w, rollout, "Paused")
		default:
			fmt.Fprintf(w, rollout, "Progressing")
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := c.Scalers()

	r, err := s.Rollout(ctx, "web")
	if err != nil || r.Id != 40 || r.Phase != api.RolloutPhaseProgressing || *r.To.Version != "v2" || len(r.Versions) != 1 || r.Versions[0].Ready != 1 {
		t.Fatalf("Rollout = %+v, %v", r, err)
	}
	hist, err := s.Rollouts(ctx, "web")
	if err != nil || len(hist) != 1 || hist[0].Id != 40 {
		t.Fatalf("Rollouts = %+v, %v", hist, err)
	}
	if r, err := s.PauseRollout(ctx, "web"); err != nil || r.Phase != api.RolloutPhasePaused {
		t.Fatalf("PauseRollout = %+v, %v", r, err)
	}
	if _, err := s.ResumeRollout(ctx, "web"); !errors.Is(err, ErrConflict) {
		t.Fatalf("ResumeRollout of a rollout not paused: %v, want ErrConflict", err)
	}
	for name, fn := range map[string]func(context.Context, string) (*api.Rollout, error){"AbortRollout": s.AbortRollout, "PromoteRollout": s.PromoteRollout} {
		if r, err := fn(ctx, "web"); err != nil || r.Id != 40 {
			t.Fatalf("%s = %+v, %v", name, r, err)
		}
	}
	if _, err := s.Rollout(ctx, "none"); !IsNotFound(err) {
		t.Fatalf("Rollout of no scaler: %v, want ErrNotFound", err)
	}
	if _, err := s.Rollouts(ctx, "none"); !IsNotFound(err) {
		t.Fatalf("Rollouts of no scaler: %v, want ErrNotFound", err)
	}

	want := map[string]bool{
		"GET /v1/scalers/web/rollout key=false":         true,
		"GET /v1/scalers/web/rollouts key=false":        true,
		"POST /v1/scalers/web/rollout/pause key=true":   true,
		"POST /v1/scalers/web/rollout/resume key=true":  true,
		"POST /v1/scalers/web/rollout/abort key=true":   true,
		"POST /v1/scalers/web/rollout/promote key=true": true,
		"GET /v1/scalers/none/rollout key=false":        true,
		"GET /v1/scalers/none/rollouts key=false":       true,
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != len(want) {
		t.Errorf("requests = %q, want one each of %d", seen, len(want))
	}
	for _, s := range seen {
		if !want[s] {
			t.Errorf("unexpected request %q (all: %q)", s, seen)
		}
	}
}
