// Package routesource keeps the gateway's routes in step with the route
// documents in the config service: it lists the routes prefix, then
// watches it, and applies every change without a restart. A document
// that does not parse or validate is rejected with a logged reason, and
// the route's previous version (if any) stays in force.
package routesource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/gateway/route"
	"github.com/stewardhq/steward/sdk/replicas"
)

// Prefix is the config key prefix the route documents live under.
const Prefix = "/steward/gateway/routes/"

// Source follows the route documents.
type Source struct {
	// Config returns the config service's replicas to call (it may
	// differ from call to call: an instance found through the registry);
	// a call fails over between them (sdk/replicas), and the watch
	// resumes on another from the last revision applied.
	Config func() (*replicas.Set, error)
	// Token, if set, is sent as Authorization: Bearer
	// (STEWARD_AUTH_TOKEN): the config service needs kv read on the
	// route documents' prefix when auth is on.
	Token string
	// Apply receives every new routing table.
	Apply  func(*route.Table)
	HTTP   *http.Client
	Logger *slog.Logger

	mu       sync.Mutex
	active   map[string]*route.Route
	rejected map[string]Rejection
	revision int64
}

// Rejection is a document that was refused, and why.
type Rejection struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	Reason   string `json:"reason"`
}

// Status is what the source holds, for the gateway's status endpoint.
type Status struct {
	Revision int64        `json:"revision"`
	Routes   []NamedRoute `json:"routes"`
	Rejected []Rejection  `json:"rejected"`
}

// NamedRoute is a route in force with its document's name.
type NamedRoute struct {
	Name string `json:"name"`
	*route.Route
}

// errGone asks for a fresh list: the watch's revision was compacted.
var errGone = errors.New("routesource: watch revision compacted")

// Run follows the documents until ctx ends, reconnecting with backoff.
func (s *Source) Run(ctx context.Context) {
	s.mu.Lock()
	s.active, s.rejected = map[string]*route.Route{}, map[string]Rejection{}
	s.mu.Unlock()
	backoff := 100 * time.Millisecond
	listed := false
	for ctx.Err() == nil {
		set, err := s.Config()
		if err == nil {
			if !listed {
				err = s.list(ctx, set)
				listed = err == nil
			}
			if listed {
				var connected bool
				connected, err = s.watch(ctx, set)
				if connected {
					// The last attempt got through: the next failure
					// is a new one and starts the backoff afresh.
					backoff = 100 * time.Millisecond
				}
				if errors.Is(err, errGone) {
					listed = false
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.Logger.Debug("route documents unreachable; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

type kvEntry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	ModRevision int64           `json:"modRevision"`
}

// list reads every document and replaces the table.
func (s *Source) list(ctx context.Context, set *replicas.Set) error {
	docs := map[string]kvEntry{}
	var revision int64
	after := ""
	for {
		q := url.Values{"prefix": {Prefix}, "limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		var page struct {
			Items    []kvEntry `json:"items"`
			Revision int64     `json:"revision"`
			Next     *string   `json:"next"`
		}
		if err := s.get(ctx, set, "/v1/kv?"+q.Encode(), &page); err != nil {
			return err
		}
		if revision == 0 {
			revision = page.Revision
		}
		for _, e := range page.Items {
			docs[e.Key] = e
		}
		if page.Next == nil {
			break
		}
		after = *page.Next
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.active
	s.active, s.rejected = map[string]*route.Route{}, map[string]Rejection{}
	for _, key := range slices.Sorted(maps.Keys(docs)) {
		s.put(docs[key], prev[strings.TrimPrefix(key, Prefix)])
	}
	s.revision = revision
	s.publish()
	return nil
}

// put applies one document; prev is the route's version in force.
func (s *Source) put(e kvEntry, prev *route.Route) {
	name := strings.TrimPrefix(e.Key, Prefix)
	r, err := route.Parse(name, e.Value)
	if err != nil {
		s.rejected[name] = Rejection{Name: name, Revision: e.ModRevision, Reason: err.Error()}
		keep := "no previous version"
		if prev != nil {
			s.active[name] = prev
			keep = "its previous version stays in force"
		}
		s.Logger.Warn("route document rejected", "route", name, "revision", e.ModRevision, "reason", err.Error(), "kept", keep)
		return
	}
	delete(s.rejected, name)
	s.active[name] = r
}

func (s *Source) publish() {
	routes := slices.Collect(maps.Values(s.active))
	s.Apply(route.NewTable(routes))
}

// watch applies changes from the revision after the last one seen; it
// reports whether the stream was opened.
func (s *Source) watch(ctx context.Context, set *replicas.Set) (bool, error) {
	s.mu.Lock()
	from := s.revision + 1
	s.mu.Unlock()
	q := url.Values{"prefix": {Prefix}, "fromRevision": {strconv.FormatInt(from, 10)}}
	resp, err := s.do(ctx, set, replicas.Limits{Answer: answerWithin, Idle: streamIdle}, "/v1/watch?"+q.Encode())
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusGone:
		return false, errGone
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("routesource: watch: %s", resp.Status)
	}
	for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: 4 << 20}) {
		if err != nil {
			return true, err
		}
		if ev.Type != "put" && ev.Type != "delete" {
			continue
		}
		var data struct {
			Entry kvEntry `json:"entry"`
		}
		if err := json.Unmarshal([]byte(ev.Data), &data); err != nil {
			return true, fmt.Errorf("routesource: watch event: %w", err)
		}
		s.mu.Lock()
		name := strings.TrimPrefix(data.Entry.Key, Prefix)
		if ev.Type == "put" {
			s.put(data.Entry, s.active[name])
		} else {
			delete(s.active, name)
			delete(s.rejected, name)
		}
		if rev, err := strconv.ParseInt(ev.LastEventID, 10, 64); err == nil && rev > s.revision {
			s.revision = rev
		}
		s.publish()
		s.mu.Unlock()
	}
	return true, errors.New("routesource: watch ended")
}

// How long a config replica is given before the next is tried: to
// answer a call, and to break the silence of a watch stream (three of
// its 15 s heartbeats).
const (
	answerWithin = 10 * time.Second
	streamIdle   = 45 * time.Second
)

func (s *Source) get(ctx context.Context, set *replicas.Set, path string, out any) error {
	resp, err := s.do(ctx, set, replicas.Limits{Answer: answerWithin}, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("routesource: GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// do GETs path from a replica of set.
func (s *Source) do(ctx context.Context, set *replicas.Set, lim replicas.Limits, path string) (*http.Response, error) {
	return set.Do(ctx, s.HTTP, lim, func(ctx context.Context, base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		if s.Token != "" {
			req.Header.Set("Authorization", "Bearer "+s.Token)
		}
		return req, nil
	})
}

// Status reports the routes in force and the rejected documents.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Revision: s.revision, Routes: []NamedRoute{}, Rejected: []Rejection{}}
	for _, name := range slices.Sorted(maps.Keys(s.active)) {
		st.Routes = append(st.Routes, NamedRoute{Name: name, Route: s.active[name]})
	}
	for _, name := range slices.Sorted(maps.Keys(s.rejected)) {
		st.Rejected = append(st.Rejected, s.rejected[name])
	}
	return st
}
