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
