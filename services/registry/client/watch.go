package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/services/registry/catalog"
)

// maxSetBytes bounds one event of a watch stream: a whole instance set.
const maxSetBytes = 64 << 20

// Watch follows a service's instances (filtered by q's status, tag and
// zone), calling fn with the whole set at the start and after every
// change, until ctx ends. It reconnects after a failure with
// Last-Event-ID, backing off from 100 ms to 5 s; since every event is the
// whole set, a reconnect can never leave a gap. It returns ctx's error.
func (c *Client) Watch(ctx context.Context, service string, q Query, fn func(catalog.InstanceSet)) error {
	q.Index, q.Wait = 0, 0
	u := strings.TrimSuffix(c.BaseURL, "/") + "/v1/services/" + url.PathEscape(service) + "/watch"
	if v := q.values(); len(v) > 0 {
		u += "?" + v.Encode()
	}
	lastID := ""
	backoff := 100 * time.Millisecond
	for {
		got, err := c.follow(ctx, u, &lastID, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if got {
			backoff = 100 * time.Millisecond
		}
		_ = err // the stream ended or failed: reconnect
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// follow reads one connection's events; it reports whether any arrived.
func (c *Client) follow(ctx context.Context, u string, lastID *string, fn func(catalog.InstanceSet)) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("registry: watch %s: %s", u, resp.Status)
	}
	got := false
	for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: maxSetBytes}) {
		if err != nil {
			return got, err
		}
		if ev.Type != "instances" {
			continue // shutdown and error events end the stream; we reconnect
		}
		var set catalog.InstanceSet
		if err := json.Unmarshal([]byte(ev.Data), &set); err != nil {
			return got, fmt.Errorf("registry: watch event: %w", err)
		}
		*lastID = ev.LastEventID
		got = true
		fn(set)
	}
	return got, nil
}
