package service_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// announcer records what the skeleton asked it to announce.
type announcer struct {
	url, service, id string
	ran              atomic.Bool
}

func (a *announcer) Announce(ctx context.Context, _ *slog.Logger) {
	a.ran.Store(true)
	<-ctx.Done()
}

// TestServeRunsTheSpec: Serve opens the log under the service's name
// with the default replica id, serves the Spec's handler with the
// skeleton's /readyz, registers the replica through the Announcer at the
// registry URL, runs the Spec's tasks, and stops them all when its
// context ends.
func TestServeRunsTheSpec(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	ann := &announcer{}
	var task atomic.Int32 // 1 running, 2 stopped
	var s service.Replicated
	s.StreamReplicas, s.RegistryURL, s.ShutdownTimeout = 1, "http://registry.test", time.Second
	spec := service.Spec[*qlogtest.Registers]{
		Name:    "skeleton",
		Machine: qlogtest.NewRegisters(),
		Handler: func(r *service.Replica[*qlogtest.Registers]) (http.Handler, error) {
			if r.Settings.ReplicaID != "skeleton-0" {
				t.Errorf("replica id = %q, want skeleton-0", r.Settings.ReplicaID)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
				if r.Log.Ready() != nil {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			})
			return mux, nil
		},
		Announcer: func(a service.Announcement) (service.Announcer, error) {
			ann.url, ann.service, ann.id = a.RegistryURL, a.Service, a.ID
			return ann, nil
		},
		Tasks: func(context.Context, *service.Replica[*qlogtest.Registers], net.Listener) ([]service.Task, error) {
			return []service.Task{func(ctx context.Context) {
				task.Store(1)
				<-ctx.Done()
				task.Store(2)
			}}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	url := webtest.ServeOn(t, func(_ context.Context, ln net.Listener) error {
		err := service.Serve(ctx, spec, s, ln, nc, nil, slog.New(slog.DiscardHandler))
		done <- err
		return err
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK && task.Load() == 1 && ann.ran.Load() {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready, task %d, announced %v after 30s", task.Load(), ann.ran.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ann.url != "http://registry.test" || ann.service != "steward-skeleton" || ann.id != "skeleton-0" {
		t.Errorf("announced %s/%s at %s, want steward-skeleton/skeleton-0 at http://registry.test", ann.service, ann.id, ann.url)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s of its context ending")
	}
	if task.Load() != 2 {
		t.Errorf("the Spec's task was not stopped before Serve returned")
	}
}

// TestServeExportsHTTP1Metrics: the listener's HTTP/1.1 counters are on
// the registry the replica's /metrics serves, whether the service named
// one in its options or left it to Secure.
func TestServeExportsHTTP1Metrics(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	for _, tc := range []struct {
		name string
		own  *prometheus.Registry
	}{
		{"Secure's registry", nil},
		{"the service's registry", prometheus.NewRegistry()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s service.Replicated
			s.StreamReplicas, s.ShutdownTimeout = 1, time.Second
			spec := service.Spec[*qlogtest.Registers]{
				Name:    "metered",
				Machine: qlogtest.NewRegisters(),
				Handler: func(r *service.Replica[*qlogtest.Registers]) (http.Handler, error) {
					return web.NewHandler(r.Secure(web.Options{Service: "metered", Registry: tc.own})), nil
				},
			}
			url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
				return service.Serve(ctx, spec, s, ln, nc, nil, slog.New(slog.DiscardHandler))
			})
			res, err := http.Get(url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			for _, want := range []string{"steward_http1_requests_total ", "steward_http1_connections_total ", `steward_http1_handoffs_total{reason="framing"} `} {
				if !strings.Contains(string(b), want) {
					t.Fatalf("/metrics lacks %s:\n%s", want, b)
				}
			}
		})
	}
}
