package registry_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestFaults: no acknowledged registration is lost when a voter dies, when
// NATS restarts, or across the dead voter's return.
func TestFaults(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"registry-0", "registry-1", "registry-2"}
	conns := map[string]*nats.Conn{}
	nodes := map[string]*node{}
	for _, id := range voters {
		conns[id] = srv.Connect(t)
		nodes[id] = startNode(t, conns[id], testSettings(id, voters))
	}
	acked := 0
	register := func(via string) {
		t.Helper()
		expect(t, call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/i%d", nodes[via].url, acked),
			`{"address":"10.0.0.1","port":80}`), 200)
		acked++
	}
	for range 5 {
		register("registry-0")
	}
	// A voter dies: two of three still make a quorum.
	nodes["registry-2"].stop()
	for range 5 {
		register("registry-1")
	}
	// NATS restarts under the two survivors.
	srv.Stop()
	srv.Start()
	webtest.WaitFor(t, 30*time.Second, "a registration after the NATS restart", func() bool {
		r := call(t, "PUT", fmt.Sprintf("%s/v1/services/web/instances/i%d", nodes["registry-0"].url, acked), `{"address":"10.0.0.1","port":80}`)
		return r.status == 200
	})
	acked++
	// The dead voter comes back and catches up.
	nodes["registry-2"] = startNode(t, srv.Connect(t), testSettings("registry-2", voters))
	for _, id := range voters {
		webtest.WaitFor(t, 30*time.Second, id+" holding every acknowledged registration", func() bool {
			return len(instances(t, nodes[id].url, "web", "?consistency=serializable")) == acked
		})
	}
}

// TestIdempotentRetry: a registration retried with the same
// Idempotency-Key takes effect once.
func TestIdempotentRetry(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	first := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`, "Idempotency-Key", "k1"), 200)
	expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.2","port":80}`), 200)
	retry := expect(t, call(t, "PUT", n.url+"/v1/services/web/instances/a", `{"address":"10.0.0.1","port":80}`, "Idempotency-Key", "k1"), 200)
	if retry.header.Get("X-Steward-Revision") != first.header.Get("X-Steward-Revision") {
		t.Fatalf("retry revision = %s, want the first's %s", retry.header.Get("X-Steward-Revision"), first.header.Get("X-Steward-Revision"))
	}
	if got := expect(t, call(t, "GET", n.url+"/v1/services/web/instances/a", ""), 200).instance(t).Address; got != "10.0.0.2" {
		t.Fatalf("address = %s: the retry took effect again over the later write", got)
	}
}
