package scaler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/scaler"
	"github.com/stewardhq/steward/services/scaler/driver"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// contractDoc is api/openapi.json; every exchange of these tests is
// validated against it (openapi_test.go).
var contractDoc *openapitest.Contract

var (
	baseTransport = &http.Transport{MaxIdleConnsPerHost: 64}
	apiClient     *http.Client
	fuzzClient    *http.Client
)

func TestMain(m *testing.M) {
	var err error
	if contractDoc, err = loadContract(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiClient = &http.Client{Transport: contractDoc.Transport(baseTransport, true)}
	fuzzClient = &http.Client{Transport: contractDoc.Transport(baseTransport, false), Timeout: time.Minute}
	code := m.Run()
	removeDemoApp()
	baseTransport.CloseIdleConnections()
	if n := contractDoc.Validated(); n > 0 {
		fmt.Fprintf(os.Stderr, "openapi: %d exchanges and %d watch events validated against api/openapi.json\n", n, contractDoc.Events())
		if testing.Verbose() {
			for _, s := range contractDoc.Unexercised() {
				fmt.Fprintln(os.Stderr, "openapi: documented but not exercised:", s)
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(qlogtest.IgnoreNATSLeaks()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.DiscardHandler)

// plane is the rest of Steward a scaler needs: NATS, a registry and an
// election service, each real and on loopback.
type plane struct {
	nats     *qlogtest.Server
	registry string
	election string
	// config is where a canary's weights go.
	config string
}

func startPlane(t testing.TB) *plane {
	t.Helper()
	p := &plane{nats: qlogtest.StartServer(t)}
	p.registry = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := registry.Settings{AllowLocal: true, GuardMinInstances: 3, GuardShare: 0.5, CheckConcurrency: 16, PresenceInterval: 200 * time.Millisecond, Replicated: service.Replicated{ReplicaID: "registry-0", StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
		return registry.Serve(ctx, s, ln, p.nats.Connect(t), nil, quiet)
	})
	p.election = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := election.Settings{Replicated: service.Replicated{ReplicaID: "election-0", StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
		return election.Serve(ctx, s, ln, p.nats.Connect(t), nil, quiet)
	})
	p.config = webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 100_000, Process: service.Process{ShutdownTimeout: time.Second}}}
		return config.Serve(ctx, s, ln, p.nats.Connect(t), nil, quiet)
	})
	return p
}

// node is one scaler replica: its log, API and control loop, run as
// scaler.Serve runs them but with the loop's election traffic through a
// transport the test can cut (a partition: renewals fail, the lease
// lapses, and the replica is never told) and a hook before each driver
// call.
type node struct {
	t   testing.TB
	id  string
	url string
	rep *scaler.Replica
	// cut makes every election request of this node fail.
	cut atomic.Bool
	// pause, when set, is called before each driver call.
	pause atomic.Pointer[func(name string, token int64)]
	// rolloutPause, when set, is called before each rollout action.
	rolloutPause atomic.Pointer[func(name string, token int64, act ledger.Action)]

	stopOnce sync.Once
	stop     func()
}

type cuttable struct {
	n    *node
	base http.RoundTripper
}

func (c cuttable) RoundTrip(r *http.Request) (*http.Response, error) {
	if c.n.cut.Load() {
		return nil, errors.New("partitioned from the election service")
	}
	return c.base.RoundTrip(r)
}

type nodeOptions struct {
	voters   []string
	pool     *pgxpool.Pool
	keep     int
	leaseTTL time.Duration
	// newDriver replaces driver.New for the node's loop.
	newDriver func(driver.Spec, driver.Deps) (driver.Driver, error)
}

func startNode(t testing.TB, p *plane, id string, o nodeOptions) *node {
	t.Helper()
	n := &node{t: t, id: id}
	s := scaler.Settings{ElectionURLs: []string{p.election}, ConfigURLs: []string{p.config}, Election: "steward-scaler", LeaseTTL: o.leaseTTL, SampleTTL: 30 * time.Second, KeepDecisions: o.keep, Replicated: service.Replicated{ReplicaID: id, Voters: o.voters, StreamReplicas: 1, SnapshotEvery: 100_000, RegistryURL: p.registry, Process: service.Process{ShutdownTimeout: time.Second}}}
	if s.LeaseTTL == 0 {
		s.LeaseTTL = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc := p.nats.Connect(t)
	rep, err := scaler.Open(ctx, s, nc, o.pool, quiet)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	elections, err := sdk.New(strings.Join(s.ElectionURLs, ","), sdk.WithHTTPClient(&http.Client{Transport: cuttable{n, http.DefaultTransport}}))
	if err != nil {
		t.Fatal(err)
	}
	rep.Loop.Elections = elections.Elections()
	rep.Loop.BeforeScale = func(name string, token int64) {
		if f := n.pause.Load(); f != nil {
			(*f)(name, token)
		}
	}
	rep.Loop.BeforeRolloutAction = func(name string, token int64, act ledger.Action) {
		if f := n.rolloutPause.Load(); f != nil {
			(*f)(name, token, act)
		}
	}
	if o.newDriver != nil {
		rep.Loop.NewDriver = o.newDriver
	}
	n.rep = rep
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rep.Loop.Run(sctx) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.url = "http://" + ln.Addr().String()
	sub, err := rep.Subscribe(quiet)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer wg.Done()
		_ = web.Serve(sctx, ln, rep.Handler, quiet, 100*time.Millisecond, web.Limits{})
	}()
	n.stop = func() { stop(); wg.Wait(); _ = sub.Unsubscribe(); rep.Close() }
	t.Cleanup(n.kill)
	if _, fuzzing := t.(*testing.F); !fuzzing {
		contractDoc.ExpectValidated(t, ln.Addr().String())
	}
	return n
}

// kill stops the node: its loop (which resigns unless cut), its server
// and its log.
func (n *node) kill() { n.stopOnce.Do(n.stop) }

// fence returns the newest leadership the node's log has seen.
func (n *node) fence() (token int64, replica string) {
	_ = n.rep.Log.Read(context.Background(), qlog.Serializable, func(int64) error {
		f := n.rep.Machine.CurrentFence()
		token, replica = f.Token, f.Replica
		return nil
	})
	return token, replica
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(ctx context.Context, method, url, body string, hdr ...string) (resp, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return resp{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := apiClient.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	r := resp{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r, nil
}

func call(t testing.TB, method, url, body string, hdr ...string) resp {
	t.Helper()
	r, err := do(context.Background(), method, url, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func expect(t testing.TB, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// decode reads a response body into v.
func decode[T any](t testing.TB, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.raw), &v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, r.raw)
	}
	return v
}
