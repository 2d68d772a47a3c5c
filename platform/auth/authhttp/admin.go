package authhttp

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qloghttp"
	"github.com/stewardhq/steward/platform/web"
)

// maxAdminBody bounds a role document or token request.
const maxAdminBody = 64 << 10

// maxCommandBytes bounds an auth command in the log.
const maxCommandBytes = 1 << 20

// Admin serves /v1/auth on the auth log l over m: roles, tokens, whoami
// and the audit of auth changes. Every replicated service mounts it, so
// any of them (and the gateway, which routes /v1/auth) answers.
type Admin struct {
	log     *qlog.Log
	machine *auth.Machine
	qloghttp.Handler
}

// NewAdmin returns the admin API of the auth replica l over m.
func NewAdmin(l *qlog.Log, m *auth.Machine, logger *slog.Logger) *Admin {
	return &Admin{log: l, machine: m, Handler: qloghttp.NewHandler(l, logger)}
}

// Disabled mounts /v1/auth on o's routes for a server with auth off:
// every admin request is answered 404, saying auth is off, so that the
// API (and its OpenAPI document) is the same either way.
func Disabled(o web.Options) web.Options { return withAdmin(o, &Admin{}) }

// withAdmin returns o with admin's routes mounted beside its own.
func withAdmin(o web.Options, admin *Admin) web.Options {
	routes := o.Routes
	var table []Route
	o.Routes = func(r chi.Router) {
		if routes != nil {
			routes(r)
		}
		admin.Routes(NewRouter(r, &table))
	}
	return o
}

// errAuthOff answers the admin API of a server with auth off.
var errAuthOff = fault.New(fault.NotFound, "auth is off on this server (STEWARD_AUTH)")

// Routes mounts /v1/auth on rt.
func (a *Admin) Routes(rt Router) {
	read, write := Need{Resource: auth.AuthAdmin, Access: auth.Read}, Need{Resource: auth.AuthAdmin, Access: auth.Write}
	handle := a.Handle
	if a.log == nil {
		handle = func(func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { web.Error(w, r, nil, errAuthOff) }
		}
	}
	rt.Get("/v1/auth/whoami", Need{AnyToken: true}, handle(a.whoami))
	rt.Get("/v1/auth/roles", read, handle(a.listRoles))
	rt.Post("/v1/auth/roles", write, handle(a.putRole(true)))
	rt.Get("/v1/auth/roles/{name}", read, handle(a.getRole))
	rt.Put("/v1/auth/roles/{name}", write, handle(a.putRole(false)))
	rt.Delete("/v1/auth/roles/{name}", write, handle(a.deleteRole))
	rt.Get("/v1/auth/tokens", read, handle(a.listTokens))
	rt.Post("/v1/auth/tokens", write, handle(a.createToken))
	rt.Get("/v1/auth/tokens/{id}", read, handle(a.getToken))
	rt.Delete("/v1/auth/tokens/{id}", write, handle(a.revokeToken))
	rt.Get("/v1/auth/audit", read, handle(a.audit))
}

// read runs fn on the replica's state, linearizably unless the request
// asks for ?consistency=serializable.
func (a *Admin) read(r *http.Request, fn func()) error {
	c, err := qloghttp.Consistency(r)
	if err != nil {
		return err
	}
	return a.log.Read(r.Context(), c, func(rev int64) error { fn(); return nil })
}

func (a *Admin) whoami(w http.ResponseWriter, r *http.Request) error {
	p, on := Principal(r.Context())
	if !on {
		return fault.New(fault.NotFound, "auth is off on this server (STEWARD_AUTH)")
	}
	return web.Encode(w, http.StatusOK, p)
}

func (a *Admin) listRoles(w http.ResponseWriter, r *http.Request) error {
	var roles []auth.Role
	if err := a.read(r, func() { roles = a.machine.Roles() }); err != nil {
		return err
	}
	return web.Encode(w, http.StatusOK, map[string]any{"items": roles})
}

func (a *Admin) getRole(w http.ResponseWriter, r *http.Request) error {
	name, err := web.PathParam(r, "name")
	if err != nil {
		return err
	}
	var role auth.Role
	var ok bool
	if err := a.read(r, func() { role, ok = a.machine.Role(name) }); err != nil {
		return err
	}
	if !ok {
		return fault.New(fault.NotFound, "no role %q", name)
	}
	return web.Encode(w, http.StatusOK, role)
}

// putRole creates (POST, the name in the body; 201) or replaces (PUT,
// the name in the path; 200) a role.
func (a *Admin) putRole(create bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := web.ReadBody(w, r, maxAdminBody)
		if err != nil {
			return err
		}
		role, err := auth.ParseRole(body)
		if err != nil {
			return err
		}
		if !create {
			name, err := web.PathParam(r, "name")
			if err != nil {
				return err
			}
			if role.Name != name {
				return fault.New(fault.Invalid, "the role document names %q, the path %q", role.Name, name)
			}
		}
		res, _, err := qloghttp.Commit[auth.Result](w, r, a.log, auth.Command{Op: auth.OpPutRole, By: By(r.Context()), Role: &role}, maxCommandBytes)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if create {
			status = http.StatusCreated
		}
		return web.Encode(w, status, res.Role)
	}
}

func (a *Admin) deleteRole(w http.ResponseWriter, r *http.Request) error {
	name, err := web.PathParam(r, "name")
	if err != nil {
		return err
	}
	res, _, err := qloghttp.Commit[auth.Result](w, r, a.log, auth.Command{Op: auth.OpDeleteRole, By: By(r.Context()), Name: name}, maxCommandBytes)
	if err != nil {
		return err
	}
	return web.Encode(w, http.StatusOK, res.Role)
}

func (a *Admin) listTokens(w http.ResponseWriter, r *http.Request) error {
	var tokens []auth.Token
	if err := a.read(r, func() { tokens = a.machine.Tokens() }); err != nil {
		return err
	}
	return web.Encode(w, http.StatusOK, map[string]any{"items": tokens})
}

func (a *Admin) getToken(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathParam(r, "id")
	if err != nil {
		return err
	}
	var t auth.Token
	var ok bool
	if err := a.read(r, func() { t, ok = a.machine.Token(id) }); err != nil {
		return err
	}
	if !ok {
		return fault.New(fault.NotFound, "no token %q", id)
	}
	return web.Encode(w, http.StatusOK, t)
}

// createToken issues a token: the secret is made here, shown once in the
// answer, and only its hash enters the log.
func (a *Admin) createToken(w http.ResponseWriter, r *http.Request) error {
	req, err := web.Decode[auth.TokenRequest](w, r, maxAdminBody)
	if err != nil {
		return err
	}
	cmd, secret := auth.CreateToken(By(r.Context()), req)
	res, _, err := qloghttp.Commit[auth.Result](w, r, a.log, cmd, maxCommandBytes)
	if err != nil {
		return err
	}
	return web.Encode(w, http.StatusCreated, auth.Issued{Token: *res.Token, Secret: secret})
}

func (a *Admin) revokeToken(w http.ResponseWriter, r *http.Request) error {
	id, err := web.PathParam(r, "id")
	if err != nil {
		return err
	}
	res, _, err := qloghttp.Commit[auth.Result](w, r, a.log, auth.Command{Op: auth.OpRevokeToken, By: By(r.Context()), ID: id}, maxCommandBytes)
	if err != nil {
		return err
	}
	return web.Encode(w, http.StatusOK, res.Token)
}

func (a *Admin) audit(w http.ResponseWriter, r *http.Request) error {
	limit, _, err := qloghttp.Int64Query(r, "limit", 1)
	if err != nil {
		return err
	}
	if limit == 0 || limit > auth.MaxAudit {
		limit = auth.MaxAudit
	}
	var out []auth.AuditEntry
	if err := a.read(r, func() { out = a.machine.Audit(int(limit)) }); err != nil {
		return err
	}
	return web.Encode(w, http.StatusOK, map[string]any{"items": out})
}
