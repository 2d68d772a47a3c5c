package web_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestErrorStatusAndLevel: each kind of failure gets its status, a 503 or
// 429 a Retry-After, and is logged at the level an operator needs: ERROR
// only for a bug.
func TestErrorStatusAndLevel(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		clientGone bool
		status     int
		retryAfter string
		level      string // of the access log line; "request failed" is logged for 5xx only
	}{
		{"bug", errors.New("nil map"), false, 500, "", "ERROR"},
		{"unavailable", fault.New(fault.Unavailable, "catching up"), false, 503, "1", "WARN"},
		{"timeout", fault.New(fault.Timeout, "not confirmed"), false, 504, "", "WARN"},
		{"bad gateway", fault.New(fault.BadGateway, "upstream reset"), false, 502, "", "WARN"},
		{"loop", fault.New(fault.LoopDetected, "again"), false, 508, "", "ERROR"},
		{"rate limited", fault.New(fault.TooManyRequests, "slow down"), false, 429, "1", "INFO"},
		{"invalid", fault.New(fault.Invalid, "bad"), false, 400, "", "INFO"},
		{"client gone", context.Canceled, true, web.StatusClientClosed, "", "INFO"},
		{"client gone during a wait", fault.Wrap(fault.Timeout, context.Canceled, "not confirmed"), true, web.StatusClientClosed, "", "INFO"},
		{"client gone, wrapped", fmt.Errorf("read: %w", context.Canceled), true, web.StatusClientClosed, "", "INFO"},
		// A context canceled that is not the client's is a bug.
		{"canceled, client there", context.Canceled, false, 500, "", "ERROR"},
		// A bug stays a bug when the client happens to leave too.
		{"bug, client gone", errors.New("nil map"), true, 500, "", "ERROR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs webtest.Logs
			h := web.NewHandler(web.Options{Service: "t", Logger: logs.Logger(), Routes: func(r chi.Router) {
				r.Get("/fail", func(w http.ResponseWriter, r *http.Request) { web.Error(w, r, logs.Logger(), tc.err) })
			}})
			req := httptest.NewRequest(http.MethodGet, "/fail", nil)
			if tc.clientGone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Fatalf("status %d, Retry-After %q; want %d, %q", rec.Code, rec.Header().Get("Retry-After"), tc.status, tc.retryAfter)
			}
			if p := problemOf(t, rec); tc.status == web.StatusClientClosed && p["type"] != "urn:steward:problem:client-closed" {
				t.Fatalf("problem type = %v, want urn:steward:problem:client-closed", p["type"])
			}
			access := logs.Records("request")
			if len(access) != 1 || access[0]["level"] != tc.level || access[0]["status"] != float64(tc.status) {
				t.Fatalf("access log = %v, want one %s line with status %d", access, tc.level, tc.status)
			}
			failed := logs.Records("request failed")
			switch {
			case tc.status < 500 && len(failed) != 0:
				t.Fatalf("a %d was logged as a failure: %v", tc.status, failed)
			case tc.status >= 500 && (len(failed) != 1 || failed[0]["level"] != tc.level):
				t.Fatalf("failure log = %v, want one %s line", failed, tc.level)
			}
		})
	}
}

// TestNotReadyIsNotAnError: a starting replica answers its readiness probe
// 503 with Retry-After, and that is logged at INFO, not ERROR.
func TestNotReadyIsNotAnError(t *testing.T) {
	var logs webtest.Logs
	h := web.NewHandler(web.Options{Service: "t", Logger: logs.Logger(),
		Ready: func(context.Context) error { return errors.New("replaying the log: at 10 of 20") }})
	rec := do(t, h, http.MethodGet, "/readyz", "", nil)
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("GET /readyz = %d, Retry-After %q; want 503, 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	for _, rec := range logs.Records("") {
		if rec["level"] != "INFO" {
			t.Fatalf("a not-ready probe was logged at %v: %v", rec["level"], rec)
		}
	}
	if n := len(logs.Records("request")); n != 1 {
		t.Fatalf("%d access log lines, want 1", n)
	}
}

// TestAbandonedRequest: over a real connection, a client that gives up on
// a request leaves a 499 at INFO in the log, not an ERROR 500.
func TestAbandonedRequest(t *testing.T) {
	var logs webtest.Logs
	started := make(chan struct{})
	h := web.NewHandler(web.Options{Service: "t", Logger: logs.Logger(), Routes: func(r chi.Router) {
		r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-r.Context().Done()
			web.Error(w, r, logs.Logger(), fmt.Errorf("propose: %w", r.Context().Err()))
		})
	}})
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), time.Second, web.Limits{})
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/slow", nil)
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	errc := make(chan error, 1)
	go func() {
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("the abandoned request ended with %v", err)
	}
	webtest.WaitFor(t, 10*time.Second, "the abandoned request's access log line", func() bool {
		for _, rec := range logs.Records("request") {
			if rec["path"] == "/slow" {
				return true
			}
		}
		return false
	})
	for _, rec := range logs.Records("") {
		if rec["path"] != "/slow" {
			continue
		}
		if rec["level"] != "INFO" || rec["msg"] != "request" || rec["status"] != float64(web.StatusClientClosed) {
			t.Fatalf("the abandoned request was logged as %v, want one INFO request line with status 499", rec)
		}
	}
}
