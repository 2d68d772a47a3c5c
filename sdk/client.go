// Package sdk is Steward's Go client: configuration (KV, leases,
// transactions, history, watches), the service registry (register,
// announce, discover, watch), elections (campaign with renewal, observe,
// resign), scalers, the gateway's routes and auth, over one Client.
//
// A Client reaches Steward through any of the endpoints it is given (the
// gateway, or a service's replicas): a call that cannot reach one, that it
// answers 5xx, or that it does not answer in time moves on to the next.
// Writes carry an Idempotency-Key, the same on every attempt, so that a
// write retried after a lost answer happens once. A watch is an iterator
// that resumes where it left off, on this replica or the next, with
// Last-Event-ID.
//
// Every operation of the API, as oapi-codegen generates it, is reachable
// through Client.API (package sdk/api); the methods here wrap the ones
// where Go idioms matter.
package sdk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/sdk/api"
	"github.com/stewardhq/steward/sdk/replicas"
)

// DefaultEndpoint is the gateway of a `steward dev` on this machine.
const DefaultEndpoint = "http://127.0.0.1:8080"

// Client calls Steward. It is safe for concurrent use.
type Client struct {
	set     *replicas.Set
	hc      *http.Client
	token   string
	timeout time.Duration
	retries int
	agent   string
	api     *api.ClientWithResponses
}

// Option sets up a Client.
type Option func(*Client)

// WithToken sends token as Authorization: Bearer with every call.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient makes the calls with hc (its Transport, its TLS);
// its Timeout should be 0, since watches last.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTLS makes the calls over a transport with cfg (a private CA, a
// client certificate).
func WithTLS(cfg *tls.Config) Option {
	return func(c *Client) {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		c.hc = &http.Client{Transport: t}
	}
}

// WithTimeout is how long one endpoint is given to answer a call that
// does not block before the next is tried (default 10s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithRetries is how many more rounds over the endpoints a call makes
// when every endpoint failed or answered 503 (unavailable for now) or
// 504 (a write's outcome unknown: retried with the same Idempotency-Key);
// default 3, with backoff, honouring Retry-After.
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// WithUserAgent names the program in the User-Agent header.
func WithUserAgent(agent string) Option { return func(c *Client) { c.agent = agent } }

// New makes a Client of endpoints, a comma-separated list of base URLs
// (e.g. "http://127.0.0.1:8080" or "https://config-0:8081,https://config-1:8081").
func New(endpoints string, opts ...Option) (*Client, error) {
	c := &Client{set: replicas.Parse(endpoints), hc: defaultHTTPClient, timeout: 10 * time.Second, retries: 3, agent: "steward-sdk-go"}
	for _, o := range opts {
		o(c)
	}
	if len(c.set.URLs()) == 0 {
		return nil, errors.New("sdk: no endpoint")
	}
	for _, u := range c.set.URLs() {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return nil, errors.New("sdk: endpoint " + strconv.Quote(u) + " is not an http:// or https:// URL")
		}
	}
	raw, err := api.NewClientWithResponses(c.set.URLs()[0], api.WithHTTPClient(doer{c}))
	if err != nil {
		return nil, err
	}
	c.api = raw
	return c, nil
}

// API is every operation of Steward's API as oapi-codegen generates it,
// sent the way the Client sends its own calls (failover, token, retries).
func (c *Client) API() *api.ClientWithResponses { return c.api }

// Endpoint is the base URL in use.
func (c *Client) Endpoint() string { return c.set.URL() }

// doer sends the generated client's requests through the Client.
type doer struct{ c *Client }

func (d doer) Do(req *http.Request) (*http.Response, error) { return d.c.do(req) }

// do sends req (made for the first endpoint) to the endpoint in use and
// fails over and retries as the package comment says. Its body must be
// replayable (GetBody), as http.NewRequest makes it for a bytes.Reader.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	if write && req.Header.Get("Idempotency-Key") == "" {
		req.Header.Set("Idempotency-Key", newIdempotencyKey())
	}
	if c.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("User-Agent", c.agent)
	lim := c.limits(req)
	first, err := url.Parse(c.set.URLs()[0])
	if err != nil {
		return nil, err
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		res, err := c.set.Do(ctx, c.hc, lim, func(actx context.Context, base string) (*http.Request, error) {
			return rebase(actx, req, first, base)
		})
		retry := err != nil || res.StatusCode == http.StatusServiceUnavailable ||
			(write && res.StatusCode == http.StatusGatewayTimeout)
		if !retry || attempt >= c.retries || ctx.Err() != nil {
			return res, err
		}
		wait := backoff
		if res != nil {
			if s, perr := strconv.Atoi(res.Header.Get("Retry-After")); perr == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			res.Body.Close()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// limits is what one endpoint is given: a blocking query (wait=) its
// wait and a margin, a stream a bound on silence (Steward sends a
// heartbeat every 15s), any other call the Client's timeout.
func (c *Client) limits(req *http.Request) replicas.Limits {
	if strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
		return replicas.Limits{Answer: c.timeout, Idle: 45 * time.Second}
	}
	if w := req.URL.Query().Get("wait"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			d = 5 * time.Minute
		}
		return replicas.Limits{Answer: min(d, 5*time.Minute) + 30*time.Second}
	}
	return replicas.Limits{Answer: c.timeout}
}

// rebase is req for the endpoint base instead of first, with ctx and a
// fresh body.
func rebase(ctx context.Context, req *http.Request, first *url.URL, base string) (*http.Request, error) {
	b, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	r := req.Clone(ctx)
	u := *req.URL
	u.Scheme, u.Host = b.Scheme, b.Host
	// The generated client joined the path to the first endpoint's; an
	// endpoint with a path of its own (behind a proxy) takes its place.
	u.Path = b.Path + strings.TrimPrefix(req.URL.Path, first.Path)
	if req.URL.RawPath != "" {
		u.RawPath = b.EscapedPath() + strings.TrimPrefix(req.URL.RawPath, first.EscapedPath())
	}
	r.URL, r.Host = &u, ""
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// newIdempotencyKey is 128 random bits, URL-safe.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
