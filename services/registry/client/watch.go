package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/stewardhq/steward/services/registry/catalog"
)

// maxSetBytes bounds one event of a watch stream: a whole instance set.
const maxSetBytes = 64 << 20

// streamIdle is how long a watch stream may stay silent before the
// replica is taken for hung and left: three of the registry's 15 s
// heartbeats.
const streamIdle = 45 * time.Second

// Watch follows a service's instances (filtered by q's status, tag and
// zone), calling fn with the whole set at the start and after every
// change, until ctx ends. It reconnects after a failure with
// Last-Event-ID, to the next replica when the one in use cannot be
// reached, answers 5xx or falls silent, backing off from 100 ms to 5 s;
// since every event is the whole set, and every replica applies the same
// log, a reconnect can never leave a gap. It returns ctx's error.
func (c *Client) Watch(ctx context.Context, service string, q Query, fn func(catalog.InstanceSet)) error {
	q.Index, q.Wait = 0, 0
	path := "/v1/services/" + url.PathEscape(service) + "/watch"
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	lastID := ""
	backoff := 100 * time.Millisecond
	for {
		got, err := c.follow(ctx, path, &lastID, fn)
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
func (c *Client) follow(ctx context.Context, path string, lastID *string, fn func(catalog.InstanceSet)) (bool, error) {
	lim := c.limits(0)
	lim.Idle = streamIdle
	resp, err := c.replicas().Do(ctx, c.HTTP, lim, func(ctx context.Context, base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		if *lastID != "" {
			req.Header.Set("Last-Event-ID", *lastID)
		}
		return req, nil
	})
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("registry: watch %s: %s", path, resp.Status)
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
