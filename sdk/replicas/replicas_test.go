package replicas_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/sdk/replicas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// replica is a test server that answers as its behaviour says.
type replica struct {
	url  string
	hits atomic.Int32
}

func serve(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *replica {
	t.Helper()
	rep := &replica{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	rep.url = srv.URL
	return rep
}

func answer(status int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}
}

// hang answers nothing until the client goes away.
func hang(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// refused is a URL nothing listens on.
func refused(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	ln.Close()
	return u
}

func get(path string) replicas.NewRequest {
	return func(ctx context.Context, base string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	}
}

// call does one GET through set and reports the status and body, or the
// error.
func call(t *testing.T, set *replicas.Set, hc *http.Client, lim replicas.Limits) string {
	t.Helper()
	res, err := set.Do(context.Background(), hc, lim, get("/x"))
	if err != nil {
		return "error"
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.Status[:3] + " " + string(b)
}

func TestDoFailsOver(t *testing.T) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	ok := serve(t, answer(http.StatusOK))
	tests := []struct {
		name  string
		first func(t *testing.T) string // the first replica's URL
		lim   replicas.Limits
		want  string
	}{
		{"connection refused", refused, replicas.Limits{}, "200 OK"},
		{"503", func(t *testing.T) string { return serve(t, answer(http.StatusServiceUnavailable)).url }, replicas.Limits{}, "200 OK"},
		{"500", func(t *testing.T) string { return serve(t, answer(http.StatusInternalServerError)).url }, replicas.Limits{}, "200 OK"},
		{"no answer in time", func(t *testing.T) string { return serve(t, hang).url }, replicas.Limits{Answer: 100 * time.Millisecond}, "200 OK"},
		{"404 is an answer", func(t *testing.T) string { return serve(t, answer(http.StatusNotFound)).url }, replicas.Limits{}, "404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := replicas.Parse(tt.first(t) + ", " + ok.url + "/")
			if got := call(t, set, hc, tt.lim); got != tt.want {
				t.Errorf("Do = %q, want %q", got, tt.want)
			}
			if tt.want == "200 OK" {
				// The replica that answered stays in use.
				if got := set.URL(); got != ok.url {
					t.Errorf("URL() = %s, want %s", got, ok.url)
				}
			}
		})
	}
}

func TestDoKeepsAReplicaThatAnswers(t *testing.T) {
	a := serve(t, answer(http.StatusOK))
	b := serve(t, answer(http.StatusOK))
	set := replicas.New([]string{a.url, b.url})
	for range 3 {
		if got := call(t, set, nil, replicas.Limits{}); got != "200 OK" {
			t.Fatalf("Do = %q", got)
		}
	}
	if a.hits.Load() != 3 || b.hits.Load() != 0 {
		t.Errorf("hits a, b = %d, %d, want 3, 0", a.hits.Load(), b.hits.Load())
	}
}

func TestDoWhenNoneAnswers(t *testing.T) {
	down := serve(t, answer(http.StatusServiceUnavailable))
	if got := call(t, replicas.New([]string{refused(t), down.url}), nil, replicas.Limits{}); got != "503 Service Unavailable" {
		t.Errorf("Do = %q, want the last 503", got)
	}
	if got := call(t, replicas.New([]string{down.url, refused(t)}), nil, replicas.Limits{}); got != "error" {
		t.Errorf("Do = %q, want the last error", got)
	}
	if got := call(t, replicas.Parse(" , "), nil, replicas.Limits{}); got != "error" {
		t.Errorf("Do on no replica = %q, want an error", got)
	}
}

func TestDoStopsWithCtx(t *testing.T) {
	hung := serve(t, hang)
	ok := serve(t, answer(http.StatusOK))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := replicas.New([]string{hung.url, ok.url}).Do(ctx, nil, replicas.Limits{}, get("/"))
	if err != context.DeadlineExceeded || ok.hits.Load() != 0 {
		t.Errorf("Do = %v with %d calls to the next replica, want ctx's error and none", err, ok.hits.Load())
	}
}

// TestIdleStreamLeavesTheReplica: a stream that falls silent fails its
// read, and the next call starts at the next replica.
func TestIdleStreamLeavesTheReplica(t *testing.T) {
	silent := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, ": watching\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	ok := serve(t, answer(http.StatusOK))
	set := replicas.New([]string{silent.url, ok.url})
	res, err := set.Do(context.Background(), nil, replicas.Limits{Idle: 100 * time.Millisecond}, get("/watch"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil || !strings.HasPrefix(string(b), ": watching") {
		t.Fatalf("read %q, %v; want the first comment, then an error", b, err)
	}
	if got := set.URL(); got != ok.url {
		t.Errorf("URL() after the silence = %s, want %s", got, ok.url)
	}
}
