package config_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestThreeReplicas writes through each of three voters and reads every
// write back, linearizably (the default), through each of the others.
func TestThreeReplicas(t *testing.T) {
	srv := qlogtest.StartServer(t)
	voters := []string{"config-0", "config-1", "config-2"}
	var nodes []*node
	for _, id := range voters {
		nodes = append(nodes, startNode(t, srv.Connect(t), id, voters, 1000))
	}
	var wg sync.WaitGroup
	for i, w := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				key := fmt.Sprintf("/r/%d/%d", i, j)
				if r := call(t, "PUT", w.url+"/v1/kv"+key, fmt.Sprint(j)); r.status != 200 {
					t.Errorf("PUT %s via %d = %d", key, i, r.status)
					return
				}
				for k, rd := range nodes {
					if k == i {
						continue
					}
					r := call(t, "GET", rd.url+"/v1/kv"+key, "")
					if r.status != 200 || r.body["value"] != float64(j) {
						t.Errorf("GET %s via %d after PUT via %d = %d %v: not linearizable", key, k, i, r.status, r.body)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestWatchBelowCompactionIs410 starts a replica from a snapshot, so that
// it holds no events before the snapshot, and asks it for an older start.
func TestWatchBelowCompactionIs410(t *testing.T) {
	srv := qlogtest.StartServer(t)
	a := startNode(t, srv.Connect(t), "config-0", []string{"config-0"}, 1000)
	for i := range 5 {
		expect(t, call(t, "PUT", a.url+"/v1/kv/k", fmt.Sprint(i)), 200)
	}
	if _, err := a.rep.Log.TakeSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, "PUT", a.url+"/v1/kv/k", `9`), 200)
	// An observer restores the snapshot at revision 5 and replays revision 6.
	b := startNode(t, srv.Connect(t), "observer-0", []string{"config-0"}, 1000)
	r := expect(t, call(t, "GET", b.url+"/v1/watch?key=/k&fromRevision=2", ""), 410)
	if r.num("compactRevision") != 6 {
		t.Fatalf("410 = %v, want compactRevision 6", r.body)
	}
	r = expect(t, call(t, "GET", b.url+"/v1/kv/k?revision=5", ""), 200)
	if r.body["value"] != float64(4) {
		t.Fatalf("GET at revision 5 from the restored replica = %v", r.body)
	}
}
