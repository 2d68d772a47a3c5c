package auth

import (
	"testing"
	"time"
)

// TestAuthenticateComparesTheStoredHash shows that the index only finds a
// candidate: the answer comes from the constant-time comparison with the
// token's own hash, so an index that points at the wrong token admits
// nobody.
func TestAuthenticateComparesTheStoredHash(t *testing.T) {
	m := New()
	secret := NewSecret()
	m.tokens["tok_1"] = &Token{ID: "tok_1", Roles: []string{RootRole}, Hash: HashSecret("another secret")}
	m.byHash[HashSecret(secret)] = "tok_1"
	if p, err := m.Authenticate(secret, time.Unix(0, 0)); err == nil {
		t.Fatalf("Authenticate through a stale index entry = %+v, want refused", p)
	}
	m.tokens["tok_1"].Hash = HashSecret(secret)
	if _, err := m.Authenticate(secret, time.Unix(0, 0)); err != nil {
		t.Fatalf("Authenticate = %v", err)
	}
}
