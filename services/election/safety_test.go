package election_test

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/services/config"
)

// safetyDuration is shortened from the 60 s so that the package's
// tests stay quick under -race on two cores; -safety-duration=60s runs the
// issue's length with the same faults, spread out.
var safetyDuration = flag.Duration("safety-duration", 24*time.Second, "how long TestSafetyUnderFaults runs its candidates")

// pausable is a candidate's transport that a test can stop, as a paused
// process sends nothing: requests block until it resumes.
type pausable struct {
	base http.RoundTripper
	mu   sync.Mutex
	gate chan struct{} // non-nil while paused
}

func (p *pausable) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	gate := p.gate
	p.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return p.base.RoundTrip(req)
}

func (p *pausable) pause(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.gate == nil {
		p.gate = make(chan struct{})
	} else if !on && p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// interval is one leadership as its holder saw it.
type interval struct {
	candidate  string
	token      int64
	start, end time.Time
	why        error // why it ended
}

// fencedWrite is one write a leader made to the config service.
type fencedWrite struct {
	candidate string
	token     int64
	status    int
	at        time.Time
	stale     bool // made right after a pause longer than the TTL, without looking at Done
}

// record is what the candidates saw, shared.
type record struct {
	mu        sync.Mutex
	intervals []interval
	writes    []fencedWrite
	leader    atomic.Pointer[candidate] // the candidate that last won, for the fault schedule
}

type candidate struct {
	id       string
	tr       *pausable
	c        sdk.Elections
	pauseReq atomic.Bool // the schedule asks it to pause before its next write
}

// TestSafetyUnderFaults runs five candidates against three voters while
// the leader is paused past its TTL (twice), voters are killed and
// restarted, and NATS restarts. Every leadership interval and every
// fenced write to a real config service is recorded; so is the
// election's watch. It checks DESIGN.md's guarantee 5: tokens strictly
// increase, no two holders share a token, at most one leader per term
// (the watch shows every leadership end before the next begins), and a
// write fenced with a superseded token is rejected by the config service,
// whose accepted writes carry non-decreasing tokens.
func TestSafetyUnderFaults(t *testing.T) {
	const ttl = time.Second
	const name = "safety"
	srv := qlogtest.StartServer(t)
	voters := []string{"election-0", "election-1", "election-2"}
	var nodes []*node
	for _, id := range voters {
		nodes = append(nodes, startNode(t, srv.Connect(t), id, voters))
	}
	configURL := startConfig(t)
	plain := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer plain.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), *safetyDuration)
	defer cancel()
	rec := &record{}
	var observed []sseEvent
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); observed = observe(t, ctx, nodes[0].url+"/v1/elections/"+name+"/watch") }()

	for i := range 5 {
		id := fmt.Sprintf("cand-%d", i)
		// The candidates' exchanges (the Go client's) are validated too.
		base := &http.Transport{}
		tr := &pausable{base: contractDoc.Transport(base, true)}
		urls := []string{nodes[i%3].url, nodes[(i+1)%3].url, nodes[(i+2)%3].url}
		c, err := sdk.New(strings.Join(urls, ","), sdk.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		cd := &candidate{id: id, tr: tr, c: c.Elections()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer base.CloseIdleConnections()
			runCandidate(ctx, t, cd, name, ttl, configURL, plain, rec, uint64(i))
		}()
	}

	// The faults, spread over the run.
	at := func(frac float64) time.Duration { return time.Duration(frac * float64(*safetyDuration)) }
	start := time.Now()
	sleepUntil := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(start.Add(d))):
			return true
		}
	}
	pauseLeader := func() {
		if c := rec.leader.Load(); c != nil {
			t.Logf("%s: pausing the leader %s for %s", time.Since(start).Round(time.Millisecond), c.id, 2500*time.Millisecond)
			c.pauseReq.Store(true)
		}
	}
	schedule := []struct {
		at   float64
		what string
		do   func()
	}{
		{0.12, "pause the leader", pauseLeader},
		{0.30, "kill election-1", nodes[1].kill},
		{0.38, "restart election-1", nodes[1].start},
		{0.50, "restart NATS", func() { srv.Stop(); time.Sleep(1500 * time.Millisecond); srv.Start() }},
		{0.70, "pause the leader", pauseLeader},
		{0.80, "kill election-2", nodes[2].kill},
		{0.88, "restart election-2", nodes[2].start},
	}
	for _, s := range schedule {
		if !sleepUntil(at(s.at)) {
			break
		}
		t.Logf("%s: %s", time.Since(start).Round(time.Millisecond), s.what)
		s.do()
	}
	<-ctx.Done()
	wg.Wait()

	checkSafety(t, rec, observed, configURL, plain, name)
}

// runCandidate campaigns, writes to the config service fenced with its
// token every 100 ms while it leads, resigns after a random while, and
// campaigns again, until ctx ends. Asked to pause, it does what a process
// paused by the scheduler or the collector does: after it looked at Done,
// it stops (its renewals too) for longer than the TTL, then writes with
// the token it had.
func runCandidate(ctx context.Context, t *testing.T, cd *candidate, name string, ttl time.Duration, configURL string, plain *http.Client, rec *record, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 77))
	for ctx.Err() == nil {
		lctx, resign := context.WithCancel(ctx)
		l, err := cd.c.Campaign(lctx, name, cd.id, sdk.CampaignOptions{TTL: ttl})
		if err != nil {
			resign()
			if ctx.Err() == nil {
				t.Errorf("%s: campaign: %v", cd.id, err)
			}
			return
		}
		iv := interval{candidate: cd.id, token: l.Token(), start: time.Now()}
		rec.leader.Store(cd)
		holdFor := time.After(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
	lead:
		for {
			select {
			case <-l.Done():
				break lead
			case <-holdFor:
				break lead
			default:
			}
			stale := cd.pauseReq.Swap(false)
			if stale {
				cd.tr.pause(true)
				time.Sleep(ttl * 5 / 2)
				cd.tr.pause(false)
			}
			status := fencedPut(ctx, plain, configURL, name, cd.id, l.Token())
			rec.mu.Lock()
			rec.writes = append(rec.writes, fencedWrite{candidate: cd.id, token: l.Token(), status: status, at: time.Now(), stale: stale})
			rec.mu.Unlock()
			select {
			case <-l.Done():
				break lead
			case <-time.After(100 * time.Millisecond):
			}
		}
		resign() // resigns, unless the leadership ended already
		<-l.Done()
		iv.end, iv.why = time.Now(), l.Err()
		rec.mu.Lock()
		rec.intervals = append(rec.intervals, iv)
		rec.mu.Unlock()
	}
}

// fencedPut writes the leader's token to the config service under its
// fence and returns the status (0 when it could not be sent).
func fencedPut(ctx context.Context, hc *http.Client, configURL, name, who string, token int64) int {
	body := fmt.Sprintf(`{"token":%d,"by":%q}`, token, who)
	req, err := http.NewRequestWithContext(ctx, "PUT", configURL+"/v1/kv/safety/leader", strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("X-Steward-Fence", fmt.Sprintf("%s:%d", name, token))
	res, err := hc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// startConfig runs a real config replica on its own NATS server (which
// the election's NATS restart does not touch) and returns its URL.
func startConfig(t *testing.T) string {
	t.Helper()
	nc := qlogtest.StartServer(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := config.Open(ctx, config.Settings{RetainRevisions: 100_000, Replicated: service.Replicated{ReplicaID: "config-0", StreamReplicas: 1, SnapshotEvery: 100_000}}, nc, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(rep.Handler)
	t.Cleanup(func() { hs.Close(); rep.Close() })
	return hs.URL
}

// observe follows an election's watch until ctx ends, resuming with
// Last-Event-ID whenever the stream breaks, and returns every event.
func observe(t *testing.T, ctx context.Context, url string) []sseEvent {
	var out []sseEvent
	last := ""
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		res, err := apiClient.Do(req)
		if err != nil || res.StatusCode != 200 {
			if err == nil {
				res.Body.Close()
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		br := bufio.NewReader(res.Body)
		for {
			ev, err := nextEvent(br)
			if err != nil || ev.event == "error" || ev.event == "shutdown" {
				break // the stream ended: resume
			}
			out = append(out, ev)
			if ev.id != "" {
				last = ev.id
			}
		}
		res.Body.Close()
	}
	return out
}

func checkSafety(t *testing.T, rec *record, observed []sseEvent, configURL string, plain *http.Client, name string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()

	// Every leadership interval, by its holder. A holder whose lease
	// lapsed by its own clock but not yet in the service's, and that
	// campaigned again, gets the same leadership back (same token): that is
	// one leadership seen twice, and it is merged here.
	sort.Slice(rec.intervals, func(i, j int) bool { return rec.intervals[i].start.Before(rec.intervals[j].start) })
	var merged []interval
	for _, iv := range rec.intervals {
		if n := len(merged); n > 0 && merged[n-1].token == iv.token && merged[n-1].candidate == iv.candidate {
			t.Logf("%s got token %d back by campaigning again", iv.candidate, iv.token)
			merged[n-1].end, merged[n-1].why = iv.end, iv.why
			continue
		}
		merged = append(merged, iv)
	}
	rec.intervals = merged
	holder := map[int64]string{}
	for _, iv := range rec.intervals {
		if other, ok := holder[iv.token]; ok {
			t.Errorf("token %d was held by %s and by %s", iv.token, other, iv.candidate)
		}
		holder[iv.token] = iv.candidate
	}
	for i := 1; i < len(rec.intervals); i++ {
		a, b := rec.intervals[i-1], rec.intervals[i]
		if b.token <= a.token {
			t.Errorf("%s won token %d at %s after %s won token %d at %s: tokens must increase", b.candidate, b.token, b.start.Format("15:04:05.000"), a.candidate, a.token, a.start.Format("15:04:05.000"))
		}
	}
	t.Logf("%d leaderships:", len(rec.intervals))
	for _, iv := range rec.intervals {
		t.Logf("  token %5d  %s  %s → %s (%s)  ended: %v", iv.token, iv.candidate, iv.start.Format("15:04:05.000"), iv.end.Format("15:04:05.000"), iv.end.Sub(iv.start).Round(time.Millisecond), iv.why)
	}
	if len(rec.intervals) < 8 {
		t.Errorf("only %d leaderships in the run: too few to say anything", len(rec.intervals))
	}

	// The watch: every leadership ends before the next begins, and the
	// service's tokens are the holders' (the watch may start after the
	// first win and miss what a replica never held, never more).
	var cur *struct {
		Leader string
		Token  int64
	}
	lastToken, elected := int64(0), 0
	for _, ev := range observed {
		var l struct {
			Leader string
			Token  int64
		}
		if err := json.Unmarshal([]byte(ev.data), &l); err != nil {
			continue // vacant
		}
		switch ev.event {
		case "current":
			cur, lastToken = &l, l.Token
		case "elected":
			if cur != nil {
				t.Errorf("watch: %s elected with token %d while %s (token %d) led", l.Leader, l.Token, cur.Leader, cur.Token)
			}
			if l.Token <= lastToken {
				t.Errorf("watch: token %d after %d", l.Token, lastToken)
			}
			if h, ok := holder[l.Token]; ok && h != l.Leader {
				t.Errorf("watch: token %d elected %s, but %s held it", l.Token, l.Leader, h)
			}
			cur, lastToken = &l, l.Token
			elected++
		case "resigned", "expired":
			if cur == nil || cur.Token != l.Token {
				t.Errorf("watch: %s of token %d, but %v led", ev.event, l.Token, cur)
			}
			cur = nil
		}
	}
	if elected < len(rec.intervals)/2 {
		t.Errorf("the watch saw %d elections, the candidates %d leaderships", elected, len(rec.intervals))
	}

	// Fencing: a write made after a pause past the TTL, with a token that
	// a newer leader already wrote with, is refused.
	staleRefused := 0
	for _, w := range rec.writes {
		if !w.stale {
			continue
		}
		superseded := slices.ContainsFunc(rec.writes, func(o fencedWrite) bool {
			return o.status == 200 && o.token > w.token && o.at.Before(w.at)
		})
		t.Logf("write by %s with token %d after its pause: %d (superseded: %v)", w.candidate, w.token, w.status, superseded)
		switch {
		case superseded && w.status != http.StatusConflict:
			t.Errorf("a write fenced with superseded token %d was answered %d, want 409", w.token, w.status)
		case superseded:
			staleRefused++
		}
	}
	if staleRefused == 0 {
		t.Error("no write fenced with a superseded token was made and refused: the pause did not exercise fencing")
	}
	// The config service's history: accepted tokens never go down.
	res, err := plain.Get(configURL + "/v1/history?key=/safety/leader&limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h struct {
		Items []struct {
			ModRevision int64 `json:"modRevision"`
			Value       struct {
				Token int64  `json:"token"`
				By    string `json:"by"`
			} `json:"value"`
		} `json:"items"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	accepted, unknown := 0, 0
	for _, w := range rec.writes {
		switch w.status {
		case 200:
			accepted++
		case 0:
			unknown++ // not answered: it may have been applied
		}
	}
	if accepted == 0 || len(h.Items) < accepted || len(h.Items) > accepted+unknown {
		t.Errorf("config history holds %d writes; the candidates had %d accepted and %d unanswered", len(h.Items), accepted, unknown)
	}
	for i := len(h.Items) - 1; i > 0; i-- { // oldest first
		older, newer := h.Items[i], h.Items[i-1]
		if newer.Value.Token < older.Value.Token {
			t.Errorf("config accepted token %d (by %s) after token %d (by %s)", newer.Value.Token, newer.Value.By, older.Value.Token, older.Value.By)
		}
	}
	for _, it := range h.Items {
		if holder[it.Value.Token] != it.Value.By {
			t.Errorf("config holds a write by %s with token %d, which %q held", it.Value.By, it.Value.Token, holder[it.Value.Token])
		}
	}
	t.Logf("%d fenced writes accepted, %d refused after a pause; the watch saw %d elections", accepted, staleRefused, elected)
}
