package election_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

func campaignBody(candidate, ttl string) string {
	return fmt.Sprintf(`{"candidate":%q,"ttl":%q}`, candidate, ttl)
}

func tokenBody(candidate string, token int64) string {
	return fmt.Sprintf(`{"candidate":%q,"token":%d}`, candidate, token)
}

func revision(t testing.TB, r resp) int64 {
	t.Helper()
	rev, err := strconv.ParseInt(r.header.Get("X-Steward-Revision"), 10, 64)
	if err != nil {
		t.Fatalf("X-Steward-Revision %q", r.header.Get("X-Steward-Revision"))
	}
	return rev
}

func TestCampaignRenewResign(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	u := n.url + "/v1/elections/db-primary"

	expect(t, call(t, "GET", u, ""), 404)
	r := expect(t, call(t, "POST", u+"/campaign", `{"candidate":"c1","ttl":"10s","value":{"addr":"10.0.0.1:5432"}}`), 200)
	tok := r.num("token")
	if r.str("leader") != "c1" || r.num("term") != 1 || tok != revision(t, r) || r.str("ttl") != "10s" {
		t.Fatalf("campaign = %s (revision %d), want c1 in term 1 with the win's revision as token", r.raw, revision(t, r))
	}
	if v, _ := json.Marshal(r.body["value"]); string(v) != `{"addr":"10.0.0.1:5432"}` {
		t.Fatalf("value = %s", v)
	}
	exp1, _ := time.Parse(time.RFC3339Nano, r.str("expiresAt"))

	r = expect(t, call(t, "POST", u+"/campaign", campaignBody("c2", "10s")), 409)
	if l, _ := r.body["leader"].(map[string]any); l["leader"] != "c1" || l["token"] != float64(tok) {
		t.Fatalf("409 = %s, want the leader c1", r.raw)
	}
	expect(t, call(t, "POST", u+"/renew", tokenBody("c1", tok+1)), 409)
	expect(t, call(t, "POST", u+"/renew", tokenBody("c2", tok)), 409)
	r = expect(t, call(t, "POST", u+"/renew", tokenBody("c1", tok)), 200)
	if exp2, _ := time.Parse(time.RFC3339Nano, r.str("expiresAt")); !exp2.After(exp1) || r.num("token") != tok {
		t.Fatalf("renew = %s, want expiresAt after %s and the same token", r.raw, exp1)
	}
	// A campaign by the leader (a retry whose answer was lost) answers the
	// same leadership.
	if r := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "10s")), 200); r.num("token") != tok {
		t.Fatalf("re-campaign = %s, want token %d", r.raw, tok)
	}
	r = expect(t, call(t, "GET", u, ""), 200)
	if r.str("leader") != "c1" || r.num("token") != tok || r.num("queue") != 0 {
		t.Fatalf("GET = %s", r.raw)
	}
	expect(t, call(t, "GET", u+"?consistency=serializable", ""), 200)
	expect(t, call(t, "POST", n.url+"/v1/elections/other/campaign", campaignBody("c9", "1h")), 200)
	r = expect(t, call(t, "GET", n.url+"/v1/elections?limit=1", ""), 200)
	if items := r.body["items"].([]any); len(items) != 1 || r.body["next"] != "db-primary" {
		t.Fatalf("list page 1 = %s", r.raw)
	}
	r = expect(t, call(t, "GET", n.url+"/v1/elections?after=db-primary", ""), 200)
	if items := r.body["items"].([]any); len(items) != 1 || items[0].(map[string]any)["name"] != "other" || r.body["next"] != nil {
		t.Fatalf("list page 2 = %s", r.raw)
	}

	expect(t, call(t, "POST", u+"/resign", tokenBody("c1", tok+1)), 409)
	r = expect(t, call(t, "POST", u+"/resign", tokenBody("c1", tok)), 200)
	if r.num("token") != tok || r.body["next"] != nil {
		t.Fatalf("resign = %s", r.raw)
	}
	expect(t, call(t, "POST", u+"/resign", tokenBody("c1", tok)), 409)
	expect(t, call(t, "POST", u+"/renew", tokenBody("c1", tok)), 409)
	expect(t, call(t, "GET", u, ""), 404)
	r = expect(t, call(t, "POST", u+"/campaign", campaignBody("c2", "10s")), 200)
	if r.num("term") != 2 || r.num("token") <= tok {
		t.Fatalf("second leadership = %s, want term 2 and a token above %d", r.raw, tok)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queueLen(t testing.TB, url string) int64 {
	return expect(t, call(t, "GET", url, ""), 200).num("queue")
}

type campaignOutcome struct {
	r  resp
	at time.Time
}

// waitingCampaign campaigns with ?wait= in the background.
func waitingCampaign(t testing.TB, ctx context.Context, url, candidate, ttl, wait string) <-chan campaignOutcome {
	out := make(chan campaignOutcome, 1)
	go func() {
		r, err := do(ctx, "POST", url+"/campaign?wait="+wait, campaignBody(candidate, ttl))
		if err != nil && ctx.Err() == nil {
			t.Errorf("waiting campaign of %s: %v", candidate, err)
		}
		out <- campaignOutcome{r, time.Now()}
	}()
	return out
}

// threeVoters starts three voting replicas on one NATS server.
func threeVoters(t *testing.T) (*node, *node, *node) {
	srv := qlogtest.StartServer(t)
	voters := []string{"election-0", "election-1", "election-2"}
	return startNode(t, srv.Connect(t), voters[0], voters),
		startNode(t, srv.Connect(t), voters[1], voters),
		startNode(t, srv.Connect(t), voters[2], voters)
}

// TestResignHandsOverInTheSameRevision: a waiting candidate leads from
// the revision of the resignation, on another replica: in the log it leads
// at the very moment the leader resigned. The bound (within 100
// ms) is that; how soon the waiter's client hears of it is measured by
// the benchmark, and only a generous 500 ms is asserted here, since a
// loaded machine under the race detector stalls for longer than 100 ms.
func TestResignHandsOverInTheSameRevision(t *testing.T) {
	a, b, c := threeVoters(t)
	ua, ub := a.url+"/v1/elections/handover", b.url+"/v1/elections/handover"

	tok := expect(t, call(t, "POST", ua+"/campaign", campaignBody("c1", "30s")), 200).num("token")
	won := waitingCampaign(t, context.Background(), ub, "c2", "30s", "30s")
	waitFor(t, "c2 waits in line", func() bool { return queueLen(t, ua) == 1 })

	sent := time.Now()
	r := expect(t, call(t, "POST", ua+"/resign", tokenBody("c1", tok)), 200)
	next, _ := r.body["next"].(map[string]any)
	if next["leader"] != "c2" || next["token"] != float64(revision(t, r)) {
		t.Fatalf("resign = %s at revision %d, want c2 leading from that revision", r.raw, revision(t, r))
	}
	w := <-won
	expect(t, w.r, 200)
	if w.r.str("leader") != "c2" || w.r.num("token") != revision(t, r) {
		t.Fatalf("waiting campaign = %s, want c2 with token %d", w.r.raw, revision(t, r))
	}
	if l := expect(t, call(t, "GET", c.url+"/v1/elections/handover", ""), 200); l.num("token") != w.r.num("token") {
		t.Fatalf("the third replica reads %s", l.raw)
	}
	if took := w.at.Sub(sent); took > 500*time.Millisecond {
		t.Fatalf("the waiting candidate heard of its win %s after the resignation was sent", took)
	} else {
		t.Logf("handover heard %s after the resignation was sent", took)
	}
}

// TestCrashedLeaderIsReplaced: a leader that stops renewing (crashed) is
// replaced by the waiting candidate within TTL + 1 s of its last renewal,
// with nothing but the expiry proposer acting. The bound is checked on the
// log's clock (the time of the entry that elected the waiter minus that
// of the last renewal, both from the leaderships' expiresAt), which is
// when the service decided; the waiter's client hearing of it is only
// required within a generous TTL + 3 s of wall-clock time.
func TestCrashedLeaderIsReplaced(t *testing.T) {
	a, b, c := threeVoters(t)
	ua, ub := a.url+"/v1/elections/crash", b.url+"/v1/elections/crash"

	tok := expect(t, call(t, "POST", ua+"/campaign", campaignBody("c1", "1s")), 200).num("token")
	won := waitingCampaign(t, context.Background(), ub, "c2", "1s", "30s")
	waitFor(t, "c2 waits in line", func() bool { return queueLen(t, ua) == 1 })
	sent := time.Now()
	renewed := expect(t, call(t, "POST", ua+"/renew", tokenBody("c1", tok)), 200)
	// c1 crashes here: it never renews again.
	w := <-won
	expect(t, w.r, 200)
	if w.r.str("leader") != "c2" || w.r.num("token") <= tok {
		t.Fatalf("waiting campaign = %s", w.r.raw)
	}
	// Both leases are 1s, so the difference of the expiries is the time
	// from the last renewal to the election.
	lastRenewal, _ := time.Parse(time.RFC3339Nano, renewed.str("expiresAt"))
	elected, _ := time.Parse(time.RFC3339Nano, w.r.str("expiresAt"))
	if took := elected.Sub(lastRenewal); took > 2*time.Second || took < time.Second {
		t.Fatalf("the waiting candidate was elected %s after the crashed leader's last renewal (log time); want TTL to TTL + 1s = 2s", took)
	} else {
		t.Logf("elected %s after the last renewal in log time; heard %s after it was sent", took, w.at.Sub(sent))
	}
	if heard := w.at.Sub(sent); heard > 4*time.Second {
		t.Fatalf("the waiting candidate heard of its win %s after the last renewal was sent", heard)
	}
	expect(t, call(t, "POST", ua+"/renew", tokenBody("c1", tok)), 409)
	if l := expect(t, call(t, "GET", c.url+"/v1/elections/crash", ""), 200); l.str("leader") != "c2" {
		t.Fatalf("the third replica reads %s", l.raw)
	}
}

func TestQueueIsFIFOAndWaitsEnd(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	u := n.url + "/v1/elections/fifo"
	tok := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "30s")), 200).num("token")

	// A wait that ends leaves the line and answers 409 with the leader.
	r := expect(t, call(t, "POST", u+"/campaign?wait=300ms", campaignBody("quitter", "30s")), 409)
	if l, _ := r.body["leader"].(map[string]any); l["leader"] != "c1" {
		t.Fatalf("409 = %s", r.raw)
	}
	if q := queueLen(t, u); q != 0 {
		t.Fatalf("queue = %d after the wait ended, want 0", q)
	}
	// A waiter whose client goes away leaves the line.
	ctx, cancel := context.WithCancel(context.Background())
	gone := waitingCampaign(t, ctx, u, "gone", "30s", "1m")
	waitFor(t, "gone waits", func() bool { return queueLen(t, u) == 1 })
	cancel()
	<-gone
	waitFor(t, "gone leaves the line", func() bool { return queueLen(t, u) == 0 })

	var outcomes []<-chan campaignOutcome
	for i, c := range []string{"c2", "c3", "c4"} {
		outcomes = append(outcomes, waitingCampaign(t, context.Background(), u, c, "30s", "30s"))
		waitFor(t, c+" waits", func() bool { return queueLen(t, u) == int64(i+1) })
	}
	for i, c := range []string{"c2", "c3", "c4"} {
		r := expect(t, call(t, "POST", u+"/resign", tokenBody(fmt.Sprintf("c%d", i+1), tok)), 200)
		w := <-outcomes[i]
		if expect(t, w.r, 200).str("leader") != c || w.r.num("token") != revision(t, r) {
			t.Fatalf("after resignation %d: %s won (%s), want %s in arrival order", i+1, w.r.str("leader"), w.r.raw, c)
		}
		tok = w.r.num("token")
	}
}

func TestWatch(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	u := n.url + "/v1/elections/w"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(hdr ...string) *bufio.Reader {
		req, _ := http.NewRequestWithContext(ctx, "GET", u+"/watch", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := apiClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if res.StatusCode != 200 {
			t.Fatalf("watch = %d", res.StatusCode)
		}
		return bufio.NewReader(res.Body)
	}
	body := open()
	if ev := readEvents(t, body, 1)[0]; ev.event != "vacant" || ev.data != `{"name":"w"}` {
		t.Fatalf("first event = %+v, want vacant", ev)
	}
	tok := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "1s")), 200).num("token")
	won := waitingCampaign(t, context.Background(), u, "c2", "1s", "30s")
	waitFor(t, "c2 waits", func() bool { return queueLen(t, u) == 1 })
	rr := expect(t, call(t, "POST", u+"/resign", tokenBody("c1", tok)), 200)
	tok2 := (<-won).r.num("token")
	// c2 never renews: its lease expires.
	evs := readEvents(t, body, 4)
	want := []struct{ event, leader, id string }{
		{"elected", "c1", fmt.Sprint(tok)},
		{"resigned", "c1", ""},
		{"elected", "c2", fmt.Sprint(revision(t, rr))},
		{"expired", "c2", ""},
	}
	for i, w := range want {
		var l struct{ Leader string }
		_ = json.Unmarshal([]byte(evs[i].data), &l)
		if evs[i].event != w.event || l.Leader != w.leader || (w.id != "" && evs[i].id != w.id) {
			t.Fatalf("event %d = %+v, want %s of %s with id %q", i, evs[i], w.event, w.leader, w.id)
		}
	}
	if id, _ := strconv.ParseInt(evs[3].id, 10, 64); id <= tok2 {
		t.Fatalf("expired event id %q, want a revision after %d", evs[3].id, tok2)
	}
	// A stream that starts while someone leads begins with current; one
	// resumed after c1's win gets the rest again, and no current event.
	expect(t, call(t, "POST", u+"/campaign", campaignBody("c3", "30s")), 200)
	if ev := readEvents(t, open(), 1)[0]; ev.event != "current" || !strings.Contains(ev.data, `"leader":"c3"`) {
		t.Fatalf("first event = %+v, want current with c3", ev)
	}
	resumed := readEvents(t, open("Last-Event-ID", fmt.Sprint(tok)), 4)
	if resumed[0].event != "resigned" || resumed[1].event != "elected" || resumed[2].event != "expired" || resumed[3].event != "elected" {
		t.Fatalf("resumed events = %+v", resumed)
	}
}

// TestRestartKeepsLeadership: a leadership survives the
// replica's restart from a snapshot plus the log tail, across a NATS
// restart, and the term count goes on.
func TestRestartKeepsLeadership(t *testing.T) {
	srv := qlogtest.StartServer(t)
	n := startNode(t, srv.Connect(t), "election-0", nil)
	u := n.url + "/v1/elections/durable"
	first := expect(t, call(t, "POST", u+"/campaign", campaignBody("c1", "1h")), 200).num("token")
	if _, err := n.rep.Log.TakeSnapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	expect(t, call(t, "POST", u+"/resign", tokenBody("c1", first)), 200)
	r := expect(t, call(t, "POST", u+"/campaign", `{"candidate":"c2","ttl":"1h","value":[1,2]}`), 200)
	n.kill()
	srv.Stop()
	srv.Start()
	n.start()
	got := expect(t, call(t, "GET", u, ""), 200)
	if got.raw != r.raw {
		t.Fatalf("after the restart GET = %s, want %s", got.raw, r.raw)
	}
	if next := expect(t, call(t, "POST", u+"/resign", tokenBody("c2", r.num("token"))), 200); next.body["next"] != nil {
		t.Fatalf("resign = %s", next.raw)
	}
	if r3 := expect(t, call(t, "POST", u+"/campaign", campaignBody("c3", "1h")), 200); r3.num("term") != 3 || r3.num("token") <= r.num("token") {
		t.Fatalf("third leadership = %s", r3.raw)
	}
}
