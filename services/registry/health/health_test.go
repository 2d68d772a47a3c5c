package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/services/registry/catalog"
)

func TestOwnerSpreadsAndMovesOnlyTheDeadReplicasChecks(t *testing.T) {
	live := []string{"registry-0", "registry-1", "registry-2"}
	const keys = 3000
	owner := map[string]string{}
	count := map[string]int{}
	for i := range keys {
		k := fmt.Sprintf("web/i%d", i)
		owner[k] = Owner(k, live)
		count[owner[k]]++
	}
	for _, id := range live {
		if share := float64(count[id]) / keys; share < 0.28 || share > 0.39 {
			t.Errorf("%s owns %.1f%% of the checks, want about a third", id, 100*share)
		}
	}
	survivors := []string{"registry-0", "registry-2"}
	for k, was := range owner {
		now := Owner(k, survivors)
		if was != "registry-1" && now != was {
			t.Fatalf("%s moved from %s to %s although %s is alive", k, was, now, was)
		}
	}
}

func probe(p *Prober, c catalog.Check) catalog.Report {
	if c.Timeout == 0 {
		c.Timeout = catalog.Duration(time.Second)
	}
	return p.Probe(context.Background(), c)
}

func TestProbeHTTPStatuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/busy":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/slow":
			time.Sleep(500 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	p := NewProber(true, "registry-0")
	tests := []struct {
		path    string
		timeout time.Duration
		want    catalog.Status
	}{
		{"/ok", time.Second, catalog.Passing},
		{"/busy", time.Second, catalog.Warning},
		{"/broken", time.Second, catalog.Critical},
		{"/slow", 100 * time.Millisecond, catalog.Critical},
	}
	for _, tt := range tests {
		got := probe(p, catalog.Check{HTTP: srv.URL + tt.path, Timeout: catalog.Duration(tt.timeout)})
		if got.Status != tt.want {
			t.Errorf("probe %s = %s (%s), want %s", tt.path, got.Status, got.Output, tt.want)
		}
	}
}

// TestProbeRefusesLocal: without allowLocal, nothing reaches the local
// host, whether named by address, by a name that resolves to it, or by a
// redirect.
func TestProbeRefusesLocal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	redirect := httptest.NewServer(http.RedirectHandler(srv.URL, http.StatusFound))
	defer redirect.Close()

	open := NewProber(true, "r")
	guarded := NewProber(false, "r")
	for _, c := range []catalog.Check{
		{HTTP: srv.URL},
		{HTTP: "http://localhost:" + port + "/"},
		{TCP: srv.Listener.Addr().String()},
		{TCP: "localhost:" + port},
	} {
		if got := probe(open, c); got.Status != catalog.Passing {
			t.Fatalf("allowed probe %+v = %s %s", c, got.Status, got.Output)
		}
		got := probe(guarded, c)
		if got.Status != catalog.Critical || !strings.Contains(got.Output, "refusing") {
			t.Errorf("guarded probe %+v = %s %q, want critical, refused", c, got.Status, got.Output)
		}
	}
	// The redirect server is itself local, so this is refused at the
	// first hop; the dial check runs on every hop alike.
	if got := probe(guarded, catalog.Check{HTTP: redirect.URL}); got.Status != catalog.Critical {
		t.Errorf("guarded probe through a redirect = %s", got.Status)
	}
}
