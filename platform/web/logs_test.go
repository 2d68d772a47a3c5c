package web_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestLogLines: a real server whose logger already names the service (as
// steward dev hands every service one) writes no key twice on any line,
// and every line about a request carries that request's ID, the one the
// client got in X-Request-Id.
func TestLogLines(t *testing.T) {
	var logs webtest.Logs
	logger := logs.Logger().With("service", "t")
	h := web.NewHandler(web.Options{Service: "t", Logger: logger, Routes: func(r chi.Router) {
		r.Get("/ok", func(w http.ResponseWriter, _ *http.Request) { _ = web.Encode(w, http.StatusOK, map[string]int{"n": 1}) })
		r.Get("/fail", func(w http.ResponseWriter, r *http.Request) {
			web.Error(w, r, logger, errors.New("a bug"))
		})
		r.Get("/unavailable", func(w http.ResponseWriter, r *http.Request) {
			logger.InfoContext(r.Context(), "about to fail", "service", "web") // a domain "service" too
			web.Error(w, r, logger, context.DeadlineExceeded)
		})
		r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	}})
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return web.Serve(ctx, ln, h, logger, time.Second, web.Limits{})
	})
	ids := map[string]bool{}
	for _, path := range []string{"/ok", "/fail", "/unavailable", "/panic", "/nowhere"} {
		for _, sent := range []string{"", "client-chosen-" + path[1:]} {
			req, _ := http.NewRequest(http.MethodGet, url+path, nil)
			if sent != "" {
				req.Header.Set(web.RequestIDHeader, sent)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			id := res.Header.Get(web.RequestIDHeader)
			if id == "" || (sent != "" && id != sent) {
				t.Fatalf("GET %s with X-Request-Id %q: answered X-Request-Id %q", path, sent, id)
			}
			ids[id] = true
		}
	}
	recs, err := logs.Strict()
	if err != nil {
		t.Fatal(err)
	}
	byMsg := map[string]int{}
	for _, rec := range recs {
		if _, ok := rec["path"]; !ok || rec["path"] == "/readyz" {
			continue // not about a request of the test's (the server starting, ServeOn's probe)
		}
		byMsg[rec["msg"].(string)]++
		id, _ := rec["request_id"].(string)
		if !ids[id] {
			t.Errorf("a line about a request has request_id %q, not one the client got: %v", id, rec)
		}
	}
	if byMsg["request"] != 10 || byMsg["request failed"] != 4 || byMsg["handler panicked"] != 2 {
		t.Errorf("lines about requests: %v; want 10 request, 4 request failed, 2 handler panicked", byMsg)
	}
	if n := len(logs.Records("about to fail")); n != 2 {
		t.Errorf("%d lines from the handler, want 2", n)
	}
}
