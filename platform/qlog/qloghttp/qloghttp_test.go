package qloghttp_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestClassify: what a client is told for each failure of the log. A
// transient NATS or JetStream condition had no effect: 503 with
// Retry-After, never 500. An unknown outcome stays 504 (the write may
// have happened), whatever NATS error it carries.
func TestClassify(t *testing.T) {
	jsUnavailable := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	tests := []struct {
		name       string
		err        error
		clientGone bool
		status     int
		retryAfter string
	}{
		{"qlog unavailable", fmt.Errorf("read index: %w", qlog.ErrUnavailable), false, 503, "1"},
		{"request timeout", fmt.Errorf("stream info: %w", nats.ErrTimeout), false, 503, "1"},
		{"no responders", fmt.Errorf("stream info: %w", nats.ErrNoResponders), false, 503, "1"},
		{"no stream response", jetstream.ErrNoStreamResponse, false, 503, "1"},
		{"JetStream temporarily unavailable (10008)", fmt.Errorf("stream info: %w", jsUnavailable), false, 503, "1"},
		{"10008 from the legacy API", &nats.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, false, 503, "1"},
		{"reconnecting", nats.ErrConnectionReconnecting, false, 503, "1"},
		{"connection closed", nats.ErrConnectionClosed, false, 503, "1"},
		{"disconnected", nats.ErrDisconnected, false, 503, "1"},
		{"replica not ready", fmt.Errorf("%w: catching up", qlog.ErrNotReady), false, 503, "1"},
		{"replica closed", qlog.ErrClosed, false, 503, "1"},
		{"replica failed", &qlog.FailedError{Reason: "diverged"}, false, 503, "1"},
		{"unknown outcome", fmt.Errorf("%w: publish: %v", qlog.ErrUnknownOutcome, nats.ErrTimeout), false, 504, ""},
		{"unknown outcome wrapping a transient error", fmt.Errorf("%w: %w", qlog.ErrUnknownOutcome, qlog.ErrUnavailable), false, 504, ""},
		{"deadline", context.DeadlineExceeded, false, 504, ""},
		{"compacted", &qlog.CompactedError{Requested: 3, CompactRevision: 9}, false, 410, ""},
		{"another JetStream error", &jetstream.APIError{Code: 404, ErrorCode: 10059, Description: "stream not found"}, false, 500, ""},
		{"bug", errors.New("nil map"), false, 500, ""},
		{"client gone", context.Canceled, true, web.StatusClientClosed, ""},
		{"client gone during a proposal", fmt.Errorf("%w: %v", qlog.ErrUnknownOutcome, context.Canceled), true, web.StatusClientClosed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			if tc.clientGone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			web.Error(rec, req, nil, qloghttp.Classify(tc.err))
			if rec.Code != tc.status || rec.Header().Get("Retry-After") != tc.retryAfter {
				t.Fatalf("Classify(%v) answered %d, Retry-After %q; want %d, %q", tc.err, rec.Code, rec.Header().Get("Retry-After"), tc.status, tc.retryAfter)
			}
			if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
}

// TestFailuresOverHTTP: a real log served by a real server. A write the
// client abandons while NATS is down is never an ERROR 500, and a closed
// replica answers 503 with Retry-After.
func TestFailuresOverHTTP(t *testing.T) {
	srv := qlogtest.StartServer(t)
	ctx := context.Background()
	l, err := qlog.Open(ctx, qlog.Config{Service: "qloghttp", ReplicaID: "r0", Conn: srv.Connect(t), StreamReplicas: 1,
		ProposeTimeout: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)}, qlogtest.NewRegisters())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var logs webtest.Logs
	h := qloghttp.Handler{Log: l, Logger: logs.Logger()}
	handler := web.NewHandler(web.Options{Service: "t", Logger: logs.Logger(), Ready: func(context.Context) error { return l.Ready() },
		Routes: func(r chi.Router) {
			r.Put("/r/{key}", h.Handle(func(w http.ResponseWriter, r *http.Request) error {
				var reply qlogtest.Reply
				_, err := qloghttp.Propose(r, l, qlogtest.Cmd{Op: "put", Key: chi.URLParam(r, "key"), Value: "v"}, 1<<10, &reply)
				return err
			}))
			r.Get("/r/{key}", h.Handle(func(w http.ResponseWriter, r *http.Request) error {
				return l.Read(r.Context(), qlog.Linearizable, func(int64) error { return nil })
			}))
		}})
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return web.Serve(ctx, ln, handler, slog.New(slog.DiscardHandler), time.Second, web.Limits{})
	})
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	do := func(ctx context.Context, method, path string) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, method, url+path, nil)
		res, err := client.Do(req)
		if err == nil {
			res.Body.Close()
		}
		return res, err
	}
	if res, err := do(ctx, http.MethodPut, "/r/a"); err != nil || res.StatusCode != 200 {
		t.Fatalf("PUT /r/a = %v, %v", res, err)
	}

	srv.Stop()
	actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	res, err := do(actx, http.MethodPut, "/r/b")
	cancel()
	if err == nil && res.StatusCode != http.StatusServiceUnavailable && res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("PUT with NATS down = %d, want 503, 504 or the client giving up", res.StatusCode)
	}
	webtest.WaitFor(t, 40*time.Second, "the abandoned write's access log line", func() bool {
		return len(lines(logs.Records("request"), "/r/b")) > 0
	})
	for _, rec := range lines(logs.Records(""), "/r/b") {
		if rec["level"] == "ERROR" || rec["status"] == float64(500) {
			t.Fatalf("a write abandoned while NATS was down was logged as %v", rec)
		}
	}

	l.Close()
	res, err = do(ctx, http.MethodGet, "/r/a")
	if err != nil || res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("GET on a closed replica = %v, %v; want 503 with Retry-After: 1", res, err)
	}
	for _, rec := range logs.Records("") {
		if rec["level"] == "ERROR" {
			t.Fatalf("logged at ERROR: %v", rec)
		}
	}
}

// lines keeps the records about path.
func lines(recs []map[string]any, path string) []map[string]any {
	var out []map[string]any
	for _, rec := range recs {
		if p, _ := rec["path"].(string); strings.HasSuffix(p, path) {
			out = append(out, rec)
		}
	}
	return out
}

// TestFailWording: a request that ran out of time is told what that means
// for it: a write's outcome is unknown, a read merely did not complete.
func TestFailWording(t *testing.T) {
	tests := []struct {
		method string
		err    error
		want   string
	}{
		{http.MethodGet, context.DeadlineExceeded, "the read did not complete in time"},
		{http.MethodHead, fmt.Errorf("read index: %w", qlog.ErrUnknownOutcome), "the read did not complete in time"},
		{http.MethodPut, context.DeadlineExceeded, "the write was not confirmed in time"},
		{http.MethodPost, fmt.Errorf("%w: publish", qlog.ErrUnknownOutcome), "the write was not confirmed in time"},
		{http.MethodDelete, context.DeadlineExceeded, "the write was not confirmed in time"},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/x", nil)
			rec := httptest.NewRecorder()
			qloghttp.SetRevision(rec, 1)
			qloghttp.Handler{Logger: slog.New(slog.DiscardHandler)}.Fail(rec, req, tc.err)
			if rec.Code != http.StatusGatewayTimeout || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("Fail(%s, %v) = %d %s, want 504 saying %q", tc.method, tc.err, rec.Code, rec.Body, tc.want)
			}
		})
	}
}

// TestFailRefusal: a state machine's refusal (envelope.Problem.Err) is
// answered with its kind's status and its detail.
func TestFailRefusal(t *testing.T) {
	tests := []struct {
		kind   fault.Kind
		status int
	}{
		{fault.Invalid, http.StatusBadRequest},
		{fault.NotFound, http.StatusNotFound},
		{fault.Conflict, http.StatusConflict},
		{fault.PreconditionFailed, http.StatusPreconditionFailed},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, "/x", nil)
			rec := httptest.NewRecorder()
			qloghttp.SetRevision(rec, 1)
			err := envelope.Refuse(tc.kind, "refused at revision %d", 1).Err()
			qloghttp.Handler{Logger: slog.New(slog.DiscardHandler)}.Fail(rec, req, err)
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), "refused at revision 1") || !strings.Contains(rec.Body.String(), tc.kind.String()) {
				t.Errorf("Fail(%v) = %d %s, want %d with the detail and the kind", tc.kind, rec.Code, rec.Body, tc.status)
			}
		})
	}
}
