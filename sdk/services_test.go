package sdk

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// TestQueryEncoding: a Query becomes the parameters the registry's
// listing and watch take, as the generated client writes them into the
// URL; wait goes only with an index (without one the registry answers at
// once, and a wait would only stretch the time the client gives it).
func TestQueryEncoding(t *testing.T) {
	for _, tc := range []struct {
		name        string
		q           Query
		list, watch string
	}{
		{"empty", Query{}, "", ""},
		{"filters", Query{Status: api.Passing, Tag: "blue green", Zone: "eu-1"}, "status=passing&tag=blue+green&zone=eu-1", "status=passing&tag=blue+green&zone=eu-1"},
		{"blocking", Query{Index: 42, Wait: 90 * time.Second}, "index=42&wait=1m30s", ""},
		{"wait without index", Query{Wait: time.Minute}, "", ""},
		{"index without wait", Query{Zone: "z", Index: 7}, "index=7&zone=z", "zone=z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lreq, err := api.NewListInstancesRequest("http://x", "web", tc.q.instancesParams())
			if err != nil {
				t.Fatal(err)
			}
			list := lreq.URL.Query()
			wreq, err := api.NewWatchServiceRequest("http://x", "web", tc.q.watchParams())
			if err != nil {
				t.Fatal(err)
			}
			watch := wreq.URL.Query()
			if got := list.Encode(); got != tc.list {
				t.Errorf("listing query = %q, want %q", got, tc.list)
			}
			if got := watch.Encode(); got != tc.watch {
				t.Errorf("watch query = %q, want %q", got, tc.watch)
			}
		})
	}
}

// TestBlockingQueryLimit: a blocking listing gives the endpoint its wait
// and a margin before the next is tried, not the Client's timeout.
func TestBlockingQueryLimit(t *testing.T) {
	c, err := New("http://127.0.0.1:1", WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q    Query
		want time.Duration
	}{
		{Query{}, 3 * time.Second},
		{Query{Index: 5, Wait: 2 * time.Minute}, 2*time.Minute + 30*time.Second},
	} {
		req, err := api.NewListInstancesRequest("http://x", "web", tc.q.instancesParams())
		if err != nil {
			t.Fatal(err)
		}
		if got := c.limits(req.WithContext(context.Background())).Answer; got != tc.want {
			t.Errorf("limits(%+v).Answer = %s, want %s", tc.q, got, tc.want)
		}
	}
}

// TestBackoff: retries after transient failures space out from 50ms,
// doubling, to 2s at most, and start over after a reset.
func TestBackoff(t *testing.T) {
	b := newBackoff()
	var got []time.Duration
	for range 8 {
		got = append(got, b.next())
	}
	want := []time.Duration{50, 100, 200, 400, 800, 1600, 2000, 2000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoff = %v, want %v ms", got, want)
		}
	}
	b.reset()
	if d := b.next(); d != 50*time.Millisecond {
		t.Fatalf("after reset: %s, want 50ms", d)
	}
}

// TestWatchOfCurrentState: a registry watch begins with the current set,
// with no id while the registry is at revision 0. A stream cut after that
// set and opened again (with nothing to resume after) begins with the set
// as it is then: the iterator yields it when it changed, and does not
// yield it again when it did not.
func TestWatchOfCurrentState(t *testing.T) {
	empty := `{"service":"web","revision":0,"protected":false,"instances":[]}`
	withA := `{"service":"web","revision":3,"protected":false,"instances":[{"service":"web","id":"a","address":"10.0.0.1","port":80}]}`
	for _, tc := range []struct {
		name string
		// streams are what each connection sends before it is cut (the
		// last one is held open).
		streams []string
		want    []int64
	}{
		{"changed while cut", []string{
			"event: instances\ndata: " + empty + "\n\n",
			"id: 3\nevent: instances\ndata: " + withA + "\n\n",
		}, []int64{0, 3}},
		{"unchanged while cut", []string{
			"event: instances\ndata: " + empty + "\n\n",
			"event: instances\ndata: " + empty + "\n\n",
			"event: instances\ndata: " + empty + "\n\nid: 3\nevent: instances\ndata: " + withA + "\n\n",
		}, []int64{0, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu      sync.Mutex
				n       int
				lastIDs []string
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				i := min(n, len(tc.streams)-1)
				n++
				lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
				mu.Unlock()
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, ": watching\n\nretry: 10\n\n"+tc.streams[i])
				w.(http.Flusher).Flush()
				if i == len(tc.streams)-1 {
					<-r.Context().Done()
				}
			}))
			defer srv.Close()
			c, err := New(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got []int64
			for set, err := range c.Services().Watch(ctx, "web", Query{}) {
				if err != nil {
					t.Fatalf("after sets at revisions %v: %v", got, err)
				}
				got = append(got, set.Revision)
				if set.Revision == 3 {
					break
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("sets at revisions %v, want %v", got, tc.want)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range lastIDs {
				if id != "" {
					t.Errorf("a stream opened with Last-Event-ID %q; no event before the cut had an id", id)
				}
			}
		})
	}
}
