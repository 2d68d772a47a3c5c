package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/fault"
)

// Token is an issued bearer token as the API lists it. Hash, the SHA-256
// of its secret in hex, is kept for Authenticate and snapshots and never
// encoded in a view: only the snapshot's own record type writes it.
type Token struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Roles       []string `json:"roles"`
	// ExpiresAt is zero for a token that never expires (the bootstrap
	// token, or one created without a ttl).
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	CreatedAt time.Time `json:"createdAt"`
	Hash      string    `json:"-"`
}

// Issued is the answer to creating a token: the only time its secret is
// shown.
type Issued struct {
	Token
	Secret string `json:"secret"`
}

// TokenRequest is the body of POST /v1/auth/tokens.
type TokenRequest struct {
	Description string   `json:"description"`
	Roles       []string `json:"roles"`
	// TTL is a duration such as "24h"; empty for a token that never
	// expires.
	TTL string `json:"ttl,omitempty"`
	// Secret, if set, is the token's secret, chosen by the caller: a
	// deployment declares its services' tokens before any replica starts
	// (as Consul's SecretID). Held to the bootstrap secret's standard;
	// empty makes a fresh 256-bit one.
	Secret string `json:"secret,omitempty"`
}

// Token lifetimes a request may ask for.
const (
	// MinTTL is short so that a one-shot job can hold a token that
	// outlives it by seconds.
	MinTTL = time.Second
	MaxTTL = 366 * 24 * time.Hour
)

// Validate checks a token request and sorts and deduplicates its roles
// (web.Decode calls it). Whether the roles exist is the state machine's
// to say, at apply time.
func (r *TokenRequest) Validate() error {
	var fe fieldErrors
	if msg := checkText(r.Description, MaxDescriptionBytes); msg != "" {
		fe.add("description", "%s", msg)
	}
	slices.Sort(r.Roles)
	r.Roles = slices.Compact(r.Roles)
	if len(r.Roles) == 0 || len(r.Roles) > MaxTokenRoles {
		fe.add("roles", "want 1 to %d role names", MaxTokenRoles)
	}
	for i, name := range r.Roles {
		if msg := roleNameProblem(name); msg != "" && i < MaxTokenRoles {
			fe.add(fmt.Sprintf("roles[%d]", i), "%s", msg)
		}
	}
	if _, err := ParseTTL(r.TTL); err != nil {
		fe.add("ttl", "%s", err)
	}
	if r.Secret != "" && !validSecret(r.Secret) {
		fe.add("secret", "%s", secretRule)
	}
	return fe.err("token request")
}

// ParseTTL parses a token lifetime: "" (never expires) or a duration from
// MinTTL to MaxTTL.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinTTL || d > MaxTTL {
		return 0, fault.New(fault.Invalid, "ttl %q: want a duration from %s to %s, such as \"24h\", or none", truncate(s), MinTTL, MaxTTL)
	}
	return d, nil
}

// CreateToken is what a proposer does for a valid request by the token
// by: it makes the new token's id and secret and returns the command to
// propose, which carries only the secret's hash, and the secret to show
// once.
func CreateToken(by string, r TokenRequest) (Command, string) {
	ttl, _ := ParseTTL(r.TTL) // Validate checked it
	secret := r.Secret
	if secret == "" {
		secret = NewSecret()
	}
	return Command{Op: OpCreateToken, By: by, ID: NewTokenID(), Description: r.Description,
		Roles: r.Roles, TTL: ttl, Hash: HashSecret(secret)}, secret
}

// Bootstrap is the command a replica proposes at start when
// STEWARD_AUTH_BOOTSTRAP_TOKEN is set; the state machine makes it a root
// token only if no token was ever issued, so every replica may propose it
// on every start. Check the secret with ValidateBootstrapSecret first.
func Bootstrap(secret string) Command {
	return Command{Op: OpBootstrap, ID: NewTokenID(), Description: "bootstrap", Hash: HashSecret(secret)}
}

// Secret shapes: a generated secret is secretPrefix and the unpadded
// base64url of 32 random bytes (43 characters).
const (
	secretPrefix    = "stw_"
	secretBytes     = 32
	MaxSecretBytes  = 512
	minBootstrapLen = 32
)

// NewSecret returns a fresh token secret: 256 bits from crypto/rand.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails: it crashes the program instead
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewTokenID returns a fresh token id, "tok_" and 16 hex digits. IDs are
// public (audit, URLs); the state machine refuses a duplicate.
func NewTokenID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "tok_" + hex.EncodeToString(b)
}

// HashSecret returns the SHA-256 of secret in hex, the only form of a
// secret the log, the state and snapshots hold.
//
// A fast, unsalted hash is enough here because generated secrets carry
// 256 random bits: nobody can guess one, so there is no dictionary for
// salt or a slow hash (bcrypt, argon2) to defeat, and those would cost
// milliseconds on every request. The operator's bootstrap secret is held
// to the same standard by ValidateBootstrapSecret.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// ValidateBootstrapSecret checks an operator-chosen secret: a bearer
// token of at least 32 characters, so that, hashed like generated ones,
// it is as hard to guess (use NewSecret's shape: `stw_` and 43 random
// base64url characters).
func ValidateBootstrapSecret(secret string) error {
	if !validSecret(secret) {
		return fault.New(fault.Invalid, "STEWARD_AUTH_BOOTSTRAP_TOKEN: %s", secretRule)
	}
	return nil
}

// secretRule says what an operator-chosen secret must be.
var secretRule = fmt.Sprintf("want %d to %d characters of letters, digits and -._~+/ (with = at the end only), such as a secret of steward's own making", minBootstrapLen, MaxSecretBytes)

// validSecret says whether an operator-chosen secret meets secretRule.
func validSecret(secret string) bool {
	return len(secret) >= minBootstrapLen && len(secret) <= MaxSecretBytes && isToken68(secret)
}

// ParseBearer returns the secret of an Authorization header of the
// Bearer scheme (RFC 6750 section 2.1): the scheme, matched without
// regard to case, one or more spaces, and exactly one token68 of at most
// MaxSecretBytes. Anything else is an Unauthorized fault, so the web layer
// answers 401 with WWW-Authenticate: Bearer.
func ParseBearer(header string) (string, error) {
	if header == "" {
		return "", fault.New(fault.Unauthorized, "missing Authorization header: want Bearer and a token")
	}
	scheme, rest, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fault.New(fault.Unauthorized, "Authorization header: want the Bearer scheme")
	}
	secret := strings.TrimLeft(rest, " ")
	switch {
	case secret == "":
		return "", fault.New(fault.Unauthorized, "Authorization header: Bearer without a token")
	case len(secret) > MaxSecretBytes:
		return "", fault.New(fault.Unauthorized, "Authorization header: token over %d bytes", MaxSecretBytes)
	case !isToken68(secret):
		return "", fault.New(fault.Unauthorized, "Authorization header: want exactly one token of letters, digits and -._~+/ (with = at the end only)")
	}
	return secret, nil
}

// isToken68 reports whether s is RFC 7235's token68 (RFC 6750's
// b64token): 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	return body != "" && alnumOr(body, "-._~+/")
}
