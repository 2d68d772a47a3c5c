package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type greeting struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func (g greeting) Validate() error {
	if g.Name == "" {
		return errors.New("name is required")
	}
	return nil
}

// testHandler mounts a small API that exercises each helper.
func testHandler(ready func(context.Context) error) http.Handler {
	return web.NewHandler(web.Options{
		Service: "test",
		Logger:  slog.New(slog.DiscardHandler),
		Ready:   ready,
		Routes: func(r chi.Router) {
			r.Post("/v1/greet", func(w http.ResponseWriter, r *http.Request) {
				g, err := web.Decode[greeting](w, r, 64)
				if err != nil {
					web.Error(w, r, nil, err)
					return
				}
				_ = web.Encode(w, http.StatusOK, g)
			})
			r.Get("/v1/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
			r.Get("/v1/missing/{id}", func(w http.ResponseWriter, r *http.Request) {
				web.Error(w, r, nil, fault.New(fault.PreconditionFailed, "revision moved").With("modRevision", 7))
			})
		},
	})
}

func do(t *testing.T, h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != web.ProblemContentType {
		t.Fatalf("Content-Type = %q, want %q (body %s)", ct, web.ProblemContentType, rec.Body)
	}
	var p map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body is not JSON: %v: %s", err, rec.Body)
	}
	if int(p["status"].(float64)) != rec.Code {
		t.Fatalf("problem status %v != response status %d", p["status"], rec.Code)
	}
	for _, k := range []string{"type", "title"} {
		if _, ok := p[k].(string); !ok {
			t.Fatalf("problem lacks %q: %v", k, p)
		}
	}
	return p
}

func TestDecodeAnswers(t *testing.T) {
	h := testHandler(nil)
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		status int
		detail string // substring of the problem detail
	}{
		{"ok", `{"name":"a","count":2}`, nil, 200, ""},
		{"malformed", `{"name":`, nil, 400, "unexpected end"},
		{"syntax error", `{"name" "a"}`, nil, 400, "malformed JSON at byte"},
		{"unknown field", `{"name":"a","colour":"red"}`, nil, 400, "unknown field"},
		{"wrong type", `{"name":"a","count":"two"}`, nil, 400, "field count"},
		{"trailing data", `{"name":"a"} {}`, nil, 400, "after the first document"},
		{"empty body", ``, nil, 400, "empty"},
		{"fails validation", `{"count":1}`, nil, 400, "name is required"},
		{"over limit", `{"name":"` + strings.Repeat("x", 100) + `"}`, nil, 413, "over the limit"},
		{"not json", `name=a`, map[string]string{"Content-Type": "text/plain"}, 415, "not JSON"},
		{"form type, JSON body", `{"name":"a"}`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "curl --json"},
		{"form type, form body", `name=a`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "not JSON"},
		{"multipart form", `--x--`, map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "not JSON"},
		{"no type, JSON body", `{"name":"a"}`, nil, 200, ""},
		{"json with charset", `{"name":"a"}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := do(t, h, http.MethodPost, "/v1/greet", tc.body, tc.hdr)
			if rec.Code != tc.status {
				t.Fatalf("POST /v1/greet %q = %d, want %d (body %s)", tc.body, rec.Code, tc.status, rec.Body)
			}
			if tc.status == 200 {
				return
			}
			p := problemOf(t, rec)
			if d, _ := p["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Fatalf("detail = %q, want it to contain %q", d, tc.detail)
			}
		})
	}
}

// TestBodyLimitBeforeDecoding checks that a declared Content-Length over the
// limit is refused without reading the body: the reader fails if touched.
func TestBodyLimitBeforeDecoding(t *testing.T) {
	h := testHandler(nil)
	req := httptest.NewRequest(http.MethodPost, "/v1/greet", explodingReader{t})
	req.ContentLength = 1 << 30
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if p := problemOf(t, rec); p["limit"] != float64(64) {
		t.Fatalf("problem limit = %v, want 64", p["limit"])
	}
}

type explodingReader struct{ t *testing.T }

func (r explodingReader) Read([]byte) (int, error) {
	r.t.Error("body was read although Content-Length is over the limit")
	return 0, io.EOF
}

func TestPanicAnswers500AndServerLives(t *testing.T) {
	h := testHandler(nil)
	rec := do(t, h, http.MethodGet, "/v1/panic", "", nil)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("GET /v1/panic = %d, want 500", rec.Code)
	}
	p := problemOf(t, rec)
	if strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("panic value leaked to the client: %v", p)
	}
	if rec := do(t, h, http.MethodGet, "/healthz", "", nil); rec.Code != 200 {
		t.Fatalf("GET /healthz after panic = %d, want 200", rec.Code)
	}
}

func TestProblemCarriesFields(t *testing.T) {
	h := testHandler(nil)
	rec := do(t, h, http.MethodGet, "/v1/missing/1", "", map[string]string{"X-Request-Id": "abc-123"})
	if rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("status = %d, want 412", rec.Code)
	}
	p := problemOf(t, rec)
	if p["modRevision"] != float64(7) || p["requestId"] != "abc-123" || p["instance"] != "/v1/missing/1" {
		t.Fatalf("problem = %v, want modRevision 7, requestId abc-123, instance /v1/missing/1", p)
	}
}

func TestRoutingProblems(t *testing.T) {
	h := testHandler(nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/v1/nope", 404},
		{http.MethodDelete, "/v1/greet", 405},
	} {
		rec := do(t, h, tc.method, tc.path, "", nil)
		if rec.Code != tc.status {
			t.Fatalf("%s %s = %d, want %d", tc.method, tc.path, rec.Code, tc.status)
		}
		problemOf(t, rec)
	}
}

func TestRequestIDAndTraceparent(t *testing.T) {
	h := testHandler(nil)
	rec := do(t, h, http.MethodGet, "/healthz", "", map[string]string{"X-Request-Id": "given-id"})
	if got := rec.Header().Get("X-Request-Id"); got != "given-id" {
		t.Fatalf("X-Request-Id = %q, want the client's %q", got, "given-id")
	}
	rec = do(t, h, http.MethodGet, "/healthz", "", map[string]string{"X-Request-Id": strings.Repeat("x", 200)})
	if got := rec.Header().Get("X-Request-Id"); len(got) != 32 {
		t.Fatalf("X-Request-Id for an over-long id = %q, want a fresh 32-hex id", got)
	}

	var seen string
	th := web.NewHandler(web.Options{Service: "t", Routes: func(r chi.Router) {
		r.Get("/tp", func(w http.ResponseWriter, r *http.Request) { seen = web.Traceparent(r.Context()) })
	}})
	for _, tc := range []struct{ in, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"garbage", ""},
	} {
		seen = "unset"
		do(t, th, http.MethodGet, "/tp", "", map[string]string{"Traceparent": tc.in})
		if seen != tc.want {
			t.Fatalf("Traceparent(%q) = %q, want %q", tc.in, seen, tc.want)
		}
	}
}

func TestReadyz(t *testing.T) {
	var err error
	h := testHandler(func(context.Context) error { return err })
	if rec := do(t, h, http.MethodGet, "/readyz", "", nil); rec.Code != 200 {
		t.Fatalf("GET /readyz = %d, want 200", rec.Code)
	}
	err = errors.New("replaying log: at 10 of 20")
	rec := do(t, h, http.MethodGet, "/readyz", "", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz while not ready = %d, want 503", rec.Code)
	}
	if p := problemOf(t, rec); !strings.Contains(p["detail"].(string), "at 10 of 20") {
		t.Fatalf("readyz detail = %q, want the reason", p["detail"])
	}
}

func TestMetricsByRoutePattern(t *testing.T) {
	h := testHandler(nil)
	do(t, h, http.MethodGet, "/v1/missing/41", "", nil)
	do(t, h, http.MethodGet, "/v1/missing/42", "", nil)
	rec := do(t, h, http.MethodGet, "/metrics", "", nil)
	body := rec.Body.String()
	want := `steward_http_requests_total{method="GET",route="/v1/missing/{id}",service="test",status="412"} 2`
	if !strings.Contains(body, want) {
		t.Fatalf("metrics lack %s:\n%s", want, body)
	}
	if !strings.Contains(body, `steward_http_request_duration_seconds_bucket{method="GET",route="/v1/missing/{id}"`) {
		t.Fatalf("metrics lack the latency histogram by route")
	}
}

// TestGracefulShutdown starts a real server, holds one ordinary request and
// one stream in flight, cancels the server's context, and checks that the
// ordinary request completes, the stream is told to stop, and Serve returns
// nil after both are done.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 2)
	h := web.NewHandler(web.Options{Service: "t", Routes: func(r chi.Router) {
		r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
			started <- "slow"
			<-release
			_ = web.Encode(w, http.StatusOK, map[string]string{"done": "yes"})
		})
		r.Get("/stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			started <- "stream"
			select {
			case <-web.Stopping(r.Context()):
				_, _ = io.WriteString(w, "event: shutdown\ndata: {}\n\n")
			case <-r.Context().Done():
			}
		})
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), 5*time.Second, web.Limits{}) }()

	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	slowDone := make(chan string, 1)
	go func() {
		resp, err := client.Get(base + "/slow")
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slowDone <- string(b)
	}()
	streamResp, err := client.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer streamResp.Body.Close()
	<-started
	<-started

	cancel()
	// The stream ends on its own once shutdown begins.
	b, err := io.ReadAll(streamResp.Body)
	if err != nil || !strings.Contains(string(b), "event: shutdown") {
		t.Fatalf("stream after shutdown = %q, %v; want a clean shutdown event", b, err)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-slowDone; !strings.Contains(got, `"done":"yes"`) {
		t.Fatalf("in-flight request during shutdown got %q, want its full answer", got)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v, want nil after a clean drain", err)
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Fatalf("server still accepts after shutdown")
	}
}

// TestWrongTypeNamesTheJSONPath: the field a wrong-typed value is
// reported under is its path in the document, not through the Go names
// of embedded structs (which encoding/json puts in its path since Go
// 1.24).
func TestWrongTypeNamesTheJSONPath(t *testing.T) {
	type Limits struct {
		Max int `json:"max"`
	}
	type Retry struct {
		Attempts int `json:"attempts"`
	}
	type Driver struct {
		Retry
	}
	type Doc struct {
		Limits
		Driver Driver `json:"driver"`
	}
	for body, want := range map[string]string{
		`{"max":"ten"}`:                   "max",
		`{"driver":{"attempts":"three"}}`: "driver.attempts",
	} {
		var d Doc
		err := web.Unmarshal([]byte(body), &d)
		var f *fault.Error
		if !errors.As(err, &f) || f.Fields["field"] != want {
			t.Errorf("Unmarshal(%s) = %v, want field %q", body, err, want)
		}
	}
}
