package scaler_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/services/scaler/ledger"
)

// openWatch opens a scaler's watch (through the validating client) and
// returns its events as they come.
func openWatch(t *testing.T, url string, hdr ...string) <-chan gosse.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := apiClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		cancel()
		t.Fatalf("GET %s = %d", url, res.StatusCode)
	}
	out := make(chan gosse.Event, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for ev, err := range gosse.Read(res.Body, nil) {
			if err != nil {
				return
			}
			out <- ev
		}
	}()
	t.Cleanup(func() { cancel(); res.Body.Close(); <-done })
	return out
}

// until reads events until one of type typ satisfies ok.
func until(t *testing.T, evs <-chan gosse.Event, typ string, ok func(gosse.Event) bool) gosse.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, open := <-evs:
			if !open {
				t.Fatalf("the stream ended before a %s event", typ)
			}
			if ev.Type == typ && (ok == nil || ok(ev)) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 15s", typ)
		}
	}
}

// TestWatch follows a scaler as `kubectl get hpa -w` follows an HPA: it
// starts absent, then is put, decides, scales (the actuation names its
// decision), and a stream resumed with Last-Event-ID after the decision
// sees the actuation and the deletion.
func TestWatch(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	for _, bad := range []string{"/v1/scalers/web/watch?fromRevision=x", "/v1/scalers/web/watch?fromRevision=0", "/v1/scalers/w@b/watch"} {
		if r := call(t, "GET", n.url+bad, ""); r.status != 400 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("GET %s = %d %s, want a 400 problem", bad, r.status, r.raw)
		}
	}
	evs := openWatch(t, n.url+"/v1/scalers/web/watch")
	if ev := until(t, evs, "absent", nil); ev.Data != `{"name":"web"}` {
		t.Fatalf("first event data = %s, want the name", ev.Data)
	}
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), http.StatusCreated)
	put := until(t, evs, "put", nil)
	var sc ledger.Scaler
	if err := json.Unmarshal([]byte(put.Data), &sc); err != nil || sc.Generation != 1 || sc.Spec.Driver.Secret != "" {
		t.Fatalf("put event = %s, want generation 1 without the secret", put.Data)
	}
	push(t, n.url, "web", 45)
	var scaled ledger.Decision
	dec := until(t, evs, "decision", func(ev gosse.Event) bool {
		return json.Unmarshal([]byte(ev.Data), &scaled) == nil && scaled.DesiredReplicas == 5
	})
	// Resume right after the decision: the actuation comes next.
	resumed := openWatch(t, n.url+"/v1/scalers/web/watch", "Last-Event-ID", dec.LastEventID)
	act := until(t, resumed, "actuation", nil)
	var a ledger.ActuationEvent
	if err := json.Unmarshal([]byte(act.Data), &a); err != nil || a.DecisionRevision != scaled.Revision || a.Result == nil || a.Result.Replicas != 5 {
		t.Fatalf("actuation event = %s, want the driver's 5 for decision %d", act.Data, scaled.Revision)
	}
	if rev, _ := strconv.ParseInt(act.LastEventID, 10, 64); rev <= scaled.Revision {
		t.Fatalf("actuation id %s not after the decision's %d", act.LastEventID, scaled.Revision)
	}
	expect(t, call(t, "DELETE", n.url+"/v1/scalers/web", ""), 200)
	if ev := until(t, resumed, "deleted", nil); ev.Data != `{"name":"web"}` {
		t.Fatalf("deleted event data = %s, want the name", ev.Data)
	}
}
