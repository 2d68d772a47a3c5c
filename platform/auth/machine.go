package auth

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/envelope"
)

// Service names the auth log: stream STEWARD_AUTH, which every
// replica of every service follows.
const Service = "auth"

// The ops of a Command.
const (
	OpPutRole     = "putRole"
	OpDeleteRole  = "deleteRole"
	OpCreateToken = "createToken"
	OpRevokeToken = "revokeToken"
	OpBootstrap   = "bootstrap"
)

// Command is a proposal to the state machine; Op selects the fields that
// matter.
type Command struct {
	Op string `json:"op"`
	// By is the id of the token the change is made with, checked again at
	// apply time (it must still hold write access on auth); empty for the
	// system itself: bootstrap, or a service running without auth.
	By string `json:"by,omitempty"`
	// Role is putRole's document.
	Role *Role `json:"role,omitempty"`
	// Name is deleteRole's role.
	Name string `json:"name,omitempty"`
	// ID is the token createToken and bootstrap make and revokeToken ends.
	ID          string        `json:"id,omitempty"`
	Description string        `json:"description,omitempty"`
	Roles       []string      `json:"roles,omitempty"`
	TTL         time.Duration `json:"ttl,omitempty"` // from the entry's log time; 0 never expires
	// Hash is HashSecret of the new token's secret, made by the proposer:
	// the secret never enters the log.
	Hash string `json:"hash,omitempty"`
}

// Status is the outcome class of a command; a refused command's fault
// (envelope.Problem) says how a client sees it.
type Status string

// Statuses.
const (
	Applied Status = "applied"
	// Skipped: a bootstrap found that tokens were issued before.
	Skipped Status = "skipped"
	Refused Status = "refused"
)

// Result is what Apply returns for a command (JSON-encoded).
type Result struct {
	Status Status `json:"status"`
	Role   *Role  `json:"role,omitempty"`
	Token  *Token `json:"token,omitempty"` // never with its hash
	envelope.Problem
}

// Event types; keys are "role/<name>" and "token/<id>".
const (
	EventRole         = "role"         // data: the Role put
	EventRoleDeleted  = "roleDeleted"  // data: the Role as it was
	EventToken        = "token"        // data: the Token created
	EventTokenRevoked = "tokenRevoked" // data: the Token as it was
)

// AuditEntry is one change of the auth state.
type AuditEntry struct {
	Revision int64     `json:"revision"`
	Time     time.Time `json:"time"` // log time
	By       string    `json:"by"`   // token id, or System
	Op       string    `json:"op"`
	Target   string    `json:"target"` // role name or token id
}

// System is the audit's By for changes made without a token.
const System = "system"

// MaxAudit bounds the audit list: the state keeps the newest changes only,
// so it cannot grow without bound; older ones remain in the log's history
// for as long as the stream retains it.
const MaxAudit = 1000

// Machine is the auth state: roles, tokens and the audit of changes. Apply
// mutates it; the queries (Authenticate, Roles, Tokens, Audit, ...) must
// be called inside qlog.Log.Read, which excludes Apply.
type Machine struct {
	roles  map[string]*Role
	tokens map[string]*Token
	// byHash finds a token by its secret's hash; rebuilt on Restore.
	byHash map[string]string
	// issued counts tokens ever created, so that bootstrap after every
	// token was revoked does not bring a root token back.
	issued int64
	audit  []AuditEntry
}

// New returns an empty state.
func New() *Machine {
	return &Machine{roles: map[string]*Role{}, tokens: map[string]*Token{}, byHash: map[string]string{}}
}

// applying carries one entry through Apply.
type applying struct {
	rev    int64
	now    time.Time // log time, UTC so that encodings agree
	events []qlog.Event
}

// Apply implements qlog.StateMachine.
func (m *Machine) Apply(e qlog.Entry) ([]byte, []qlog.Event) {
	a := &applying{rev: e.Revision, now: e.Time.UTC()}
	out := envelope.Apply(e.Cmd, func(c *Command) Result { return m.apply(a, c) },
		func(p envelope.Problem) Result { return Result{Status: Refused, Problem: p} })
	return out, a.events
}

func refuse(kind fault.Kind, format string, args ...any) Result {
	return Result{Status: Refused, Problem: envelope.Refuse(kind, format, args...)}
}

func (m *Machine) apply(a *applying, c *Command) Result {
	if c.By != "" && c.Op != OpBootstrap {
		// The web layer checked the token before proposing; it may have
		// been revoked, expired or lost its role since.
		t := m.tokens[c.By]
		if t == nil || expired(t, a.now) {
			return refuse(fault.Unauthorized, "token %s is unknown, revoked or expired", c.By)
		}
		if err := m.principal(t).Require(AuthAdmin, "", Write); err != nil {
			return refuse(fault.Forbidden, "%s", err)
		}
	}
	switch c.Op {
	case OpPutRole:
		return m.putRole(a, c)
	case OpDeleteRole:
		return m.deleteRole(a, c)
	case OpCreateToken:
		if len(c.Roles) == 0 || len(c.Roles) > MaxTokenRoles {
			return refuse(fault.Invalid, "roles: want 1 to %d role names", MaxTokenRoles)
		}
		if c.TTL < 0 {
			return refuse(fault.Invalid, "ttl: want a positive duration or none")
		}
		return m.createToken(a, c)
	case OpRevokeToken:
		t := m.tokens[c.ID]
		if t == nil {
			return refuse(fault.NotFound, "no token %s", c.ID)
		}
		delete(m.tokens, t.ID)
		delete(m.byHash, t.Hash)
		return m.applied(a, c, EventTokenRevoked, Result{Token: view(t)})
	case OpBootstrap:
		if m.issued > 0 {
			return Result{Status: Skipped, Problem: envelope.Problem{Detail: "tokens were issued before: no bootstrap token made"}}
		}
		c.Roles, c.TTL, c.By = []string{RootRole}, 0, ""
		return m.createToken(a, c)
	}
	return refuse(fault.Invalid, "unknown op %q", c.Op)
}

func (m *Machine) putRole(a *applying, c *Command) Result {
	if c.Role == nil {
		return refuse(fault.Invalid, "role: missing")
	}
	if err := c.Role.Validate(); err != nil {
		return refuse(fault.Invalid, "%s", err)
	}
	if m.roles[c.Role.Name] == nil && len(m.roles) >= MaxRoles {
		return refuse(fault.Conflict, "there are %d roles already, the most there may be", MaxRoles)
	}
	r := &Role{Name: c.Role.Name, Rules: slices.Clone(c.Role.Rules)}
	m.roles[r.Name] = r
	return m.applied(a, c, EventRole, Result{Role: r})
}

func (m *Machine) deleteRole(a *applying, c *Command) Result {
	if c.Name == RootRole {
		return refuse(fault.Invalid, "role %s is built in and cannot be deleted", RootRole)
	}
	r := m.roles[c.Name]
	if r == nil {
		return refuse(fault.NotFound, "no role %s", c.Name)
	}
	// Name the first user in id order, the same on every replica.
	for _, id := range slices.Sorted(maps.Keys(m.tokens)) {
		if slices.Contains(m.tokens[id].Roles, c.Name) {
			return refuse(fault.Conflict, "role %s is held by token %s: revoke it first", c.Name, id)
		}
	}
	delete(m.roles, c.Name)
	return m.applied(a, c, EventRoleDeleted, Result{Role: r})
}

func (m *Machine) createToken(a *applying, c *Command) Result {
	switch {
	case !validTokenID(c.ID):
		return refuse(fault.Invalid, "id: want tok_ and 1 to 64 letters and digits")
	case !validHash(c.Hash):
		return refuse(fault.Invalid, "hash: want 64 lower-case hex digits")
	case checkText(c.Description, MaxDescriptionBytes) != "":
		return refuse(fault.Invalid, "description: %s", checkText(c.Description, MaxDescriptionBytes))
	case m.tokens[c.ID] != nil:
		return refuse(fault.Conflict, "token %s exists", c.ID)
	case m.byHash[c.Hash] != "":
		return refuse(fault.Conflict, "a token with this secret exists")
	case len(m.tokens) >= MaxTokens:
		return refuse(fault.Conflict, "there are %d tokens already, the most there may be: revoke some", MaxTokens)
	}
	for _, name := range c.Roles {
		if name != RootRole && m.roles[name] == nil {
			return refuse(fault.NotFound, "no role %s", name)
		}
	}
	t := &Token{ID: c.ID, Description: c.Description, Roles: slices.Clone(c.Roles), CreatedAt: a.now, Hash: c.Hash}
	if c.TTL > 0 {
		t.ExpiresAt = a.now.Add(c.TTL)
	}
	m.tokens[t.ID] = t
	m.byHash[t.Hash] = t.ID
	m.issued++
	return m.applied(a, c, EventToken, Result{Token: view(t)})
}

// applied records a change that took effect: its event and its audit
// entry.
func (m *Machine) applied(a *applying, c *Command, event string, res Result) Result {
	key, data, target := "", []byte(nil), ""
	if res.Role != nil {
		target, key = res.Role.Name, "role/"+res.Role.Name
		data, _ = json.Marshal(res.Role)
	} else {
		target, key = res.Token.ID, "token/"+res.Token.ID
		data, _ = json.Marshal(res.Token)
	}
	a.events = append(a.events, qlog.Event{Type: event, Key: key, Data: data})
	by := c.By
	if by == "" {
		by = System
	}
	m.audit = append(m.audit, AuditEntry{Revision: a.rev, Time: a.now, By: by, Op: c.Op, Target: target})
	if n := len(m.audit) - MaxAudit; n > 0 {
		m.audit = slices.Delete(m.audit, 0, n)
	}
	res.Status = Applied
	return res
}

func validTokenID(id string) bool {
	body, ok := strings.CutPrefix(id, "tok_")
	return ok && body != "" && len(body) <= 64 && alnumOr(body, "")
}

func validHash(h string) bool {
	_, err := hex.DecodeString(h)
	return err == nil && len(h) == 64 && strings.ToLower(h) == h
}

func expired(t *Token, now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// view is t as the API shows it: without its hash.
func view(t *Token) *Token {
	v := *t
	v.Hash = ""
	v.Roles = slices.Clone(t.Roles)
	return &v
}

// principal resolves t's roles to rules as they are now, so that a role's
// change takes effect on the next request of every token that holds it.
func (m *Machine) principal(t *Token) Principal {
	var rules []Rule
	for _, name := range t.Roles {
		if name == RootRole {
			rules = append(rules, rootRules()...)
		} else if r := m.roles[name]; r != nil {
			rules = append(rules, r.Rules...)
		}
	}
	return Principal{Token: *view(t), Rules: effective(rules)}
}

// Authenticate returns the principal of the token whose secret is secret,
// at time now (the request's clock: expiry is checked where the request
// is served). An unknown, revoked or expired token, expired from the
// instant of its ExpiresAt, is an Unauthorized fault.
//
// The lookup is by hash: the map's timing can only tell an attacker about
// the hash of a secret it already knows, never about a stored one's
// secret. The stored hash is then compared in constant time, so that no
// path of this function reads a stored secret's hash byte by byte.
func (m *Machine) Authenticate(secret string, now time.Time) (Principal, error) {
	h := HashSecret(secret)
	t := m.tokens[m.byHash[h]]
	if t == nil || subtle.ConstantTimeCompare([]byte(t.Hash), []byte(h)) != 1 {
		return Principal{}, fault.New(fault.Unauthorized, "unknown or revoked token")
	}
	if expired(t, now) {
		return Principal{}, fault.New(fault.Unauthorized, "token %s expired at %s", t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	return m.principal(t), nil
}

// Role returns the role named name; root is built in.
func (m *Machine) Role(name string) (Role, bool) {
	if name == RootRole {
		return Role{Name: RootRole, Rules: rootRules()}, true
	}
	r := m.roles[name]
	if r == nil {
		return Role{}, false
	}
	return Role{Name: r.Name, Rules: slices.Clone(r.Rules)}, true
}

// Roles returns every role, root first, then in name order.
func (m *Machine) Roles() []Role {
	out := []Role{{Name: RootRole, Rules: rootRules()}}
	for _, name := range slices.Sorted(maps.Keys(m.roles)) {
		r, _ := m.Role(name)
		out = append(out, r)
	}
	return out
}

// Token returns the token with id id, without its hash.
func (m *Machine) Token(id string) (Token, bool) {
	if t := m.tokens[id]; t != nil {
		return *view(t), true
	}
	return Token{}, false
}

// Tokens returns every token in id order, without their hashes.
func (m *Machine) Tokens() []Token {
	out := []Token{}
	for _, id := range slices.Sorted(maps.Keys(m.tokens)) {
		out = append(out, *view(m.tokens[id]))
	}
	return out
}

// Audit returns up to limit of the newest changes, newest first.
func (m *Machine) Audit(limit int) []AuditEntry {
	n := min(max(limit, 0), len(m.audit))
	out := slices.Clone(m.audit[len(m.audit)-n:])
	slices.Reverse(out)
	return out
}

// snapshot is the encoded state: slices in key order, so equal states give
// equal bytes.
type snapshot struct {
	Roles  []*Role       `json:"roles"`
	Tokens []storedToken `json:"tokens"`
	Issued int64         `json:"issued"`
	Audit  []AuditEntry  `json:"audit"`
}

// storedToken is a token with its hash, the one encoding that holds it.
type storedToken struct {
	Token
	Hash string `json:"hash"`
}

// Snapshot implements qlog.StateMachine.
func (m *Machine) Snapshot(w io.Writer) error {
	s := snapshot{Roles: []*Role{}, Tokens: []storedToken{}, Issued: m.issued, Audit: m.audit}
	for _, name := range slices.Sorted(maps.Keys(m.roles)) {
		s.Roles = append(s.Roles, m.roles[name])
	}
	for _, id := range slices.Sorted(maps.Keys(m.tokens)) {
		t := m.tokens[id]
		s.Tokens = append(s.Tokens, storedToken{Token: *t, Hash: t.Hash})
	}
	if s.Audit == nil {
		s.Audit = []AuditEntry{}
	}
	return json.NewEncoder(w).Encode(s)
}

// Restore implements qlog.StateMachine.
func (m *Machine) Restore(r io.Reader) error {
	var s snapshot
	if err := json.NewDecoder(r).Decode(&s); err != nil {
		return fmt.Errorf("auth: restore: %w", err)
	}
	n := New()
	for _, role := range s.Roles {
		n.roles[role.Name] = role
	}
	for _, st := range s.Tokens {
		t := st.Token
		t.Hash = st.Hash
		n.tokens[t.ID] = &t
		n.byHash[t.Hash] = t.ID
	}
	n.issued, n.audit = s.Issued, s.Audit
	*m = *n
	return nil
}
