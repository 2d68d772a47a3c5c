package web_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestHTTP1Metrics: Serve with WithMetrics puts h1server's counters on
// the registry: a plain request served, a chunked one handed to net/http
// with the reason "framing". With net/http alone, nothing is registered;
// a second listener on the same registry is refused, not a panic.
func TestHTTP1Metrics(t *testing.T) {
	for _, tc := range []struct {
		server     string
		registered bool
	}{
		{web.HTTP1Steward, true},
		{web.HTTP1NetHTTP, false},
	} {
		t.Run(tc.server, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h := web.NewHandler(web.Options{Service: "t", Routes: func(r chi.Router) {
				r.Post("/echo", func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(w, r.Body) })
			}})
			limits := web.Limits{HTTP1Server: tc.server}
			url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
				return web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), time.Second, limits, web.WithMetrics(reg))
			})
			before := http1Counters(t, reg)

			c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			reqs := []string{
				"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
				"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
			}
			for i, a := range exchange(t, c, reqs...) {
				if a.status != http.StatusOK {
					t.Fatalf("%q answered %d, want 200", reqs[i], a.status)
				}
			}

			after := http1Counters(t, reg)
			if !tc.registered {
				if len(after) != 0 {
					t.Fatalf("with %s, the registry has %v, want no steward_http1_ series", tc.server, after)
				}
				return
			}
			for _, series := range []string{"steward_http1_requests_total", "steward_http1_connections_total",
				`steward_http1_handoffs_total{reason="framing"}`, `steward_http1_handoffs_total{reason="version"}`} {
				if _, ok := after[series]; !ok {
					t.Fatalf("the registry lacks %s: %v", series, after)
				}
			}
			for series, want := range map[string]float64{
				"steward_http1_requests_total":                     1,
				"steward_http1_connections_total":                  1,
				`steward_http1_handoffs_total{reason="framing"}`:   1,
				`steward_http1_handoffs_total{reason="malformed"}`: 0,
			} {
				if got := after[series] - before[series]; got != want {
					t.Errorf("%s rose by %v, want %v", series, got, want)
				}
			}

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := web.Serve(ctx, ln, h, slog.New(slog.DiscardHandler), time.Second, limits, web.WithMetrics(reg)); err == nil {
				t.Fatal("a second listener registered on the same registry: Serve = nil, want an error")
			}
		})
	}
}

// answer is a response's status and body, as exchange reads them.
type answer struct {
	status int
	body   string
}

// exchange writes each raw request on c in turn and reads its answer
// before the next.
func exchange(t *testing.T, c net.Conn, reqs ...string) []answer {
	t.Helper()
	br := bufio.NewReader(c)
	var out []answer
	for _, req := range reqs {
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%q: reading the body: %v", req, err)
		}
		out = append(out, answer{res.StatusCode, string(body)})
	}
	return out
}

// http1Counters returns the steward_http1_ series of reg, by name and
// labels as the exposition format writes them.
func http1Counters(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "steward_http1_") {
			continue
		}
		for _, m := range f.GetMetric() {
			name := f.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + `="` + l.GetValue() + `"}`
			}
			series[name] = m.GetCounter().GetValue()
		}
	}
	return series
}
