package proxy

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/stewardhq/steward/gateway/route"
)

// ServicePrefix is the built-in route: /s/{service}/rest goes to an
// instance of service as /rest.
const ServicePrefix = "/s/"

var serviceName = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// controlPlane maps Steward's own API to the services that serve it, found
// through the registry like any other service. Paths are proxied as they
// are.
var controlPlane = []struct{ prefix, service string }{
	{"/v1/kv", "steward-config"},
	{"/v1/txn", "steward-config"},
	{"/v1/watch", "steward-config"},
	{"/v1/history", "steward-config"},
	{"/v1/leases", "steward-config"},
	{"/v1/services", "steward-registry"},
	{"/v1/registry", "steward-registry"},
	{"/v1/elections", "steward-election"},
	{"/v1/scalers", "steward-scaler"},
	{"/v1/metrics", "steward-scaler"},
	// Every replicated service serves /v1/auth from the same auth log.
	{"/v1/auth", "steward-config"},
}

// controlRoutes are the control plane's routes, built once. Reads and
// idempotent writes are retried once elsewhere, as for /s/.
var controlRoutes = func() []*route.Route {
	var out []*route.Route
	for _, c := range controlPlane {
		out = append(out, &route.Route{Name: "control" + c.prefix, Match: route.Match{PathPrefix: c.prefix},
			Service: c.service, Retry: &route.Retry{Attempts: 2}})
	}
	return out
}()

// resolve finds the route for r: a configured one first, then /s/, then
// the control plane.
func (p *Proxy) resolve(r *http.Request) *route.Route {
	if rt := p.routes.Load().Match(r); rt != nil {
		return rt
	}
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, ServicePrefix); ok {
		name, _, _ := strings.Cut(rest, "/")
		// Only a service the registry lists is routed, so a name made
		// up by a client costs a map lookup and a 404, nothing kept.
		if !p.cfg.Pools.Known(r.Context(), name) {
			return nil
		}
		// Only a valid name is ever cached: a hit needs no regexp.
		if rt, ok := p.builtin.Load(name); ok {
			return rt.(*route.Route)
		}
		if !serviceName.MatchString(name) || name == route.SelfService {
			return nil
		}
		rt := &route.Route{Name: "s/" + name, Match: route.Match{PathPrefix: ServicePrefix + name},
			Service: name, StripPrefix: true, Retry: &route.Retry{Attempts: 2}}
		actual, _ := p.builtin.LoadOrStore(name, rt)
		return actual.(*route.Route)
	}
	for _, rt := range controlRoutes {
		if path == rt.Match.PathPrefix || strings.HasPrefix(path, rt.Match.PathPrefix+"/") || strings.HasPrefix(path, rt.Match.PathPrefix+"?") {
			return rt
		}
	}
	return nil
}
