package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// revisionStream is an event stream shaped as the config service's
// watch is: revisions of three events each, the id line on the last
// event of a revision, a resume with Last-Event-ID sending whole
// revisions after it. It cuts each connection after `cut` events, in the
// middle of a revision, as a dying replica may; the real service cannot
// be made to die at that exact point, so this scripted one stands in for
// it to test the client's bookkeeping.
type revisionStream struct {
	revisions, cut int
	mu             sync.Mutex
	lastIDs        []string
}

func (s *revisionStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.lastIDs = append(s.lastIDs, r.Header.Get("Last-Event-ID"))
	s.mu.Unlock()
	after, _ := strconv.Atoi(r.Header.Get("Last-Event-ID"))
	w.Header().Set("Content-Type", "text/event-stream")
	fmt.Fprint(w, ": watching\n\nretry: 10\n\n")
	sent := 0
	for rev := after + 1; rev <= s.revisions; rev++ {
		for i := range 3 {
			if sent == s.cut {
				return
			}
			if i == 2 {
				fmt.Fprintf(w, "id: %d\n", rev)
			}
			fmt.Fprintf(w, "event: put\ndata: {\"rev\":%d,\"i\":%d}\n\n", rev, i)
			sent++
		}
	}
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

// TestStreamResumesWithoutRepeats cuts every connection in the middle of
// a revision: the iterator resumes after the last whole revision it saw
// and yields every event once, in order.
func TestStreamResumesWithoutRepeats(t *testing.T) {
	s := &revisionStream{revisions: 20, cut: 7}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	open := func(ctx context.Context, lastID string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/watch", nil)
		if err != nil {
			return nil, err
		}
		if err := streamEditors(lastID)(ctx, req); err != nil {
			return nil, err
		}
		return c.do(req)
	}
	var got []string
	for ev, err := range c.stream(ctx, open) {
		if err != nil {
			t.Fatalf("after %d events: %v", len(got), err)
		}
		got = append(got, string(ev.Data))
		if len(got) == 60 {
			break
		}
	}
	for i, d := range got {
		if want := fmt.Sprintf(`{"rev":%d,"i":%d}`, i/3+1, i%3); d != want {
			t.Fatalf("event %d = %s, want %s", i, d, want)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lastIDs) < 5 || s.lastIDs[0] != "" || s.lastIDs[1] != "2" {
		t.Fatalf("Last-Event-ID of each connection = %q; want none, then 2 (the last whole revision of the first 7 events), ...", strings.Join(s.lastIDs, ","))
	}
}

// TestStreamEndsOn4xx: a watch the server refuses (a bad request, a
// revision compacted away) ends with its problem instead of retrying.
func TestStreamEndsOn4xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusGone)
		fmt.Fprint(w, `{"type":"urn:steward:problem:gone","title":"Gone","status":410,"detail":"revision 3 is compacted"}`)
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range c.KV().Watch(t.Context(), WatchOptions{Prefix: "/a/", FromRevision: 3}) {
		n++
		var e *Error
		if !errors.As(err, &e) || e.Status != 410 || e.Detail != "revision 3 is compacted" {
			t.Fatalf("watch error %v, want the 410 problem", err)
		}
	}
	if n != 1 {
		t.Fatalf("%d items, want the one error", n)
	}
}
