// Package route is the gateway's routing table: route documents as stored
// under the config key prefix /steward/gateway/routes/, their validation,
// and matching a request to the route that serves it. It is pure: no I/O.
package route

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/wire"
)

// Duration is a time.Duration written as "10s" in JSON.
type Duration = wire.Duration

// Route is one route document.
type Route struct {
	// Name is the document's key under the routes prefix; set on load.
	Name  string `json:"-"`
	Match Match  `json:"match"`
	// Service is the registry service that serves the route.
	Service string `json:"service"`
	// StripPrefix removes Match.PathPrefix from the upstream path;
	// RewritePrefix replaces it. At most one is set.
	StripPrefix   bool   `json:"stripPrefix,omitempty"`
	RewritePrefix string `json:"rewritePrefix,omitempty"`
	// Timeout bounds the whole request, retries included.
	Timeout      Duration      `json:"timeout,omitempty"`
	Retry        *Retry        `json:"retry,omitempty"`
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	RateLimit    *RateLimit    `json:"rateLimit,omitempty"`
	// Split sends shares of the traffic to instances by version.
	Split []Split `json:"split,omitempty"`
}

// Match selects requests; every field set must match.
type Match struct {
	PathPrefix string            `json:"pathPrefix"`
	Host       string            `json:"host,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
}

// Retry is a route's retry policy.
type Retry struct {
	// Attempts is the number of retries after the first try.
	Attempts      int      `json:"attempts"`
	PerTryTimeout Duration `json:"perTryTimeout,omitempty"`
}

// Load-balancing policies.
const (
	LeastRequest = "least-request" // power of two choices (default)
	RoundRobin   = "round-robin"   // smooth weighted round robin
	RingHash     = "ring-hash"     // consistent hashing with bounded loads
	PeakEWMA     = "peak-ewma"     // latency-aware (Finagle, Linkerd)
)

// LoadBalancer is a route's balancing policy.
type LoadBalancer struct {
	Policy string `json:"policy"`
	// HashHeader or HashCookie is the ring-hash key.
	HashHeader string `json:"hashHeader,omitempty"`
	HashCookie string `json:"hashCookie,omitempty"`
}

// RateLimit is a token bucket per route, or per client when Key is set:
// "ip" (the client address) or "header:<Name>".
type RateLimit struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst"`
	Key   string  `json:"key,omitempty"`
}

// Split is one version's share of a route's traffic.
type Split struct {
	Version string `json:"version"`
	Weight  int    `json:"weight"`
}

var (
	serviceName = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)
	routeName   = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// maxSplitWeight bounds a split entry's weight.
const maxSplitWeight = 1_000_000

// SelfService is the gateway's own service name: no route may target it.
const SelfService = "steward-gateway"

// Parse decodes and validates a route document named name.
func Parse(name string, doc []byte) (*Route, error) {
	var r Route
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fault.New(fault.Invalid, "route %q: %v", name, err)
	}
	// More would miss a stray '}' or ']': only the end of input will do.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fault.New(fault.Invalid, "route %q: trailing data after the document", name)
	}
	r.Name = name
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks a route.
func (r *Route) Validate() error {
	bad := func(format string, args ...any) error {
		return fault.New(fault.Invalid, "route %q: %s", r.Name, fmt.Sprintf(format, args...))
	}
	if !routeName.MatchString(r.Name) {
		return bad("name: want 1 to 128 of A-Z, a-z, 0-9, '.', '_' and '-'")
	}
	if !strings.HasPrefix(r.Match.PathPrefix, "/") {
		return bad("match.pathPrefix %q must start with '/'", r.Match.PathPrefix)
	}
	if h := r.Match.Host; hostOnly(h) != h {
		// Matches compares the request's host without its port.
		return bad("match.host %q: a host name without a port", h)
	}
	for name := range r.Match.Headers {
		if name == "" {
			return bad("match.headers: empty header name")
		}
		if !httpguts.ValidHeaderFieldName(name) {
			return bad("match.headers: %q is not a valid header name", name)
		}
	}
	if !serviceName.MatchString(r.Service) {
		return bad("service %q: want a registry service name", r.Service)
	}
	if r.Service == SelfService {
		return bad("service %q is the gateway itself: the route would loop", r.Service)
	}
	if r.StripPrefix && r.RewritePrefix != "" {
		return bad("stripPrefix and rewritePrefix exclude each other")
	}
	if r.RewritePrefix != "" && !strings.HasPrefix(r.RewritePrefix, "/") {
		return bad("rewritePrefix %q must start with '/'", r.RewritePrefix)
	}
	if r.Timeout < 0 || r.Timeout.Std() > 10*time.Minute {
		return bad("timeout: want up to 10m")
	}
	if rt := r.Retry; rt != nil && (rt.Attempts < 0 || rt.Attempts > 5 || rt.PerTryTimeout < 0) {
		return bad("retry.attempts: want 0 to 5, perTryTimeout non-negative")
	}
	if lb := r.LoadBalancer; lb != nil {
		switch lb.Policy {
		case LeastRequest, RoundRobin, PeakEWMA:
			if lb.HashHeader != "" || lb.HashCookie != "" {
				return bad("loadBalancer: hashHeader and hashCookie are for ring-hash")
			}
		case RingHash:
			if (lb.HashHeader == "") == (lb.HashCookie == "") {
				return bad("loadBalancer: ring-hash needs exactly one of hashHeader and hashCookie")
			}
		default:
			return bad("loadBalancer.policy %q: want %s, %s, %s or %s", lb.Policy, LeastRequest, RoundRobin, RingHash, PeakEWMA)
		}
	}
	if rl := r.RateLimit; rl != nil {
		if rl.RPS <= 0 || rl.Burst < 1 {
			return bad("rateLimit: rps must be positive and burst at least 1")
		}
		name, isHeader := strings.CutPrefix(rl.Key, "header:")
		if rl.Key != "" && rl.Key != "ip" && (!isHeader || !httpguts.ValidHeaderFieldName(name)) {
			return bad("rateLimit.key %q: want \"ip\" or \"header:<Name>\"", rl.Key)
		}
	}
	if len(r.Split) > 0 {
		total := 0
		seen := map[string]bool{}
		for _, s := range r.Split {
			if s.Version == "" || s.Weight < 0 || seen[s.Version] {
				return bad("split: every entry needs a distinct version and a non-negative weight")
			}
			if s.Weight > maxSplitWeight {
				// Bounded so that no sum of weights overflows.
				return bad("split: a weight is at most %d", maxSplitWeight)
			}
			seen[s.Version] = true
			total += s.Weight
		}
		if total <= 0 {
			return bad("split: the weights must add up to more than 0")
		}
	}
	return nil
}

// Matches reports whether req is for r.
func (r *Route) Matches(req *http.Request) bool {
	if !strings.HasPrefix(req.URL.Path, r.Match.PathPrefix) {
		return false
	}
	if r.Match.Host != "" && !strings.EqualFold(hostOnly(req.Host), r.Match.Host) {
		return false
	}
	for k, v := range r.Match.Headers {
		if req.Header.Get(k) != v {
			return false
		}
	}
	return true
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i]
	}
	return hostport
}

// UpstreamPath is the path the upstream sees.
func (r *Route) UpstreamPath(path string) string {
	switch {
	case r.StripPrefix:
		rest := strings.TrimPrefix(path, r.Match.PathPrefix)
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest
		}
		return rest
	case r.RewritePrefix != "":
		return joinPath(r.RewritePrefix, strings.TrimPrefix(path, r.Match.PathPrefix))
	}
	return path
}

// joinPath joins a and b with exactly one '/' between them (when b is not
// empty), as httputil does for a target's path.
func joinPath(a, b string) string {
	if b == "" {
		return a
	}
	switch aslash, bslash := strings.HasSuffix(a, "/"), strings.HasPrefix(b, "/"); {
	case aslash && bslash:
		return a + b[1:]
	case !aslash && !bslash:
		return a + "/" + b
	}
	return a + b
}

// Table is an immutable, ordered set of routes: the most specific first
// (longer path prefix, then a host, then more headers, then name).
type Table struct{ routes []*Route }

// NewTable orders routes.
func NewTable(routes []*Route) *Table {
	rs := slices.Clone(routes)
	slices.SortFunc(rs, func(a, b *Route) int {
		return cmp.Or(
			-cmp.Compare(len(a.Match.PathPrefix), len(b.Match.PathPrefix)),
			-cmp.Compare(len(a.Match.Host), len(b.Match.Host)),
			-cmp.Compare(len(a.Match.Headers), len(b.Match.Headers)),
			cmp.Compare(a.Name, b.Name))
	})
	return &Table{routes: rs}
}

// Match returns the route for req, or nil.
func (t *Table) Match(req *http.Request) *Route {
	for _, r := range t.routes {
		if r.Matches(req) {
			return r
		}
	}
	return nil
}

// Routes returns the routes in match order.
func (t *Table) Routes() []*Route { return t.routes }
