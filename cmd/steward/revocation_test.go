package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/devtest"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/scaler"
)

// revocationRoot is the bootstrap secret of TestRevocationReachesEveryReplica.
const revocationRoot = "stw_revocation-test-root-0123456789abcdefghij"

// serveFunc is a service's Serve.
type serveFunc func(context.Context, net.Listener, *nats.Conn, *pgxpool.Pool, *slog.Logger) error

// TestRevocationReachesEveryReplica: three replicas of every role, each
// on its own server of a three-node NATS cluster, STEWARD_AUTH on. A token
// works on all twelve; once its revocation is acknowledged, every replica
// refuses it within 1 s. The test logs each replica's latency.
func TestRevocationReachesEveryReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and twelve replicas")
	}
	cluster := qlogtest.StartCluster(t, 3)
	shared := func(name string, i int) service.Replicated {
		var s service.Replicated
		s.ReplicaID = fmt.Sprintf("%s-%d", name, i)
		s.Voters = []string{name + "-0", name + "-1", name + "-2"}
		s.StreamReplicas, s.SnapshotEvery, s.ShutdownTimeout = 3, 100_000, time.Second
		s.Auth, s.BootstrapToken, s.Token = true, revocationRoot, revocationRoot
		s.AuthVoters = []string{"config-0", "config-1", "config-2"}
		return s
	}
	// The replicas' logs are kept and shown if the test fails: a start
	// that stalled (twice in CI, cause not yet found) shows its last steps.
	// Registered first, the dump runs after every replica has stopped.
	logs := &devtest.Output{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the replicas' logs:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var urls []string
	// start serves replica i of a role on NATS server i.
	start := func(i int, serve serveFunc) {
		nc := cluster.Servers[i].Connect(t)
		urls = append(urls, webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
			return serve(ctx, ln, nc, nil, logger.With("server", i, "addr", ln.Addr().String()))
		}))
	}
	for i := range 3 {
		start(i, func(ctx context.Context, ln net.Listener, nc *nats.Conn, p *pgxpool.Pool, l *slog.Logger) error {
			s := config.Settings{RetainRevisions: 1000, Replicated: shared("config", i)}
			return config.Serve(ctx, s, ln, nc, p, l)
		})
		start(i, func(ctx context.Context, ln net.Listener, nc *nats.Conn, p *pgxpool.Pool, l *slog.Logger) error {
			s := registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 4, PresenceInterval: time.Second, Replicated: shared("registry", i)}
			return registry.Serve(ctx, s, ln, nc, p, l)
		})
		start(i, func(ctx context.Context, ln net.Listener, nc *nats.Conn, p *pgxpool.Pool, l *slog.Logger) error {
			return election.Serve(ctx, election.Settings{Replicated: shared("election", i)}, ln, nc, p, l)
		})
		start(i, func(ctx context.Context, ln net.Listener, nc *nats.Conn, p *pgxpool.Pool, l *slog.Logger) error {
			s := scaler.Settings{Election: "steward-scaler", LeaseTTL: 10 * time.Second, KeepDecisions: 10, SampleTTL: 30 * time.Second,
				ElectionURLs: []string{"http://127.0.0.1:1"}, Replicated: shared("scaler", i)}
			s.RegistryURL = "http://127.0.0.1:1"
			return scaler.Serve(ctx, s, ln, nc, p, l)
		})
	}
	status := func(url, secret string) int {
		req, _ := http.NewRequest("GET", url+"/v1/auth/whoami", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_ = res.Body.Close()
		return res.StatusCode
	}
	// On a time-out, say which replicas refuse and what their /readyz
	// answers: a start that stalls is a fault of its own (seen twice).
	defer func() {
		if !t.Failed() {
			return
		}
		for _, u := range urls {
			ready := "unreachable"
			if res, err := http.Get(u + "/readyz"); err == nil {
				b, _ := io.ReadAll(io.LimitReader(res.Body, 300))
				res.Body.Close()
				ready = fmt.Sprintf("%d %s", res.StatusCode, b)
			}
			t.Logf("%s: whoami %d, readyz %s", u, status(u, revocationRoot), ready)
		}
	}()
	webtest.WaitFor(t, 60*time.Second, "the root token works on every replica", func() bool {
		return !slices.ContainsFunc(urls, func(u string) bool { return status(u, revocationRoot) != http.StatusOK })
	})
	post := func(path, body string) map[string]any {
		req, _ := http.NewRequest("POST", urls[0]+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+revocationRoot)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("POST %s: %d %v", path, res.StatusCode, out)
		}
		return out
	}
	post("/v1/auth/roles", `{"name":"app","rules":[{"resource":"kv","prefix":"/app/","access":"read"}]}`)
	tok := post("/v1/auth/tokens", `{"description":"revoked","roles":["app"],"ttl":"1h"}`)
	secret, id := tok["secret"].(string), tok["id"].(string)
	webtest.WaitFor(t, 10*time.Second, "the new token works on every replica", func() bool {
		return !slices.ContainsFunc(urls, func(u string) bool { return status(u, secret) != http.StatusOK })
	})

	req, _ := http.NewRequest("DELETE", urls[0]+"/v1/auth/tokens/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+revocationRoot)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %v %v", res, err)
	}
	_ = res.Body.Close()
	acked := time.Now()
	latencies := make([]time.Duration, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			for time.Since(acked) < 5*time.Second {
				if status(u, secret) == http.StatusUnauthorized {
					latencies[i] = time.Since(acked)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			latencies[i] = -1
		})
	}
	wg.Wait()
	roles := []string{"config", "registry", "election", "scaler"}
	for i, d := range latencies {
		name := fmt.Sprintf("%s-%d", roles[i%4], i/4)
		if d < 0 || d > time.Second {
			t.Errorf("%s still accepted the revoked token %v after the revocation", name, d)
		}
		t.Logf("%s refuses the revoked token %v after the revocation was acknowledged", name, d)
	}
	slices.Sort(latencies)
	t.Logf("revocation latency over %d replicas: median %v, max %v", len(latencies), latencies[len(latencies)/2], latencies[len(latencies)-1])
}
