package auth_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
)

func TestParseBearer(t *testing.T) {
	long := strings.Repeat("a", auth.MaxSecretBytes)
	tests := []struct {
		header, want string // want "": refused
	}{
		{"Bearer stw_abc-DEF_123", "stw_abc-DEF_123"},
		{"bearer abc", "abc"},
		{"BEARER abc", "abc"},
		{"Bearer  abc", "abc"}, // 1*SP
		{"Bearer abc==", "abc=="},
		{"Bearer a.b~c+d/e", "a.b~c+d/e"},
		{"Bearer " + long, long},
		{"Bearer " + long + "a", ""},
		{"", ""},
		{"Bearer", ""},
		{"Bearer ", ""},
		{"Bearer abc def", ""},
		{"Bearer abc ", ""},
		{"Bearer\tabc", ""},
		{"Basic abc", ""},
		{"Bearerabc", ""},
		{" Bearer abc", ""},
		{"Bearer ===", ""},
		{"Bearer a=b", ""},
		{"Bearer ab\x00", ""},
		{"Bearer é", ""},
	}
	for _, tt := range tests {
		got, err := auth.ParseBearer(tt.header)
		if got != tt.want {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
		}
		if tt.want == "" && fault.KindOf(err) != fault.Unauthorized {
			t.Errorf("ParseBearer(%q) error %v: want an unauthorized fault", tt.header, err)
		}
	}
}

func TestGeneratedShapes(t *testing.T) {
	secretRe := regexp.MustCompile(`^stw_[A-Za-z0-9_-]{43}$`)
	idRe := regexp.MustCompile(`^tok_[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for range 100 {
		s, id := auth.NewSecret(), auth.NewTokenID()
		if !secretRe.MatchString(s) || !idRe.MatchString(id) || seen[s] || seen[id] {
			t.Fatalf("NewSecret, NewTokenID = %q, %q: want fresh stw_ and 43 base64url, tok_ and 16 hex", s, id)
		}
		seen[s], seen[id] = true, true
		if got, err := auth.ParseBearer("Bearer " + s); got != s || err != nil {
			t.Fatalf("ParseBearer of a generated secret = %q, %v", got, err)
		}
		if err := auth.ValidateBootstrapSecret(s); err != nil {
			t.Fatalf("ValidateBootstrapSecret(generated) = %v", err)
		}
	}
	if h := auth.HashSecret("x"); h != "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881" {
		t.Errorf("HashSecret(x) = %s, want SHA-256 in hex", h)
	}
}

func TestValidateBootstrapSecret(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 31), strings.Repeat("a", 40) + " x", strings.Repeat("a", auth.MaxSecretBytes+1)} {
		if err := auth.ValidateBootstrapSecret(s); fault.KindOf(err) != fault.Invalid {
			t.Errorf("ValidateBootstrapSecret(%q) = %v, want an invalid fault", s, err)
		}
	}
}

func TestTokenRequestValidate(t *testing.T) {
	tests := []struct {
		name   string
		req    auth.TokenRequest
		fields []string
		roles  []string
	}{
		{"issue example", auth.TokenRequest{Description: "ci", Roles: []string{"app-reader"}, TTL: "24h"}, nil, []string{"app-reader"}},
		{"no ttl", auth.TokenRequest{Roles: []string{"b", "a", "b"}}, nil, []string{"a", "b"}},
		{"everything wrong", auth.TokenRequest{Description: "\x07", Roles: []string{"a/b"}, TTL: "500ms", Secret: "short"}, []string{"description", "roles[0]", "ttl", "secret"}, nil},
		{"chosen secret", auth.TokenRequest{Roles: []string{"a"}, TTL: "1s", Secret: "stw_" + strings.Repeat("k", 40)}, nil, []string{"a"}},
		{"no roles", auth.TokenRequest{TTL: "forever"}, []string{"roles", "ttl"}, nil},
		{"ttl too long", auth.TokenRequest{Roles: []string{"a"}, TTL: "10000h"}, []string{"ttl"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if got := fieldsOf(t, err); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("Validate fields = %v, want %v (%v)", got, tt.fields, err)
			}
			if tt.roles != nil && !reflect.DeepEqual(tt.req.Roles, tt.roles) {
				t.Errorf("roles after Validate = %v, want %v", tt.req.Roles, tt.roles)
			}
		})
	}
}
