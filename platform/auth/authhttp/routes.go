package authhttp

import (
	"net/http"
	"sort"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
)

// Need is the access a route needs. Every route of every service is
// declared with one (Router), so that none is left open by accident.
type Need struct {
	Resource auth.Resource
	Access   auth.Access
	// Name returns what the request acts on: a key, a service or
	// election name; nil for the unnamed resources (leases, metrics,
	// auth). An error is the request's own (a bad name): the handler
	// answers it.
	Name func(*http.Request) (string, error)
	// Prefix says Name is a prefix the request covers (a watch or delete
	// over it): the token must be allowed all of it.
	Prefix bool
	// InHandler says the handler checks the names itself, with Check or
	// Filter (a transaction's keys, a list that drops what the token may
	// not read): the route is authenticated, and the table says so.
	InHandler bool
	// AnyToken allows every authenticated request (whoami).
	AnyToken bool
	// Also, if set, names a second resource that grants the same access
	// to some names: the gateway's route documents are config keys that
	// a routes rule grants as well as a kv rule. It returns the resource
	// and the name there, and whether name has one.
	Also func(name string) (auth.Resource, string, bool)
}

// Read and Write are the Needs of a named resource.
func Read(resource auth.Resource, name func(*http.Request) (string, error)) Need {
	return Need{Resource: resource, Access: auth.Read, Name: name}
}

// Write is Read for writes.
func Write(resource auth.Resource, name func(*http.Request) (string, error)) Need {
	return Need{Resource: resource, Access: auth.Write, Name: name}
}

// Handler is a Need checked by the handler itself.
func Handler(resource auth.Resource, access auth.Access) Need {
	return Need{Resource: resource, Access: access, InHandler: true}
}

// allow returns the check of a principal for r: nil when allowed.
func (n Need) allow(r *http.Request) (func(auth.Principal) error, error) {
	name := ""
	if n.Name != nil {
		var err error
		if name, err = n.Name(r); err != nil {
			return nil, err
		}
	}
	return func(p auth.Principal) error {
		err := n.check(p, n.Resource, name)
		if err != nil && n.Also != nil {
			if res, alt, ok := n.Also(name); ok && n.check(p, res, alt) == nil {
				return nil
			}
		}
		return err
	}, nil
}

// check asks p for the Need's access on name of resource.
func (n Need) check(p auth.Principal, resource auth.Resource, name string) error {
	switch {
	case n.AnyToken:
		return nil
	case n.InHandler:
		if !p.Reaches(resource, name, n.Access) {
			return p.Require(resource, name, n.Access)
		}
		return nil
	case n.Prefix:
		return p.RequirePrefix(resource, name, n.Access)
	}
	return p.Require(resource, name, n.Access)
}

// Route is one route as the table records it.
type Route struct {
	Method, Pattern string
	Need            Need
}

// Router mounts routes with their Needs on a chi router and records them
// in a table (Routes), which tests walk to check every route of a
// service has a rule.
type Router struct {
	chi   chi.Router
	table *[]Route
}

// NewRouter wraps r; routes recorded go to table.
func NewRouter(r chi.Router, table *[]Route) Router { return Router{chi: r, table: table} }

// Method mounts h for method and pattern behind need: with auth on, a
// request its token does not allow is answered 403 (the Guard already
// answered 401 for one without a valid token), and one whose token is
// revoked or loses the access while it runs (a watch, a blocking query)
// has its context cancelled with the reason (Cause), also after the
// handler returned when it left the request to a goroutine of its own
// (a watch stream, web.Detach).
func (rt Router) Method(method, pattern string, need Need, h http.Handler) {
	*rt.table = append(*rt.table, Route{Method: method, Pattern: pattern, Need: need})
	rt.chi.Method(method, pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, on := r.Context().Value(ctxKey{}).(*authenticated)
		if !on {
			h.ServeHTTP(w, r)
			return
		}
		p, g := a.p, a.guard
		allow, err := need.allow(r)
		if err != nil {
			web.Error(w, r, g.logger, err)
			return
		}
		if err := allow(p); err != nil {
			g.deny(w, r, p, err)
			return
		}
		defer a.handoff.AtEnd(g.hold(r.Context(), a, allow))
		h.ServeHTTP(w, r)
	}))
}

// Get mounts a GET route.
func (rt Router) Get(pattern string, need Need, h http.Handler) {
	rt.Method(http.MethodGet, pattern, need, h)
}

// Put mounts a PUT route.
func (rt Router) Put(pattern string, need Need, h http.Handler) {
	rt.Method(http.MethodPut, pattern, need, h)
}

// Post mounts a POST route.
func (rt Router) Post(pattern string, need Need, h http.Handler) {
	rt.Method(http.MethodPost, pattern, need, h)
}

// Delete mounts a DELETE route.
func (rt Router) Delete(pattern string, need Need, h http.Handler) {
	rt.Method(http.MethodDelete, pattern, need, h)
}

// Unruled returns the routes of h (a chi router) that are neither in
// table nor open (/healthz, /readyz, /metrics, /openapi.json), sorted: a
// route mounted without a Need.
func Unruled(h http.Handler, table []Route) ([]string, error) {
	routes, ok := h.(chi.Routes)
	if !ok {
		return nil, fault.New(fault.Internal, "not a chi router")
	}
	ruled := map[string]bool{}
	for _, rt := range table {
		ruled[rt.Method+" "+rt.Pattern] = true
	}
	var out []string
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if !ruled[method+" "+route] && !open(route) && route != "/metrics" {
			out = append(out, method+" "+route)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}
