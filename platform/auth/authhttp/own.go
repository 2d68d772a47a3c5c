package authhttp

import (
	"context"
	"sync"

	"github.com/stewardhq/steward/platform/auth"
)

// Own is the token a process's own work runs with (STEWARD_AUTH_TOKEN):
// the commands its background tasks propose, which no request carries,
// record its id as their By. A nil *Own (auth off) has no id.
type Own struct {
	guard  *Guard
	secret string

	mu sync.Mutex
	// id is the id last resolved; failing is set once a failure was
	// logged, so that a token that stays unknown is logged once, not at
	// every command.
	id      string
	failing bool
}

// Own returns the process's own token of secret, resolved on g's replica.
func (g *Guard) Own(secret string) *Own {
	return &Own{guard: g, secret: secret}
}

// ID returns the token's id as this replica's copy of the auth log knows
// it now, once that copy is ready, resolved at every call (cached while the auth log has not
// moved, as a request's token is), so a revocation is seen as soon as it
// is applied here. A token that is missing, unknown, revoked or expired
// has no id: ID returns "" and logs at WARN once until it resolves again.
// The work goes on without one rather than stop: with auth on, that
// token's calls to the other services are refused anyway, which is where
// the process fails, and a command whose By is empty says who made it no
// less truly than one that names a revoked token.
func (o *Own) ID(ctx context.Context) string {
	if o == nil {
		return ""
	}
	// Before the replica has caught up with the auth log, a valid token
	// would look unknown: wait (at once when ready, which it stays).
	err := o.guard.log.WaitReady(ctx)
	var p auth.Principal
	if err == nil {
		p, err = o.guard.principal(ctx, o.secret)
	}
	if err != nil && ctx.Err() != nil {
		return ""
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err != nil && !o.failing:
		o.failing, o.id = true, ""
		o.guard.logger.Warn("this process's own token (STEWARD_AUTH_TOKEN) could not be resolved on the auth log: its own commands record no token id until it is", "err", err)
	case err == nil && (o.failing || p.ID != o.id):
		o.failing, o.id = false, p.ID
		o.guard.logger.Info("this process's own token resolved", "token", p.ID)
	}
	return p.ID
}
