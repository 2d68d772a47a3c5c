// Package client is a Go client of the registry's HTTP API: register,
// heartbeat, deregister, list, and Announce, which keeps a process
// registered for as long as it runs. Steward's own services announce
// themselves with it.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/stewardhq/steward/sdk/replicas"
	"github.com/stewardhq/steward/services/registry/catalog"
)

// Client calls the registry through any of its replicas: a call that
// cannot reach one, that one answers 5xx, or that it does not answer in
// time goes to the next (platform/replicas), and a watch or a blocking
// query carries on there from its last index.
type Client struct {
	// BaseURL is a replica's base URL, e.g. http://127.0.0.1:8082, or a
	// comma-separated list of replicas' (STEWARD_REGISTRY_URL); it is
	// read at the first call.
	BaseURL string
	HTTP    *http.Client // nil: http.DefaultClient
	// Token, if set, is sent as Authorization: Bearer (STEWARD_AUTH_TOKEN).
	Token string
	// Timeout is how long one replica is given to answer a call that does
	// not block (a blocking query is given its wait and a margin) before
	// the next is tried; 0 means 5s, so that a heartbeat that meets a
	// hung replica still lands within AnnounceTTL.
	Timeout time.Duration

	once sync.Once
	set  *replicas.Set
}

// replicas is the set of BaseURL, made at the first call.
func (c *Client) replicas() *replicas.Set {
	c.once.Do(func() { c.set = replicas.Parse(c.BaseURL) })
	return c.set
}

// limits is what one replica is given to answer a call that blocks up to
// wait.
func (c *Client) limits(wait time.Duration) replicas.Limits {
	if wait > 0 {
		// The registry holds a query 5m at most; a connection that died
		// without a word must not hold it forever.
		return replicas.Limits{Answer: min(wait, 5*time.Minute) + 30*time.Second}
	}
	return replicas.Limits{Answer: cmp.Or(c.Timeout, 5*time.Second)}
}

// ErrNotFound is returned for an instance or lease the registry does not
// know.
var ErrNotFound = errors.New("registry: not found")

// Error is a problem the registry answered.
type Error struct {
	Status int
	Detail string
}

func (e *Error) Error() string { return fmt.Sprintf("registry: %d: %s", e.Status, e.Detail) }

// do sends one call, given up to wait by the registry (a blocking query),
// and decodes its answer into out.
func (c *Client) do(ctx context.Context, method, path string, wait time.Duration, body, out any) (http.Header, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	resp, err := c.replicas().Do(ctx, c.HTTP, c.limits(wait), func(ctx context.Context, base string) (*http.Request, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return resp.Header, ErrNotFound
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
		return resp.Header, &Error{Status: resp.StatusCode, Detail: p.Detail}
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("registry: decode %s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

func instancePath(service, id string) string {
	return "/v1/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id)
}

// Register registers (or updates) an instance.
func (c *Client) Register(ctx context.Context, service, id string, reg catalog.Registration) (*catalog.Instance, error) {
	var inst catalog.Instance
	if _, err := c.do(ctx, http.MethodPut, instancePath(service, id), 0, reg, &inst); err != nil {
		return nil, err
	}
	return &inst, nil
}

// Heartbeat renews an instance's TTL check as passing.
func (c *Client) Heartbeat(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, http.MethodPut, instancePath(service, id)+"/heartbeat", 0, nil, nil)
	return err
}

// Deregister removes an instance.
func (c *Client) Deregister(ctx context.Context, service, id string) error {
	_, err := c.do(ctx, http.MethodDelete, instancePath(service, id), 0, nil, nil)
	return err
}

// Query selects instances (all fields optional). Index and Wait make the
// call a blocking query.
type Query struct {
	Status catalog.Status
	Tag    string
	Zone   string
	Index  int64
	Wait   time.Duration
}

// values is q as query parameters.
func (q Query) values() url.Values {
	v := url.Values{}
	if q.Status != "" {
		v.Set("status", string(q.Status))
	}
	if q.Tag != "" {
		v.Set("tag", q.Tag)
	}
	if q.Zone != "" {
		v.Set("zone", q.Zone)
	}
	if q.Index > 0 {
		v.Set("index", strconv.FormatInt(q.Index, 10))
		if q.Wait > 0 {
			v.Set("wait", q.Wait.String())
		}
	}
	return v
}

// list GETs path with q and decodes the list into out; it returns the
// list's index.
func (c *Client) list(ctx context.Context, path string, q Query, out any) (int64, error) {
	if v := q.values(); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var wait time.Duration
	if q.Index > 0 {
		wait = q.Wait
	}
	h, err := c.do(ctx, http.MethodGet, path, wait, nil, out)
	if err != nil {
		return 0, err
	}
	idx, _ := strconv.ParseInt(h.Get("X-Steward-Index"), 10, 64)
	return idx, nil
}

// Instances lists a service's instances and the list's index.
func (c *Client) Instances(ctx context.Context, service string, q Query) ([]catalog.Instance, int64, error) {
	var out []catalog.Instance
	idx, err := c.list(ctx, "/v1/services/"+url.PathEscape(service)+"/instances", q, &out)
	return out, idx, err
}

// Services lists every service that has an instance, and the list's
// index: the revision of the last change to any service. With q.Index
// and q.Wait it is a blocking query that answers once the list's index
// passes q.Index (the filters of q do not apply).
func (c *Client) Services(ctx context.Context, q Query) ([]catalog.Service, int64, error) {
	var out []catalog.Service
	idx, err := c.list(ctx, "/v1/services", Query{Index: q.Index, Wait: q.Wait}, &out)
	return out, idx, err
}

// AnnounceTTL is the TTL check Announce registers with; it heartbeats at a
// third of it.
const AnnounceTTL = 10 * time.Second

// Announce registers the instance with a TTL check and heartbeats until ctx
// ends, then deregisters it. It registers again when the registry forgot
// the instance (deregistered after a long outage) and retries while the
// registry is unreachable or not ready, from 100 ms and doubling up to the
// heartbeat interval, so that a registry starting beside the process lists
// it as soon as it can; it returns only when ctx ends.
func (c *Client) Announce(ctx context.Context, service, id string, reg catalog.Registration, logger *slog.Logger) {
	reg.Check = &catalog.Check{TTL: catalog.Duration(AnnounceTTL), DeregisterAfter: catalog.Duration(time.Minute)}
	// registered: the registry has the instance as far as we know;
	// tried: a registration was sent, whose answer may have been cut off
	// by ctx ending after the registry applied it.
	registered, tried := false, false
	const every = AnnounceTTL / 3
	retry := 100 * time.Millisecond
	for {
		var err error
		if registered {
			err = c.Heartbeat(ctx, service, id)
			if errors.Is(err, ErrNotFound) {
				registered = false
			}
		}
		if !registered {
			tried = true
			if _, err = c.Register(ctx, service, id, reg); err == nil {
				registered = true
				logger.Info("registered in the service registry", "service", service, "id", id, "address", reg.Address, "port", reg.Port)
			}
		}
		next := every
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("service registry announcement failed", "service", service, "err", err, "retry_in", retry)
			}
			next, retry = retry, min(2*retry, every)
		} else {
			retry = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			if registered || tried {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = c.Deregister(dctx, service, id)
				cancel()
			}
			return
		case <-time.After(next):
		}
	}
}
