package sdk

import (
	"context"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// Auth is Steward's tokens and roles (STEWARD_AUTH=on): a token holds
// roles, a role holds rules {resource, prefix, access}. Every service
// answers these calls from the same auth log; they need auth write (or
// read), except Whoami.
type Auth struct{ c *Client }

// Auth is Steward's tokens and roles.
func (c *Client) Auth() Auth { return Auth{c} }

// TokenRequest is a token to issue.
type TokenRequest struct {
	Roles       []string
	Description string
	// TTL is how long the token lasts; 0: it never expires.
	TTL time.Duration
	// Secret is the token's secret when the caller chooses it (a
	// deployment declaring its services' tokens); "": a fresh random one.
	Secret string
}

// CreateToken issues a token. The answer holds its secret, which is
// never shown again.
func (a Auth) CreateToken(ctx context.Context, r TokenRequest) (*api.AuthIssued, error) {
	body := api.AuthTokenRequest{Roles: r.Roles}
	if r.Roles == nil {
		body.Roles = []string{}
	}
	if r.Description != "" {
		body.Description = &r.Description
	}
	if r.TTL > 0 {
		ttl := r.TTL.String()
		body.Ttl = &ttl
	}
	if r.Secret != "" {
		body.Secret = &r.Secret
	}
	return decode[api.AuthIssued](a.c.api.CreateToken(ctx, &api.CreateTokenParams{}, body))
}

// Tokens lists the tokens, without their secrets.
func (a Auth) Tokens(ctx context.Context) ([]api.AuthToken, error) {
	l, err := decode[api.AuthTokenList](a.c.api.ListTokens(ctx, &api.ListTokensParams{}))
	if err != nil || l.Items == nil {
		return nil, err
	}
	return *l.Items, nil
}

// Token reads token id (tok_...).
func (a Auth) Token(ctx context.Context, id string) (*api.AuthToken, error) {
	return decode[api.AuthToken](a.c.api.GetToken(ctx, id, &api.GetTokenParams{}))
}

// RevokeToken revokes token id and returns it as it was; every service
// refuses it from then on.
func (a Auth) RevokeToken(ctx context.Context, id string) (*api.AuthToken, error) {
	return decode[api.AuthToken](a.c.api.RevokeToken(ctx, id, &api.RevokeTokenParams{}))
}

// PutRole creates or replaces role.Name with role's rules.
func (a Auth) PutRole(ctx context.Context, role api.AuthRole) (*api.AuthRole, error) {
	if role.Rules == nil {
		role.Rules = []api.AuthRule{}
	}
	return decode[api.AuthRole](a.c.api.PutRole(ctx, role.Name, &api.PutRoleParams{}, role))
}

// Role reads role name.
func (a Auth) Role(ctx context.Context, name string) (*api.AuthRole, error) {
	return decode[api.AuthRole](a.c.api.GetRole(ctx, name, &api.GetRoleParams{}))
}

// Roles lists the roles, root included.
func (a Auth) Roles(ctx context.Context) ([]api.AuthRole, error) {
	l, err := decode[api.AuthRoleList](a.c.api.ListRoles(ctx, &api.ListRolesParams{}))
	if err != nil || l.Items == nil {
		return nil, err
	}
	return *l.Items, nil
}

// DeleteRole deletes role name and returns it as it was.
func (a Auth) DeleteRole(ctx context.Context, name string) (*api.AuthRole, error) {
	return decode[api.AuthRole](a.c.api.DeleteRole(ctx, name, &api.DeleteRoleParams{}))
}

// Whoami is the caller's token with the rules its roles grant.
func (a Auth) Whoami(ctx context.Context) (*api.AuthPrincipal, error) {
	return decode[api.AuthPrincipal](a.c.api.Whoami(ctx, &api.WhoamiParams{}))
}

// Audit is the latest auth changes, up to limit (0: the server's
// default): who made each, what, at which revision and log time.
func (a Auth) Audit(ctx context.Context, limit int) ([]api.AuthAuditEntry, error) {
	p := &api.AuthAuditParams{}
	if limit > 0 {
		p.Limit = &limit
	}
	l, err := decode[api.AuthAuditList](a.c.api.AuthAudit(ctx, p))
	if err != nil || l.Items == nil {
		return nil, err
	}
	return *l.Items, nil
}
