package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/config"
)

// clusterAnswer is GET /gateway/cluster as the web console reads it.
type clusterAnswer struct {
	Services []struct {
		Service string `json:"service"`
		Stream  *struct {
			Name                        string `json:"name"`
			Messages, Bytes             uint64
			FirstSequence, LastSequence uint64
			Replicas                    int    `json:"replicas"`
			Leader                      string `json:"leader"`
			Peers                       []any  `json:"peers"`
		} `json:"stream"`
		Replicas []struct {
			ID              string `json:"id"`
			URL             string `json:"url"`
			Health          string `json:"health"`
			Ready           bool   `json:"ready"`
			Voter           bool   `json:"voter"`
			Revision        int64  `json:"revision"`
			AppliedSequence uint64 `json:"appliedSequence"`
			Lag             uint64 `json:"lag"`
			Error           string `json:"error"`
		} `json:"replicas"`
		Error string `json:"error"`
	} `json:"services"`
}

// getJSON fetches url and decodes its JSON answer into v and into a map
// (to check the names of the fields); it returns how long it took.
func getJSON(t *testing.T, url string, v any) (map[string]any, time.Duration) {
	t.Helper()
	start := time.Now()
	code, body, _ := get(t, url)
	took := time.Since(start)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", url, code, body)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	_ = json.Unmarshal([]byte(body), &raw)
	return raw, took
}

// keys are the sorted field names of a JSON object.
func keys(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestGatewayCluster: GET /gateway/cluster lists each replicated service's
// replicas as the registry has them and as each says of itself: two real
// config replicas (a voter and an observer) after a write, the registry's
// own replica, a crashed replica whose registration lingers (nothing
// listens at its address) and a hung one (it accepts connections and
// never answers), which get an error without holding the answer past its
// bound; the scaler, with no replica registered, gets an error and no
// stream.
func TestGatewayCluster(t *testing.T) {
	p := startPlane(t)
	webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		s := config.Settings{RetainRevisions: 1000, Replicated: service.Replicated{ReplicaID: "config-1", Voters: []string{"config-0"},
			StreamReplicas: 1, SnapshotEvery: 100_000, RegistryURL: p.registry, Process: service.Process{ShutdownTimeout: time.Second}}}
		return config.Serve(ctx, s, ln, p.nats.Connect(t), nil, slog.New(slog.DiscardHandler))
	})
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		hung.Close()
		<-accepting
		for _, c := range held {
			c.Close()
		}
	})
	for id, ln := range map[string]net.Listener{"config-8": dead, "config-9": hung} {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		n, _ := strconv.Atoi(port)
		reg := api.Registration{Address: "127.0.0.1", Port: n}
		if id == "config-8" {
			// Its heartbeats stopped with it: critical after a second.
			reg.Check = &api.Check{}
			_ = reg.Check.FromTTLCheck(api.TTLCheck{Ttl: "1s"})
		}
		if _, err := p.reg.Register(context.Background(), "steward-config", id, reg); err != nil {
			t.Fatal(err)
		}
	}
	// A write to the config service (a route document): revision 1.
	putRoute(t, p, "cluster", `{"match":{"pathPrefix":"/c/"},"service":"web"}`)
	g := startGateway(t, p)

	var got clusterAnswer
	var raw map[string]any
	webtest.WaitFor(t, 20*time.Second, "both config replicas ready and caught up in /gateway/cluster", func() bool {
		got = clusterAnswer{}
		raw, _ = getJSON(t, g.url+"/gateway/cluster", &got)
		if len(got.Services) != 4 || len(got.Services[0].Replicas) != 4 {
			return false
		}
		c := got.Services[0].Replicas
		return c[0].Ready && c[1].Ready && c[1].Revision == c[0].Revision && c[0].Revision > 0 && c[2].Health == "critical"
	})
	var names []string
	for _, s := range got.Services {
		names = append(names, s.Service)
	}
	if want := []string{"config", "registry", "election", "scaler"}; !slices.Equal(names, want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
	svc := raw["services"].([]any)[0]
	if k, want := keys(svc), []string{"error", "replicas", "service", "stream"}; !slices.Equal(k, want) {
		t.Errorf("a service's fields = %v, want %v", k, want)
	}
	if k, want := keys(svc.(map[string]any)["stream"]), []string{"bytes", "firstSequence", "lastSequence", "leader", "messages", "name", "peers", "replicas"}; !slices.Equal(k, want) {
		t.Errorf("a stream's fields = %v, want %v", k, want)
	}
	if k, want := keys(svc.(map[string]any)["replicas"].([]any)[0]), []string{"appliedSequence", "error", "health", "id", "lag", "ready", "revision", "url", "voter"}; !slices.Equal(k, want) {
		t.Errorf("a replica's fields = %v, want %v", k, want)
	}

	cfg := got.Services[0]
	if cfg.Error != "" || cfg.Stream == nil || cfg.Stream.Name != "STEWARD_CONFIG" || cfg.Stream.Replicas != 1 ||
		cfg.Stream.LastSequence == 0 || cfg.Stream.Leader == "" || cfg.Stream.Peers == nil {
		t.Fatalf("config = error %q, stream %+v; want no error and STEWARD_CONFIG's state", cfg.Error, cfg.Stream)
	}
	for i, want := range []struct {
		id    string
		voter bool
	}{{"config-0", true}, {"config-1", false}} {
		r := cfg.Replicas[i]
		if r.ID != want.id || r.Health != "passing" || !r.Ready || r.Voter != want.voter || r.Error != "" ||
			r.AppliedSequence != cfg.Stream.LastSequence || r.Lag != 0 || !strings.HasPrefix(r.URL, "http://127.0.0.1:") {
			t.Errorf("replica %d = %+v, want %s passing, ready, voter %v, applied the stream's %d, no lag", i, r, want.id, want.voter, cfg.Stream.LastSequence)
		}
	}
	for _, r := range cfg.Replicas[2:] {
		inst, err := p.reg.Get(context.Background(), "steward-config", r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Error == "" || r.Ready || r.Health != string(inst.Status) || r.URL != "http://127.0.0.1:"+strconv.Itoa(inst.Port) ||
			(r.ID == "config-9") != (r.Health == "passing") {
			t.Errorf("unreachable replica = %+v, want an error, not ready, health %s and URL from the registry", r, inst.Status)
		}
	}
	if reg := got.Services[1]; reg.Error != "" || reg.Stream == nil || reg.Stream.Name != "STEWARD_REGISTRY" ||
		len(reg.Replicas) != 1 || reg.Replicas[0].ID != "registry-0" || !reg.Replicas[0].Ready || reg.Replicas[0].Revision == 0 {
		t.Errorf("registry = %+v, want registry-0 ready with a revision and STEWARD_REGISTRY", reg)
	}
	for _, s := range got.Services[2:] {
		if s.Error == "" || s.Stream != nil || s.Replicas == nil || len(s.Replicas) != 0 {
			t.Errorf("%s (nothing registered) = %+v, want an error, stream null, replicas []", s.Service, s)
		}
	}

	// Each call is bounded: the hung replica costs the answer its bound
	// (2 s), never more.
	_, took := getJSON(t, g.url+"/gateway/cluster", &clusterAnswer{})
	if took > 3*time.Second {
		t.Errorf("GET /gateway/cluster took %v with a hung replica, want about 2 s at most", took)
	}
}

// TestGatewayClusterSharesRounds: requests that come while a round of
// asking the replicas runs, or within a second after it, share it, so
// however many consoles poll, each replica is asked at most about once a
// second.
func TestGatewayClusterSharesRounds(t *testing.T) {
	p := startPlane(t)
	var asked atomic.Int32
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		asked.Add(1)
		time.Sleep(300 * time.Millisecond) // long enough for the requests below to overlap
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"service":"election","replica":"election-0","ready":true,"voter":true,"revision":5,`+
			`"appliedSequence":5,"streamLastSequence":5,"lag":0,"stream":null}`)
	}))
	t.Cleanup(replica.Close)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(replica.URL, "http://"))
	n, _ := strconv.Atoi(port)
	if _, err := p.reg.Register(context.Background(), "steward-election", "election-0", api.Registration{Address: "127.0.0.1", Port: n}); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, p)

	ready := func() bool {
		var got clusterAnswer
		getJSON(t, g.url+"/gateway/cluster", &got)
		e := got.Services[2]
		return e.Service == "election" && len(e.Replicas) == 1 && e.Replicas[0].Ready && e.Replicas[0].Revision == 5
	}
	var wg sync.WaitGroup
	var notReady atomic.Int32
	for range 8 {
		wg.Go(func() {
			if !ready() {
				notReady.Add(1)
			}
		})
	}
	wg.Wait()
	if notReady.Load() != 0 {
		t.Fatalf("%d of 8 answers did not show election-0 ready at revision 5", notReady.Load())
	}
	if !ready() {
		t.Fatal("the answer right after did not show election-0 ready at revision 5")
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("9 requests within a second asked the replica %d times, want 1", n)
	}
	time.Sleep(1100 * time.Millisecond) // past the round's freshness
	if !ready() {
		t.Fatal("the answer a second later did not show election-0 ready at revision 5")
	}
	if n := asked.Load(); n != 2 {
		t.Fatalf("a request a second later: the replica was asked %d times in all, want 2", n)
	}
}
