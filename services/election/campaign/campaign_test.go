package campaign_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/election/campaign"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// service runs one election replica with its expiry proposer behind a
// real HTTP server and returns its URL.
func service(t *testing.T) string {
	t.Helper()
	nc := qlogtest.StartServer(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var s election.Settings
	s.ReplicaID, s.StreamReplicas = "election-0", 1
	rep, err := election.Open(ctx, s, nc, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rep.Handler)
	ectx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); rep.RunExpiry(ectx) }()
	t.Cleanup(func() { stop(); wg.Wait(); srv.Close(); rep.Close() })
	return srv.URL
}

// cuttable is a transport that a test can cut, as if the process were
// paused or its network gone: every request blocks until the cut is
// mended or its context ends.
type cuttable struct {
	base http.RoundTripper
	mu   sync.Mutex
	cut  chan struct{} // non-nil while cut
}

func (c *cuttable) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut != nil {
		select {
		case <-cut:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	return c.base.RoundTrip(req)
}

func (c *cuttable) set(cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case cut && c.cut == nil:
		c.cut = make(chan struct{})
	case !cut && c.cut != nil:
		close(c.cut)
		c.cut = nil
	}
}

func newClient(t *testing.T, url string) (*campaign.Client, *cuttable) {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ct := &cuttable{base: tr}
	return campaign.New([]string{url}, &http.Client{Transport: ct}), ct
}

func TestRenewsUntilCancelledThenResigns(t *testing.T) {
	url := service(t)
	c, _ := newClient(t, url)
	ctx, cancel := context.WithCancel(context.Background())
	// A TTL of 2s leaves a renewal 1.3s to be confirmed, which a loaded
	// machine under the race detector needs; 1s (the service's shortest)
	// is exercised by the other tests.
	l, err := c.Campaign(ctx, "renew", "c1", campaign.Options{TTL: 2 * time.Second, Value: map[string]string{"addr": "x"}})
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
	other, _ := newClient(t, url)
	if _, err := other.Campaign(context.Background(), "renew", "c2", campaign.Options{TTL: time.Second, NoWait: true}); !errors.Is(err, campaign.ErrTaken) {
		t.Fatalf("campaign of c2 = %v, want ErrTaken", err)
	}
	cancel()
	<-l.Done()
	if !errors.Is(l.Err(), campaign.ErrResigned) {
		t.Fatalf("Err = %v, want ErrResigned", l.Err())
	}
	// Resigned, not lapsed: c2 leads at once.
	start := time.Now()
	l2, err := other.Campaign(context.Background(), "renew", "c2", campaign.Options{TTL: time.Second, NoWait: true})
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

func TestWaiterTakesOverOnResign(t *testing.T) {
	url := service(t)
	c1, _ := newClient(t, url)
	c2, _ := newClient(t, url)
	l1, err := c1.Campaign(context.Background(), "line", "c1", campaign.Options{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var won atomic.Pointer[campaign.Leadership]
	done := make(chan error, 1)
	go func() {
		l, err := c2.Campaign(context.Background(), "line", "c2", campaign.Options{TTL: 2 * time.Second})
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

// TestDoneClosesWhenRenewalsCannotGetThrough: a leader whose requests
// stop getting through (paused, partitioned) sees Done close by its
// deadline with ErrLapsed, and a waiting candidate takes over; after the
// cut mends, the old leader is refused.
func TestDoneClosesWhenRenewalsCannotGetThrough(t *testing.T) {
	url := service(t)
	c1, cut := newClient(t, url)
	c2, _ := newClient(t, url)
	const ttl = time.Second
	l1, err := c1.Campaign(context.Background(), "cut", "c1", campaign.Options{TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *campaign.Leadership
		err error
		at  time.Time
	}
	won := make(chan result, 1)
	go func() {
		l, err := c2.Campaign(context.Background(), "cut", "c2", campaign.Options{TTL: ttl})
		won <- result{l, err, time.Now()}
	}()
	cut.set(true)
	cutAt := time.Now()
	select {
	case <-l1.Done():
	case <-time.After(ttl + 5*time.Second):
		t.Fatal("Done stayed open long past the TTL with no renewal getting through")
	}
	if !errors.Is(l1.Err(), campaign.ErrLapsed) {
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
	cut.set(false)
	if err := l1.Resign(context.Background()); err != nil {
		t.Fatalf("resigning a lapsed leadership = %v, want nil (it is over)", err)
	}
	if err := r.l.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
}
