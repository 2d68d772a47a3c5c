package election_test

// The Go SDK's campaigns (sdk.Elections.Campaign) against a real election
// replica: renewal, resignation, waiting in line, and a leader cut off
// from the service.

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/sdk"
)

// newCandidate is an SDK client of the election service at url, as one
// campaigning process has it, with a transport the test can pause (as if
// the process were paused or its network gone); its exchanges are
// validated against the API document.
func newCandidate(t *testing.T, url string) (sdk.Elections, *pausable) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ct := &pausable{base: contractDoc.Transport(tr, true)}
	c, err := sdk.New(url, sdk.WithHTTPClient(&http.Client{Transport: ct}))
	if err != nil {
		t.Fatal(err)
	}
	return c.Elections(), ct
}

func TestCampaignRenewsUntilCancelledThenResigns(t *testing.T) {
	url := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil).url
	c, _ := newCandidate(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	// A TTL of 2s leaves a renewal 1.3s to be confirmed, which a loaded
	// machine under the race detector needs; 1s (the service's shortest)
	// is exercised by the other tests.
	l, err := c.Campaign(ctx, "renew", "c1", sdk.CampaignOptions{TTL: 2 * time.Second, Value: map[string]string{"addr": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Token() <= 0 || l.Term() != 1 || l.Fence() == "" || string(l.Value()) != `{"addr":"x"}` {
		t.Fatalf("leadership = token %d term %d fence %q value %s", l.Token(), l.Term(), l.Fence(), l.Value())
	}
	// Longer than the TTL: only renewals keep it.
	select {
	case <-l.Done():
		t.Fatalf("leadership ended while renewing: %v", l.Err())
	case <-time.After(3 * time.Second):
	}
	if !l.Deadline().After(time.Now()) {
		t.Fatalf("deadline %s is past while renewing", l.Deadline())
	}
	// Another candidate that does not wait is refused.
	other, _ := newCandidate(t, url)
	if _, err := other.Campaign(context.Background(), "renew", "c2", sdk.CampaignOptions{TTL: time.Second, NoWait: true}); !errors.Is(err, sdk.ErrTaken) {
		t.Fatalf("campaign of c2 = %v, want ErrTaken", err)
	}
	cancel()
	<-l.Done()
	if !errors.Is(l.Err(), sdk.ErrResigned) {
		t.Fatalf("Err = %v, want ErrResigned", l.Err())
	}
	// Resigned, not lapsed: c2 leads at once.
	start := time.Now()
	l2, err := other.Campaign(context.Background(), "renew", "c2", sdk.CampaignOptions{TTL: time.Second, NoWait: true})
	if err != nil {
		t.Fatalf("campaign after the resignation: %v (%s after it)", err, time.Since(start))
	}
	if l2.Token() <= l.Token() {
		t.Fatalf("token %d after %d", l2.Token(), l.Token())
	}
	if err := l2.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-l2.Done()
}

func TestCampaignWaiterTakesOverOnResign(t *testing.T) {
	url := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil).url
	c1, _ := newCandidate(t, url)
	c2, _ := newCandidate(t, url)
	l1, err := c1.Campaign(context.Background(), "line", "c1", sdk.CampaignOptions{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var won atomic.Pointer[sdk.Leadership]
	done := make(chan error, 1)
	go func() {
		l, err := c2.Campaign(context.Background(), "line", "c2", sdk.CampaignOptions{TTL: 2 * time.Second})
		won.Store(l)
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // c2 is in line by now; if not, it wins after the resignation all the same
	if won.Load() != nil {
		t.Fatal("c2 won while c1 led")
	}
	if err := l1.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l2 := won.Load()
	if l2.Token() <= l1.Token() {
		t.Fatalf("token %d after %d", l2.Token(), l1.Token())
	}
	if err := l2.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestCampaignDoneClosesWhenRenewalsCannotGetThrough: a leader whose requests
// stop getting through (paused, partitioned) sees Done close by its
// deadline with ErrLapsed, and a waiting candidate takes over; after the
// cut mends, the old leader is refused.
func TestCampaignDoneClosesWhenRenewalsCannotGetThrough(t *testing.T) {
	url := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil).url
	c1, cut := newCandidate(t, url)
	c2, _ := newCandidate(t, url)
	const ttl = time.Second
	l1, err := c1.Campaign(context.Background(), "cut", "c1", sdk.CampaignOptions{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *sdk.Leadership
		err error
		at  time.Time
	}
	won := make(chan result, 1)
	go func() {
		l, err := c2.Campaign(context.Background(), "cut", "c2", sdk.CampaignOptions{TTL: ttl})
		won <- result{l, err, time.Now()}
	}()
	cut.pause(true)
	cutAt := time.Now()
	select {
	case <-l1.Done():
	case <-time.After(ttl + 5*time.Second):
		t.Fatal("Done stayed open long past the TTL with no renewal getting through")
	}
	if !errors.Is(l1.Err(), sdk.ErrLapsed) {
		t.Fatalf("Err = %v, want ErrLapsed", l1.Err())
	}
	if l1.Deadline().After(time.Now()) {
		t.Fatalf("Done closed before the deadline %s", l1.Deadline())
	}
	r := <-won
	if r.err != nil {
		t.Fatal(r.err)
	}
	// Liveness bounds are the service's tests'; this one only says c2
	// won in reasonable time.
	if r.l.Token() <= l1.Token() || r.at.Sub(cutAt) > ttl+10*time.Second {
		t.Fatalf("c2 won with token %d (c1 had %d) %s after the cut", r.l.Token(), l1.Token(), r.at.Sub(cutAt))
	}
	cut.pause(false)
	if err := l1.Resign(context.Background()); err != nil {
		t.Fatalf("resigning a lapsed leadership = %v, want nil (it is over)", err)
	}
	if err := r.l.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
}
