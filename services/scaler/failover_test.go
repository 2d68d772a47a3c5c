package scaler_test

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/services/scaler/ledger"
)

// decisions returns a scaler's decisions, newest first.
func decisions(t testing.TB, url, name string) []ledger.Decision {
	t.Helper()
	return decode[struct {
		Items []ledger.Decision `json:"items"`
	}](t, expect(t, call(t, "GET", url+"/v1/scalers/"+name+"/decisions?limit=1000", ""), 200)).Items
}

// TestFailoverMidScale deposes the scaler leader between recording a
// scale-up and calling the driver (it is paused there and partitioned
// from the election service, so its lease lapses), lets another replica
// take over and scale, then lets the old leader go on. The old leader
// must not act: its term ended, so its driver call is cancelled before it
// leaves the process, and the log refuses to record its outcome. The
// receiver acts exactly once, under the new token. (A leader paused so
// completely that it does not even see its term end is the receiver's
// fence's to refuse, on the token it is sent: the driver tests cover
// that the token travels.)
func TestFailoverMidScale(t *testing.T) {
	p := startPlane(t)
	voters := []string{"scaler-0", "scaler-1", "scaler-2"}
	nodes := map[string]*node{}
	for _, id := range voters {
		nodes[id] = startNode(t, p, id, nodeOptions{voters: voters, leaseTTL: 2 * time.Second})
	}
	for _, n := range nodes { // every replica serves the API
		expect(t, call(t, "GET", n.url+"/v1/scalers", ""), 200)
	}
	rc := startReceiver(t)
	any := nodes["scaler-0"]
	expect(t, call(t, "PUT", any.url+"/v1/scalers/web", specFor(rc, "web", "")), 201)
	var old *node
	webtest.WaitFor(t, 15*time.Second, "a leader's first decision", func() bool {
		d := getScaler(t, any.url, "web").Status.LastDecision
		if d != nil {
			old = nodes[d.Leader]
		}
		return old != nil
	})
	oldToken, _ := old.fence()
	t.Logf("%s leads under token %d", old.id, oldToken)

	paused := make(chan int64, 1)
	release := make(chan struct{})
	var once sync.Once
	hook := func(name string, token int64) {
		once.Do(func() {
			paused <- token
			<-release
		})
	}
	old.pause.Store(&hook)
	push(t, any.url, "web", 45)
	select {
	case tok := <-paused:
		if tok != oldToken {
			t.Fatalf("paused under token %d, want %d", tok, oldToken)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the leader never got to its driver call")
	}
	// Partition the paused leader from the election service: its lease
	// lapses and another replica is elected.
	old.cut.Store(true)
	cutAt := time.Now()
	var next *node
	webtest.WaitFor(t, 20*time.Second, "a new leader to scale to 5", func() bool {
		r, calls := rc.snapshot()
		if r != 5 || len(calls) == 0 {
			return false
		}
		tok, rep := old.fence()
		next = nodes[rep]
		return tok > oldToken && next != nil && next != old
	})
	newToken, _ := next.fence()
	t.Logf("%s took over under token %d and scaled %s after the partition", next.id, newToken, time.Since(cutAt).Round(time.Millisecond))
	close(release)
	// Give the old leader time to try: its driver call and its actuate.
	time.Sleep(time.Second)
	if _, calls := rc.snapshot(); len(calls) != 1 || calls[0] != (webhookCall{Replicas: 5, Token: newToken, Accepted: true}) {
		t.Fatalf("receiver calls = %+v, want exactly one: 5 replicas under token %d", calls, newToken)
	}
	// The log took nothing from the old leader after the new one led: its
	// 1 → 5 decision is marked abandoned by the new term (so its scale
	// event does not count against the rate policies), not with the old
	// leader's outcome, and no decision of its comes after the new
	// leader's first.
	ds := decisions(t, next.url, "web")
	firstNew := slices.IndexFunc(ds, func(d ledger.Decision) bool { return d.Token == newToken })
	lastNew := -1
	for i, d := range ds {
		if d.Token == newToken {
			lastNew = i
		}
	}
	if firstNew < 0 {
		t.Fatal("no decision by the new leader")
	}
	for i, d := range ds[lastNew+1:] { // older than the new leader's first
		if d.Token != oldToken {
			t.Errorf("decision %d by token %d before the new leader's first, want %d", i, d.Token, oldToken)
		}
		if d.Token == oldToken && d.DesiredReplicas == 5 && (d.Actuation == nil || !strings.HasPrefix(d.Actuation.Error, "abandoned")) {
			t.Errorf("the old leader's 1 → 5 has actuation %+v, want it abandoned by the new term", d.Actuation)
		}
	}
	for _, d := range ds[:lastNew+1] {
		if d.Token != newToken {
			t.Errorf("decision at revision %d by token %d after the new leader took over", d.Revision, d.Token)
		}
	}
	if st := getScaler(t, next.url, "web").Status; st.CurrentReplicas != 5 || st.DriverError != "" {
		t.Errorf("status = %+v, want 5 replicas and no driver error", st)
	}
}

// TestNATSRestart: NATS (the log's order, the samples' fan-out, and the
// registry's and election's logs) goes away for a second and comes back.
// The scaler carries on: it scales down on a sample pushed after the
// restart, under whatever term it leads by then, and the log holds no
// decision from an older term after a newer one.
func TestNATSRestart(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	rc := startReceiver(t)
	expect(t, call(t, "PUT", n.url+"/v1/scalers/web", specFor(rc, "web", "")), 201)
	push(t, n.url, "web", 45)
	webtest.WaitFor(t, 15*time.Second, "a scale to 5", func() bool { r, _ := rc.snapshot(); return r == 5 })

	p.nats.Stop()
	time.Sleep(time.Second)
	p.nats.Start()

	// Pushes during recovery may find no NATS yet (503); keep pushing.
	webtest.WaitFor(t, 60*time.Second, "a scale down to 2 after the restart", func() bool {
		if r, err := do(t.Context(), "POST", n.url+"/v1/metrics",
			`{"samples":[{"service":"web","instance":"gateway-test","name":"gateway_rps","value":15}]}`); err != nil || r.status != 202 {
			return false
		}
		r, _ := rc.snapshot()
		return r == 2
	})
	ds := decisions(t, n.url, "web")
	for i := 1; i < len(ds); i++ { // newest first: tokens never rise going back
		if ds[i].Token > ds[i-1].Token {
			t.Fatalf("decision %d (token %d) follows one with token %d", ds[i-1].Revision, ds[i-1].Token, ds[i].Token)
		}
	}
	if _, calls := rc.snapshot(); len(calls) < 2 || calls[len(calls)-1].Replicas != 2 || !calls[len(calls)-1].Accepted {
		t.Fatalf("receiver calls = %+v, want the last one accepted at 2", calls)
	}
}
