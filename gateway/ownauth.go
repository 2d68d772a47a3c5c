package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/auth/authhttp"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/sdk/replicas"
)

// ownAuthTTL is how long the gateway trusts an answer about a token: a
// revocation reaches its own endpoints within this.
const ownAuthTTL = 500 * time.Millisecond

// ownAuth guards the gateway's own endpoints (/gateway/routes needs
// routes read, /metrics metrics read unless public, /gateway/upstreams
// and /gateway/cluster metrics read) with STEWARD_AUTH on.
// The gateway does not follow the auth log: it asks the config service,
// which does, who a token is (GET /v1/auth/whoami), and remembers the
// answer for ownAuthTTL. What it proxies is checked by the service that
// answers.
type ownAuth struct {
	config        func() (*replicas.Set, error)
	client        *http.Client
	metricsPublic bool
	logger        *slog.Logger

	mu    sync.Mutex
	cache map[string]ownAuthAnswer // by secret
}

// ownAuthAnswer is what whoami said of a token, and when.
type ownAuthAnswer struct {
	p   auth.Principal
	err error // an Unauthorized fault, or nil
	at  time.Time
}

// maxOwnAuthCache bounds the remembered answers.
const maxOwnAuthCache = 1024

// middleware checks the requests for the gateway's own endpoints.
func (a *ownAuth) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var need auth.Resource
		switch {
		case r.URL.Path == "/metrics" && !a.metricsPublic:
			need = auth.Metrics
		case r.URL.Path == "/gateway/routes":
			need = auth.Routes
		case r.URL.Path == "/gateway/upstreams" || r.URL.Path == "/gateway/cluster":
			// What an operator's overview reads, as /metrics is; also
			// with STEWARD_METRICS_PUBLIC, as they name instances.
			need = auth.Metrics
		default:
			next.ServeHTTP(w, r)
			return
		}
		p, err := a.principal(r)
		if err == nil {
			err = p.Require(need, "", auth.Read)
		}
		if err != nil {
			authhttp.Deny(w, r, a.logger, p.ID, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// principal returns who the request's token is, asking the config service
// unless a fresh answer is remembered.
func (a *ownAuth) principal(r *http.Request) (auth.Principal, error) {
	secret, err := authhttp.Bearer(r)
	if err != nil {
		return auth.Principal{}, err
	}
	a.mu.Lock()
	c, ok := a.cache[secret]
	a.mu.Unlock()
	if ok && time.Since(c.at) < ownAuthTTL {
		return c.p, c.err
	}
	p, err := a.whoami(r.Context(), secret)
	if err == nil || fault.KindOf(err) == fault.Unauthorized {
		a.mu.Lock()
		if len(a.cache) >= maxOwnAuthCache {
			clear(a.cache)
		}
		a.cache[secret] = ownAuthAnswer{p: p, err: err, at: time.Now()}
		a.mu.Unlock()
	}
	return p, err
}

// whoami asks the config service who secret is.
func (a *ownAuth) whoami(ctx context.Context, secret string) (auth.Principal, error) {
	set, err := a.config()
	if err != nil {
		return auth.Principal{}, fault.Wrap(fault.Unavailable, err, "cannot check the token: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// A serializable read is the replica's own: one that takes seconds
	// is in trouble, and the next may answer.
	res, err := set.Do(ctx, a.client, replicas.Limits{Answer: 2 * time.Second}, func(ctx context.Context, base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/auth/whoami?consistency=serializable", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		return req, nil
	})
	if err != nil {
		return auth.Principal{}, fault.Wrap(fault.Unavailable, err, "cannot check the token: the config service did not answer")
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		var p auth.Principal
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			return auth.Principal{}, fault.Wrap(fault.BadGateway, err, "cannot check the token: the config service answered nonsense")
		}
		return p, nil
	case http.StatusUnauthorized:
		var prob struct {
			Detail string `json:"detail"`
		}
		_ = json.NewDecoder(res.Body).Decode(&prob)
		return auth.Principal{}, fault.New(fault.Unauthorized, "%s", prob.Detail)
	}
	return auth.Principal{}, fault.New(fault.Unavailable, "cannot check the token: the config service answered %d", res.StatusCode)
}
