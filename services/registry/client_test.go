package registry_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/registry/client"
)

// TestClientWatchSurvivesRestart: the Go client's watch reconnects to a
// restarted registry and carries on with the whole set.
func TestClientWatchSurvivesRestart(t *testing.T) {
	nc := qlogtest.StartServer(t).Connect(t)
	n := startNode(t, nc, testSettings("registry-0", nil))
	addr := strings.TrimPrefix(n.url, "http://")
	c := &client.Client{BaseURL: n.url}
	var mu sync.Mutex
	var sets []string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Watch(ctx, "web", client.Query{Status: catalog.Passing}, func(set catalog.InstanceSet) {
			mu.Lock()
			sets = append(sets, ids(set.Instances))
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(sets) == 0 {
			return "<none>"
		}
		return sets[len(sets)-1]
	}
	if _, err := c.Register(context.Background(), "web", "a", catalog.Registration{Address: "10.0.0.1", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 5*time.Second, "the set with a", func() bool { return last() == "a" })
	n.stop()
	startNodeAt(t, nc, testSettings("registry-0", nil), addr)
	if _, err := c.Register(context.Background(), "web", "b", catalog.Registration{Address: "10.0.0.2", Port: 80}); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 10*time.Second, "the set with a and b after the restart", func() bool { return last() == "a,b" })
	list, idx, err := c.Instances(context.Background(), "web", client.Query{})
	if err != nil || ids(list) != "a,b" || idx == 0 {
		t.Fatalf("Instances = %s, %d, %v", ids(list), idx, err)
	}
}

// TestAnnounce: a process stays registered while it runs and leaves when
// it stops.
func TestAnnounce(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	c := &client.Client{BaseURL: n.url}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Announce(ctx, "worker", "w-1", catalog.Registration{Address: "10.0.0.1", Port: 80}, slog.New(slog.DiscardHandler))
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

// TestClientFailsOverBetweenReplicas: a client given every replica keeps
// registering, heartbeating, answering blocking queries and delivering
// its watch when the replica it was using stops.
func TestClientFailsOverBetweenReplicas(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"registry-0", "registry-1", "registry-2"}
	var nodes []*node
	for _, id := range voters {
		nodes = append(nodes, startNode(t, srv.Connect(t), testSettings(id, voters)))
	}
	c := &client.Client{BaseURL: nodes[0].url + "," + nodes[1].url + "," + nodes[2].url}
	ctx := context.Background()
	var mu sync.Mutex
	last := "<none>"
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Watch(wctx, "web", client.Query{Status: catalog.Passing}, func(set catalog.InstanceSet) {
			mu.Lock()
			last = ids(set.Instances)
			mu.Unlock()
		})
	}()
	defer func() { cancel(); <-done }()
	seen := func(want string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return last == want }
	}
	ttl := catalog.Registration{Address: "10.0.0.1", Port: 80, Check: &catalog.Check{TTL: catalog.Duration(3 * time.Second)}}
	if _, err := c.Register(ctx, "web", "a", ttl); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, "web", "a"); err != nil {
		t.Fatal(err)
	}
	webtest.WaitFor(t, 5*time.Second, "the watch delivering a", seen("a"))
	_, index, err := c.Services(ctx, client.Query{})
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
			_, at, err := c.Services(ctx, client.Query{Index: index, Wait: 30 * time.Second})
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
	if _, err := c.Register(ctx, "web", "b", catalog.Registration{Address: "10.0.0.2", Port: 80}); err != nil {
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
	list, _, err := c.Instances(ctx, "web", client.Query{Status: catalog.Passing})
	if err != nil || ids(list) != "a,b" {
		t.Fatalf("Instances(passing) = %s, %v; want a,b", ids(list), err)
	}
}
