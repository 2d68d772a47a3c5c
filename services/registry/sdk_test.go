package registry_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// The Go SDK's registry calls (sdk.Services) against real registry
// replicas: a watch across a restart, Announce, and failover between
// replicas of every kind of call.

// sdkClient is an SDK client of the registry replicas at urls (comma-
// separated), its exchanges validated against the API document.
func sdkClient(t *testing.T, urls string) sdk.Services {
	t.Helper()
	// Not httpClient itself: its timeout would cut the watch.
	c, err := sdk.New(urls, sdk.WithHTTPClient(&http.Client{Transport: httpClient.Transport}))
	if err != nil {
		t.Fatal(err)
	}
	return c.Services()
}

// watchIDs follows service's passing instances through c and keeps the
// ids of the last set seen, until the test ends; last reads them.
func watchIDs(t *testing.T, c sdk.Services, service string) (last func() string) {
	var mu sync.Mutex
	seen := "<none>"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for set, err := range c.Watch(ctx, service, sdk.Query{Status: api.Passing}) {
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("watch of %s: %v", service, err)
				}
				return
			}
			mu.Lock()
			seen = apiIDs(set.Instances)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func apiIDs(list []api.Instance) string {
	var out []string
	for _, inst := range list {
		out = append(out, inst.Id)
	}
	return strings.Join(out, ",")
}

// TestSDKWatchSurvivesRestart: the SDK's watch reconnects to a restarted
// registry and carries on with the whole set.
func TestSDKWatchSurvivesRestart(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	n := startNode(t, nc, testSettings("registry-0", nil))
	addr := strings.TrimPrefix(n.url, "http://")
	c := sdkClient(t, n.url)
	last := watchIDs(t, c, "web")
	if _, err := c.Register(context.Background(), "web", "a", api.Registration{Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 5*time.Second, "the set with a", func() bool { return last() == "a" })
	n.stop()
	startNodeAt(t, nc, testSettings("registry-0", nil), addr)
	if _, err := c.Register(context.Background(), "web", "b", api.Registration{Address: "10.0.0.2", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "the set with a and b after the restart", func() bool { return last() == "a,b" })
	list, idx, err := c.Instances(context.Background(), "web", sdk.Query{})
	if err != nil || apiIDs(list) != "a,b" || idx == 0 {
		t.Fatalf("Instances = %s, %d, %v", apiIDs(list), idx, err)
	}
}

// TestSDKAnnounce: a process stays registered while it runs and leaves
// when it stops.
func TestSDKAnnounce(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	c := sdkClient(t, n.url)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Announce(ctx, "worker", "w-1", api.Registration{Address: "10.0.0.1", Port: 80}, sdk.AnnounceOptions{Logger: slog.New(slog.DiscardHandler)})
	}()
	webtest.WaitFor(t, 5*time.Second, "announced", func() bool { return statusOf(t, n.url, "worker", "w-1") == catalog.Passing })
	// Deregistered behind its back (an operator, or deregisterAfter
	// after an outage): it registers again.
	expect(t, call(t, "DELETE", n.url+"/v1/services/worker/instances/w-1", ""), 200)
	webtest.WaitFor(t, 10*time.Second, "announced again", func() bool { return statusOf(t, n.url, "worker", "w-1") == catalog.Passing })
	cancel()
	<-done
	if s := statusOf(t, n.url, "worker", "w-1"); s != "" {
		t.Fatalf("after the announcer stopped: %q, want deregistered", s)
	}
}

// TestSDKFailsOverBetweenReplicas: a client given every replica keeps
// registering, heartbeating, answering blocking queries and delivering
// its watch when the replica it was using stops.
func TestSDKFailsOverBetweenReplicas(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"registry-0", "registry-1", "registry-2"}
	var nodes []*node
	for _, id := range voters {
		nodes = append(nodes, startNode(t, srv.Connect(t), testSettings(id, voters)))
	}
	c := sdkClient(t, nodes[0].url+","+nodes[1].url+","+nodes[2].url)
	ctx := context.Background()
	last := watchIDs(t, c, "web")
	seen := func(want string) func() bool { return func() bool { return last() == want } }
	ttl := api.Registration{Address: "10.0.0.1", Port: 80, Check: &api.Check{}}
	if err := ttl.Check.FromTTLCheck(api.TTLCheck{Ttl: "3s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Register(ctx, "web", "a", ttl); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, "web", "a"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 5*time.Second, "the watch delivering a", seen("a"))
	_, index, err := c.ListAfter(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	// A blocking query waits on the first replica as it stops (which
	// may answer it early, unchanged); it goes on on another from the
	// same index.
	type answer struct {
		index int64
		err   error
	}
	blocked := make(chan answer, 1)
	go func() {
		for {
			_, at, err := c.ListAfter(ctx, index, 30*time.Second)
			if err != nil || at > index {
				blocked <- answer{at, err}
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the query is held by registry-0
	nodes[0].stop()

	// Every call goes on through the other replicas: heartbeats keep a
	// passing past its TTL, a new registration reaches the watch.
	for range 3 {
		if err := c.Heartbeat(ctx, "web", "a"); err != nil {
			t.Fatalf("Heartbeat with registry-0 stopped: %v", err)
		}
		time.Sleep(time.Second)
	}
	if _, err := c.Register(ctx, "web", "b", api.Registration{Address: "10.0.0.2", Port: 80}); err != nil {
		t.Fatalf("Register with registry-0 stopped: %v", err)
	}
	webtest.WaitFor(t, 10*time.Second, "the watch delivering a,b from another replica", seen("a,b"))
	select {
	case a := <-blocked:
		if a.err != nil || a.index <= index {
			t.Fatalf("blocking query = index %d, %v; want past %d", a.index, a.err, index)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the blocking query did not answer after the registration")
	}
	list, _, err := c.Instances(ctx, "web", sdk.Query{Status: api.Passing})
	if err != nil || apiIDs(list) != "a,b" {
		t.Fatalf("Instances(passing) = %s, %v; want a,b", apiIDs(list), err)
	}
}
