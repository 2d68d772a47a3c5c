package rollout_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/devtest"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/services/scaler"
	"github.com/stewardhq/steward/services/scaler/metrics"
	"github.com/stewardhq/steward/services/scaler/rollout"
)

var (
	buildOnce sync.Once
	steward   string
	buildErr  error
)

// build builds the steward program once for the package's tests.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rollout-steward-")
		if err != nil {
			buildErr = err
			return
		}
		steward, buildErr = devtest.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return steward
}

// version starts an instance of version that answers its version, and
// 500 to every failEvery-th request (0: never).
func version(t *testing.T, v string, failEvery int64) (host string, port int) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failEvery > 0 && n.Add(1)%failEvery == 0 {
			http.Error(w, v+" failed", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, v)
	}))
	t.Cleanup(srv.Close)
	h, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ = strconv.Atoi(p)
	return h, port
}

// tally counts what the test's requests got: answers by version, and the
// 500s (only v2 fails).
type tally struct{ v1, v2, failed int }

func (a tally) add(b tally) tally { return tally{a.v1 + b.v1, a.v2 + b.v2, a.failed + b.failed} }

// send makes n requests to /s/canary/ through the gateway.
func send(t *testing.T, gateway string, n int) tally {
	t.Helper()
	var got tally
	for range n {
		one, status := get(t, gateway)
		if one == (tally{}) {
			t.Fatalf("GET /s/canary/hello = %d", status)
		}
		got = got.add(one)
	}
	return got
}

// get makes one request to /s/canary/ and counts its answer; nothing for
// an answer from neither version (the status says which).
func get(t *testing.T, gateway string) (tally, int) {
	t.Helper()
	resp, err := http.Get(gateway + "/s/canary/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusInternalServerError && strings.HasPrefix(string(body), "v2 failed"):
		return tally{v2: 1, failed: 1}, resp.StatusCode
	case resp.StatusCode == http.StatusOK && string(body) == "v1":
		return tally{v1: 1}, resp.StatusCode
	case resp.StatusCode == http.StatusOK && string(body) == "v2":
		return tally{v2: 1}, resp.StatusCode
	}
	return tally{}, resp.StatusCode
}

// natsURL asks the embedded NATS server's monitor for its client port.
func natsURL(t *testing.T, monitor string) string {
	t.Helper()
	base := strings.TrimSuffix(monitor, "/healthz")
	resp, err := http.Get(base + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var varz struct {
		Port int `json:"port"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(varz.Port))
}

// waitSplit waits until the gateway has the rollout route with want as
// its split ("" for none: the route gone).
func waitSplit(t *testing.T, c *sdk.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := c.Routes().Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, r := range st.Routes {
			if r.Name == rollout.RouteName("canary") && r.Split != nil {
				for _, s := range *r.Split {
					got += fmt.Sprintf("%s:%d ", s.Version, s.Weight)
				}
			}
		}
		if len(st.Rejected) > 0 {
			t.Fatalf("the gateway rejected %+v", st.Rejected)
		}
		if strings.TrimSpace(got) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway's split = %q after 10s, want %q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWeightsThroughGateway runs steward dev, registers a v1 and a v2
// instance of canary (v2 answering 500 to one request in 20), and sets
// weights as a rollout does: at 90/10 about a tenth of the traffic goes
// to v2, at 100/0 none, and with the split cleared both versions again.
// Meanwhile the gateway's per-version samples, as the scaler accepts and
// hands them to its replicas, count exactly what the test's requests
// got. A write with a deposed leader's fence is refused.
func TestWeightsThroughGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("runs steward dev")
	}
	d := devtest.Start(t, build(t), "STEWARD_GATEWAY_SIGNALS_EVERY=200ms")
	devtest.WaitReady(t, d.Config+"/readyz", d.Registry+"/readyz", d.Election+"/readyz", d.Scaler+"/readyz", d.Gateway+"/readyz")
	ctx := t.Context()
	c, err := sdk.New(d.Gateway)
	if err != nil {
		t.Fatal(err)
	}

	// The samples the scaler accepted (POST /v1/metrics validates them),
	// into a store as every scaler replica keeps them.
	nc, err := nats.Connect(natsURL(t, d.Monitor))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store := metrics.NewStore(time.Minute)
	sub, err := nc.Subscribe(scaler.SamplesSubject, func(m *nats.Msg) {
		var p metrics.Push
		if err := json.Unmarshal(m.Data, &p); err == nil {
			store.Add(time.Now(), p.Samples...)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	for _, in := range []struct {
		id, version string
		failEvery   int64
	}{{"canary-1", "v1", 0}, {"canary-2", "v2", 20}} {
		host, port := version(t, in.version, in.failEvery)
		v := in.version
		if _, err := c.Services().Register(ctx, "canary", in.id, api.Registration{Address: host, Port: port, Version: &v}); err != nil {
			t.Fatal(err)
		}
	}
	// Until the gateway follows canary and both instances: 404 and 503
	// reach no instance and count nothing.
	var total tally
	deadline := time.Now().Add(10 * time.Second)
	for total.v1 == 0 || total.v2 == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the gateway reached %+v, want both versions", total)
		}
		one, status := get(t, d.Gateway)
		if one == (tally{}) && status != http.StatusNotFound && status != http.StatusServiceUnavailable {
			t.Fatalf("GET /s/canary/hello = %d before the split", status)
		}
		total = total.add(one)
		if one == (tally{}) {
			time.Sleep(50 * time.Millisecond)
		}
	}

	lead, err := c.Elections().Campaign(ctx, "rollout-test", "a", sdk.CampaignOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := rollout.SetWeights(ctx, c.KV(), "canary", map[string]int{"v1": 90, "v2": 10}, lead.Fence()); err != nil {
		t.Fatal(err)
	}
	waitSplit(t, c, "v1:90 v2:10")
	tenth := send(t, d.Gateway, 2000)
	total = total.add(tenth)
	// 200 expected; the binomial's standard deviation is 13.4: 5 of them
	// either way.
	if tenth.v2 < 133 || tenth.v2 > 267 {
		t.Errorf("at 90/10, v2 served %d of 2000, want about 200", tenth.v2)
	}
	// Writing the same weights again writes nothing.
	before, err := c.KV().Get(ctx, sdk.RoutesPrefix+rollout.RouteName("canary"))
	if err != nil {
		t.Fatal(err)
	}
	if err := rollout.SetWeights(ctx, c.KV(), "canary", map[string]int{"v2": 10, "v1": 90}, lead.Fence()); err != nil {
		t.Fatal(err)
	}
	if after, err := c.KV().Get(ctx, sdk.RoutesPrefix+rollout.RouteName("canary")); err != nil || after.ModRevision != before.ModRevision {
		t.Errorf("the same weights again moved the document from revision %d to %+v, %v", before.ModRevision, after, err)
	}

	if err := rollout.SetWeights(ctx, c.KV(), "canary", map[string]int{"v1": 100, "v2": 0}, lead.Fence()); err != nil {
		t.Fatal(err)
	}
	waitSplit(t, c, "v1:100 v2:0")
	none := send(t, d.Gateway, 500)
	total = total.add(none)
	if none.v2 != 0 {
		t.Errorf("at 100/0, v2 served %d of 500, want none", none.v2)
	}

	if err := rollout.ClearWeights(ctx, c.KV(), "canary", lead.Fence()); err != nil {
		t.Fatal(err)
	}
	waitSplit(t, c, "")
	if err := rollout.ClearWeights(ctx, c.KV(), "canary", lead.Fence()); err != nil {
		t.Errorf("ClearWeights without a split = %v, want nil", err)
	}
	both := send(t, d.Gateway, 200)
	total = total.add(both)
	if both.v1 == 0 || both.v2 == 0 {
		t.Errorf("without a split, 200 requests went %+v, want both versions", both)
	}

	// Once the next leader has written, the deposed one's writes are
	// refused and change nothing.
	old := lead.Fence()
	if err := lead.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	lead2, err := c.Elections().Campaign(ctx, "rollout-test", "b", sdk.CampaignOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lead2.Resign(ctx) }()
	if err := rollout.SetWeights(ctx, c.KV(), "canary", map[string]int{"v1": 50, "v2": 50}, lead2.Fence()); err != nil {
		t.Fatalf("SetWeights with the new leader's fence = %v", err)
	}
	if err := rollout.SetWeights(ctx, c.KV(), "canary", map[string]int{"v2": 100}, old); !errors.Is(err, sdk.ErrConflict) {
		t.Errorf("SetWeights with a deposed leader's fence = %v, want %v", err, sdk.ErrConflict)
	}
	if err := rollout.ClearWeights(ctx, c.KV(), "canary", old); !errors.Is(err, sdk.ErrConflict) {
		t.Errorf("ClearWeights with a deposed leader's fence = %v, want %v", err, sdk.ErrConflict)
	}
	waitSplit(t, c, "v1:50 v2:50")

	// Every attempt reached the scaler: the counts since each series
	// began (within the window) are the test's own.
	deadline = time.Now().Add(15 * time.Second)
	for {
		got := store.Versions("canary", metrics.MaxVersionWindow, time.Now())
		v1, v2 := got["v1"], got["v2"]
		if v1.Requests == int64(total.v1) && v2.Requests == int64(total.v2) && v1.Failures == 0 && v2.Failures == int64(total.failed) {
			if total.failed == 0 || v2.ErrorRate < 0.02 || v2.ErrorRate > 0.08 {
				t.Errorf("v2 failed %d of %d (%g), want about 5%%", total.failed, total.v2, v2.ErrorRate)
			}
			if v1.P99 <= 0 || v2.P99 <= 0 {
				t.Errorf("p99 v1 %s, v2 %s; want both measured", v1.P99.Std(), v2.P99.Std())
			}
			t.Logf("sent %+v; the scaler measured v1 %+v, v2 %+v", total, v1, v2)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scaler's samples measure v1 %+v, v2 %+v; want v1 %d requests, no failure, v2 %d requests, %d failures",
				v1, v2, total.v1, total.v2, total.failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
