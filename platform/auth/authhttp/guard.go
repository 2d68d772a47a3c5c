// Package authhttp is the HTTP side of platform/auth: the settings that
// turn auth on, the Guard that authenticates every request against the
// replicated auth state, the per-route access rules (Router, Need) that
// authorize it, and the /v1/auth admin API.
package authhttp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
)

// Settings are the auth settings of every Steward process.
type Settings struct {
	Auth Switch `envconfig:"AUTH" default:"off" desc:"on: every request but /healthz, /readyz and /openapi.json needs a bearer token with the access its route names"`
	// BootstrapToken creates a root token with this secret on first start,
	// when no token was ever issued (Consul's bootstrap, declared).
	BootstrapToken string `envconfig:"AUTH_BOOTSTRAP_TOKEN" desc:"secret of the root token created on first start when no token was issued yet (at least 32 characters)"`
	// Token is what Steward's own calls carry: self-registration, the
	// scaler's and the gateway's calls to the other services.
	Token string `envconfig:"AUTH_TOKEN" desc:"bearer token of this process's own calls to Steward (self-registration, the scaler's and gateway's calls)"`
	// MetricsPublic serves /metrics without a token.
	MetricsPublic bool `envconfig:"METRICS_PUBLIC" default:"false" desc:"serve /metrics without a token (else it needs metrics read)"`
	// Voters are the replicas that vote on the auth log (stream
	// STEWARD_AUTH); every other process follows it as an observer.
	AuthVoters []string `envconfig:"AUTH_VOTERS" desc:"replica ids that vote on the auth log, comma-separated (empty: config-0; set it to the config service's voters)"`
}

// Switch is an on/off setting.
type Switch bool

// UnmarshalText accepts on, off, true and false.
func (s *Switch) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "on", "true", "1":
		*s = true
	case "off", "false", "0", "":
		*s = false
	default:
		return fmt.Errorf("want on or off")
	}
	return nil
}

// String is "on" or "off".
func (s Switch) String() string {
	if s {
		return "on"
	}
	return "off"
}

// AuthVoterIDs returns the auth log's voters: AuthVoters, else config-0.
func (s Settings) AuthVoterIDs() []string {
	var out []string
	for _, v := range s.AuthVoters {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return []string{"config-0"}
	}
	return out
}

// Guard authenticates requests against one replica of the auth log and
// cuts the requests a revocation or role change no longer allows.
type Guard struct {
	log           *qlog.Log
	machine       *auth.Machine
	logger        *slog.Logger
	metricsPublic bool

	mu     sync.Mutex
	active map[*activeRequest]struct{}

	cacheMu sync.RWMutex
	cache   map[string]cachedPrincipal // by secret
}

// activeRequest is an authorized request in flight: what it was allowed
// with, to be checked again when the auth state changes.
type activeRequest struct {
	secret string
	allow  func(auth.Principal) error
	cancel context.CancelCauseFunc
}

// NewGuard returns the Guard of a process whose auth replica is l over m.
func NewGuard(l *qlog.Log, m *auth.Machine, metricsPublic bool, logger *slog.Logger) *Guard {
	return &Guard{log: l, machine: m, logger: logger, metricsPublic: metricsPublic,
		active: map[*activeRequest]struct{}{}, cache: map[string]cachedPrincipal{}}
}

// authenticated is what the Guard's middleware leaves in a request's
// context: one value, so that a request costs one context.
type authenticated struct {
	p      auth.Principal
	secret string
	guard  *Guard
	// handoff cancels the request's context with the reason its token no
	// longer allows it (hold), whether its handler serves it or a
	// goroutine it detached to (a watch stream, web.Detach); what the
	// Guard holds for the request is released when that ends.
	handoff *web.Handoff
}

// ctxKey is the context key of *authenticated.
type ctxKey struct{}

// Authenticate returns the principal of the request's bearer token, or an
// Unauthorized fault: missing, malformed, unknown, revoked or expired.
func (g *Guard) Authenticate(r *http.Request) (auth.Principal, string, error) {
	secret, err := Bearer(r)
	if err != nil {
		return auth.Principal{}, "", err
	}
	p, err := g.principal(r.Context(), secret)
	if err != nil {
		// The auth replica not ready yet is a 503, not a server error.
		err = qloghttp.Classify(err)
	}
	return p, secret, err
}

// Bearer returns the secret of r's bearer token, or an Unauthorized
// fault: no Authorization header, or a malformed one.
func Bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", fault.New(fault.Unauthorized, "this request needs a token: Authorization: Bearer <secret>")
	}
	return auth.ParseBearer(h)
}

// principal authenticates secret on the local replica: a revocation is
// seen as soon as this replica applied it. A principal is remembered
// with the auth log's revision it was read at and reused while the log
// has not moved and the token has not expired, so that a request costs a
// map lookup rather than a hash, a read of the log and the merging of
// its roles' rules.
func (g *Guard) principal(ctx context.Context, secret string) (auth.Principal, error) {
	now := time.Now()
	rev := g.log.Revision()
	g.cacheMu.RLock()
	c, ok := g.cache[secret]
	g.cacheMu.RUnlock()
	if ok && c.rev == rev && (c.p.ExpiresAt.IsZero() || now.Before(c.p.ExpiresAt)) {
		return c.p, nil
	}
	var p auth.Principal
	err := g.log.Read(ctx, qlog.Serializable, func(at int64) error {
		var err error
		if p, err = g.machine.Authenticate(secret, now); err == nil {
			rev = at
		}
		return err
	})
	if err == nil {
		g.cacheMu.Lock()
		if len(g.cache) >= maxCachedPrincipals {
			clear(g.cache)
		}
		g.cache[secret] = cachedPrincipal{rev: rev, p: p}
		g.cacheMu.Unlock()
	}
	return p, err
}

// maxCachedPrincipals bounds the remembered principals; past it the
// cache starts again empty.
const maxCachedPrincipals = 4096

// cachedPrincipal is a principal and the auth log revision it is true at.
type cachedPrincipal struct {
	rev int64
	p   auth.Principal
}

// open are the paths every client may reach without a token.
func open(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/openapi.json"
}

// Middleware authenticates every request but the open ones and puts its
// Principal in the context for the routes' Needs; /metrics needs metrics
// read unless public, and the replica's status (qloghttp.StatusPath)
// metrics read even then, as it names the replica's peers. A request it
// refuses is answered 401 (403 for those two) and logged at WARN with the
// token id, never the secret.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if open(r.URL.Path) || (g.metricsPublic && r.URL.Path == "/metrics") {
			next.ServeHTTP(w, r)
			return
		}
		p, secret, err := g.Authenticate(r)
		if err == nil && (r.URL.Path == "/metrics" || r.URL.Path == qloghttp.StatusPath) {
			err = p.Require(auth.Metrics, "", auth.Read)
		}
		if err != nil {
			g.deny(w, r, p, err)
			return
		}
		// One copy of the request for all that auth adds: the
		// principal, and the cancellation hold may need, which reaches
		// a watch that detached from its handler too (web.Offer).
		a := &authenticated{p: p, secret: secret, guard: g}
		ctx, h := web.Offer(context.WithValue(r.Context(), ctxKey{}, a))
		a.handoff = h
		defer h.Return()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// deny is Deny with the Guard's logger.
func (g *Guard) deny(w http.ResponseWriter, r *http.Request, p auth.Principal, err error) {
	Deny(w, r, g.logger, p.ID, err)
}

// Deny answers a refused request with err and logs it at WARN: the token
// id (empty when there was no valid token), the route and the reason,
// never the secret.
func Deny(w http.ResponseWriter, r *http.Request, logger *slog.Logger, token string, err error) {
	logger.Warn("request denied", "token", token, "method", r.Method, "path", r.URL.Path,
		"request_id", web.RequestID(r.Context()), "reason", err.Error())
	web.Error(w, r, logger, err)
}

// holdAfter is how long a request runs before the Guard watches it:
// most requests end sooner, and registering each would cost every
// request a lock on the Guard.
const holdAfter = 500 * time.Millisecond

// hold watches an authorized request that runs past holdAfter until
// release is called, as the request ends (web.Handoff.AtEnd): it is
// checked at once against the auth state as it is then, and again after
// every change of it (a token revoked, a role changed), and its context
// is cancelled with the reason when its token no longer allows it (a
// watch or blocking query ends, answered 401 or 403). A revocation thus
// reaches a request within holdAfter at most.
func (g *Guard) hold(ctx context.Context, r *authenticated, allow func(auth.Principal) error) func() {
	a := &activeRequest{secret: r.secret, allow: allow, cancel: r.handoff.Cancel}
	var mu sync.Mutex // orders the registration and the release
	released := false
	timer := time.AfterFunc(holdAfter, func() {
		mu.Lock()
		defer mu.Unlock()
		if released {
			return
		}
		g.mu.Lock()
		g.active[a] = struct{}{}
		g.mu.Unlock()
		// ctx, net/http's, ends as the handler returns: a watch that
		// detached from it runs on.
		g.check(context.WithoutCancel(ctx), a)
	})
	return func() {
		if !timer.Stop() {
			mu.Lock()
			released = true
			g.mu.Lock()
			delete(g.active, a)
			g.mu.Unlock()
			mu.Unlock()
		}
	}
}

// Run checks the requests in flight again after every change of the auth
// state (a token revoked, a role changed) and, when a second passes
// without one, for tokens that expired; it returns when ctx ends.
func (g *Guard) Run(ctx context.Context) {
	if g.log.WaitReady(ctx) != nil {
		return
	}
	for {
		watch, err := g.log.Watch(g.log.Revision()+1, nil)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for ctx.Err() == nil {
			wctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := watch.NextRevision(wctx)
			cancel()
			if err != nil && ctx.Err() == nil && wctx.Err() == nil {
				break // the watch fell behind: open a new one
			}
			g.recheck(ctx)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// recheck cancels every request in flight its token no longer allows.
func (g *Guard) recheck(ctx context.Context) {
	g.mu.Lock()
	held := make([]*activeRequest, 0, len(g.active))
	for a := range g.active {
		held = append(held, a)
	}
	g.mu.Unlock()
	for _, a := range held {
		g.check(ctx, a)
	}
}

// check cancels a when its token no longer allows it.
func (g *Guard) check(ctx context.Context, a *activeRequest) {
	p, err := g.principal(ctx, a.secret)
	if err == nil {
		err = a.allow(p)
	}
	if k := fault.KindOf(err); k == fault.Unauthorized || k == fault.Forbidden {
		a.cancel(err)
	}
}

// Principal returns the request's principal, and whether auth is on (a
// Guard authenticated the request).
func Principal(ctx context.Context) (auth.Principal, bool) {
	a, ok := ctx.Value(ctxKey{}).(*authenticated)
	if !ok {
		return auth.Principal{}, false
	}
	return a.p, true
}

// By returns the id of the token a request was made with, for the log's
// audit fields; empty with auth off.
func By(ctx context.Context) string {
	p, _ := Principal(ctx)
	return p.ID
}

// Check is Principal.Require for handlers that check names themselves (a
// transaction's keys): nil with auth off.
func Check(ctx context.Context, resource auth.Resource, name string, need auth.Access) error {
	p, on := Principal(ctx)
	if !on {
		return nil
	}
	return p.Require(resource, name, need)
}

// CheckPrefix is Principal.RequirePrefix for handlers: nil with auth off.
func CheckPrefix(ctx context.Context, resource auth.Resource, prefix string, need auth.Access) error {
	p, on := Principal(ctx)
	if !on {
		return nil
	}
	return p.RequirePrefix(resource, prefix, need)
}

// Filter is Principal.Filter for lists and watches: with auth off it
// keeps everything.
func Filter(ctx context.Context, resource auth.Resource, need auth.Access) func(string) bool {
	p, on := Principal(ctx)
	if !on {
		return func(string) bool { return true }
	}
	return p.Filter(resource, need)
}

// Cause returns why a request's context ended: the auth error a
// revocation cancelled it with, else ctx.Err().
func Cause(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil {
		if k := fault.KindOf(err); k == fault.Unauthorized || k == fault.Forbidden {
			return err
		}
	}
	return ctx.Err()
}

// Secure returns o with the Guard in front of its routes and the admin
// API mounted beside them. With a nil Guard (auth off) only the admin API
// is mounted, answering that auth is off (Disabled).
func (g *Guard) Secure(o web.Options, admin *Admin) web.Options {
	if g == nil {
		return Disabled(o)
	}
	o.Middleware = append(o.Middleware, g.Middleware)
	return withAdmin(o, admin)
}
