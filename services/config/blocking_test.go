package config_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestBlockingRead checks ?index=N&wait=D: it returns as soon as the key's
// modRevision passes N, and at the timeout with the current value.
func TestBlockingRead(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	first := expect(t, call(t, "PUT", n.url+"/v1/kv/b", `1`), 200)
	idx := first.num("modRevision")

	r := expect(t, call(t, "GET", fmt.Sprintf("%s/v1/kv/b?index=%d&wait=100ms", n.url, idx), ""), 200)
	if r.num("modRevision") != idx {
		t.Fatalf("timed-out blocking read = %v, want the current value", r.body)
	}
	if r := expect(t, call(t, "GET", fmt.Sprintf("%s/v1/kv/b?index=%d&wait=10s", n.url, idx-1), ""), 200); r.num("modRevision") != idx {
		t.Fatalf("blocking read below the current revision = %v, want an immediate answer", r.body)
	}

	got := make(chan resp, 1)
	go func() { got <- call(t, "GET", fmt.Sprintf("%s/v1/kv/b?index=%d&wait=30s", n.url, idx), "") }()
	// Unrelated writes must not wake it.
	expect(t, call(t, "PUT", n.url+"/v1/kv/other", `1`), 200)
	select {
	case r := <-got:
		t.Fatalf("blocking read returned before the key changed: %v", r.body)
	case <-time.After(200 * time.Millisecond):
	}
	second := expect(t, call(t, "PUT", n.url+"/v1/kv/b", `2`), 200)
	select {
	case r := <-got:
		if r.status != 200 || r.num("modRevision") != second.num("modRevision") || r.body["value"] != float64(2) {
			t.Fatalf("woken blocking read = %d %v, want the new value", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking read did not return 10s after the key changed")
	}
}
