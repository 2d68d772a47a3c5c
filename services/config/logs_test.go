package config_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/config"
)

// TestLogLines: a config replica handed a logger that already names the
// service (as steward dev does) writes no key twice on any line, its log's
// lines included (qlog adds "service" and "replica"), and every request
// line carries the ID its client was answered with.
func TestLogLines(t *testing.T) {
	var logs webtest.Logs
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 100_000}}
	rep, err := config.Open(ctx, s, qlogtest.StartServer(t).Connect(t), nil, logs.Logger().With("service", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rep.Handler)
	t.Cleanup(func() { srv.Close(); rep.Close() })

	ids := map[string]bool{}
	for _, tc := range []struct{ method, path, body, ifMatch string }{
		{http.MethodPut, "/v1/kv/app/a", `"x"`, ""},
		{http.MethodGet, "/v1/kv/app/a", "", ""},
		{http.MethodPut, "/v1/kv/app/a", `"y"`, `"999"`}, // 412
		{http.MethodGet, "/v1/kv/app/none", "", ""},      // 404
		{http.MethodGet, "/readyz", "", ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		if tc.ifMatch != "" {
			req.Header.Set("If-Match", tc.ifMatch)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		ids[res.Header.Get(web.RequestIDHeader)] = true
	}
	rep.Close() // its closing lines too

	if n := len(logs.RequestLines(t, "request", ids)); n != 5 {
		t.Errorf("%d request lines, want 5", n)
	}
	if recs, _ := logs.Strict(); len(recs) <= 5 {
		t.Errorf("%d lines: the log's own are missing", len(recs))
	}
}
