package scaler_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/platform/auth/authhttp/authtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// TestLoopRecordsItsToken: with STEWARD_AUTH on, the decisions and
// actuations the control loop records carry the id of the token the
// scaler runs with (STEWARD_AUTH_TOKEN, here the bootstrap root token),
// resolved on the replica's own copy of the auth log, and not the id of
// the token that put the scaler; the decisions API and the watch show it.
func TestLoopRecordsItsToken(t *testing.T) {
	p := startPlane(t)
	rc := startReceiver(t)
	// The registry and the election service run with auth off: they
	// take the loop's calls whatever its token. The scaler votes on the
	// auth log itself.
	s := scaler.Settings{ElectionURLs: []string{p.election}, Election: "steward-scaler", LeaseTTL: 2 * time.Second, SampleTTL: 30 * time.Second,
		Replicated: service.Replicated{ReplicaID: "scaler-0", StreamReplicas: 1, SnapshotEvery: 100_000, RegistryURL: p.registry,
			Process: service.Process{ShutdownTimeout: time.Second}}}
	s.Auth, s.BootstrapToken, s.AuthVoters, s.Token = true, rootSecret, []string{"scaler-0"}, rootSecret
	url := webtest.ServeOn(t, func(ctx context.Context, ln net.Listener) error {
		return scaler.Serve(ctx, s, ln, p.nats.Connect(t), nil, quiet)
	})
	var rootID string
	webtest.WaitFor(t, 30*time.Second, "the root token accepted", func() bool {
		code, _, body := authtest.Call(t, "GET", url+"/v1/auth/whoami", rootSecret, "")
		rootID, _ = body["id"].(string)
		return code == http.StatusOK
	})
	writerID, writer := newToken(t, url, "web-writer", "scalers:web:write", "metrics::write")
	asRoot, asWriter := []string{"Authorization", "Bearer " + rootSecret}, []string{"Authorization", "Bearer " + writer}

	evs := openWatch(t, url+"/v1/scalers/web/watch", asRoot...)
	put := decode[ledger.Scaler](t, expect(t, call(t, "PUT", url+"/v1/scalers/web", specFor(rc, "web", ""), asWriter...), http.StatusCreated))
	expect(t, call(t, "POST", url+"/v1/metrics", `{"samples":[{"service":"web","instance":"gateway-test","name":"gateway_rps","value":45}]}`, asWriter...), http.StatusAccepted)

	// The put is the writer's; the decision and the actuation are the
	// loop's.
	until(t, evs, ledger.EventPut, func(ev gosse.Event) bool { return byOf(t, ev) == writerID })
	until(t, evs, ledger.EventDecision, func(ev gosse.Event) bool {
		var d ledger.Decision
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			t.Fatal(err)
		}
		if d.By != rootID {
			t.Fatalf("decision event by = %q, want the scaler's own token %q (the put's was %q)", d.By, rootID, writerID)
		}
		return d.DesiredReplicas == 5
	})
	act := until(t, evs, ledger.EventActuation, nil)
	if got := byOf(t, act); got != rootID {
		t.Fatalf("actuation event by = %q, want %q", got, rootID)
	}

	ds := decode[struct {
		Items []ledger.Decision `json:"items"`
	}](t, expect(t, call(t, "GET", url+"/v1/scalers/web/decisions?limit=1000", "", asRoot...), http.StatusOK))
	i := slices.IndexFunc(ds.Items, func(d ledger.Decision) bool { return d.DesiredReplicas == 5 && d.Actuation != nil })
	if i < 0 {
		t.Fatalf("no actuated decision to 5 among %+v", ds.Items)
	}
	for _, d := range ds.Items {
		if d.By != rootID || d.Generation != put.Generation {
			t.Fatalf("decision %d: by %q, generation %d, want by %q under generation %d", d.Revision, d.By, d.Generation, rootID, put.Generation)
		}
		if d.Actuation != nil && d.Actuation.By != rootID {
			t.Fatalf("actuation of decision %d: by %q, want %q", d.Revision, d.Actuation.By, rootID)
		}
	}
}

// byOf reads the by member of an event's data.
func byOf(t *testing.T, ev gosse.Event) string {
	t.Helper()
	var v struct {
		By string `json:"by"`
	}
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("%s event: %v", ev.Type, err)
	}
	return v.By
}
