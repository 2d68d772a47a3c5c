package auth_test

import (
	"reflect"
	"testing"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
)

// principalWith authenticates a fresh token holding roles on a machine
// that has the roles given.
func principalWith(t *testing.T, roles []auth.Role, holds ...string) auth.Principal {
	t.Helper()
	m := auth.New()
	for _, r := range roles {
		mustApply(t, m, auth.Command{Op: auth.OpPutRole, Role: &r})
	}
	cmd, secret := auth.CreateToken("", auth.TokenRequest{Roles: holds})
	mustApply(t, m, cmd)
	p, err := m.Authenticate(secret, epoch)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rule(res auth.Resource, prefix string, a auth.Access) auth.Rule {
	return auth.Rule{Resource: res, Prefix: prefix, Access: a}
}

func TestAllowed(t *testing.T) {
	roles := []auth.Role{
		{Name: "app-reader", Rules: []auth.Rule{rule(auth.KV, "/app/", auth.Read)}},
		{Name: "app-dir", Rules: []auth.Rule{rule(auth.KV, "/app", auth.Write)}},
		{Name: "all-kv", Rules: []auth.Rule{rule(auth.KV, "", auth.Read)}},
		{Name: "svc-writer", Rules: []auth.Rule{rule(auth.Services, "pay", auth.Write), rule(auth.Metrics, "", auth.Read)}},
	}
	tests := []struct {
		name   string
		holds  []string
		res    auth.Resource
		target string
		need   auth.Access
		want   bool
	}{
		{"prefix covers key under it", []string{"app-reader"}, auth.KV, "/app/x", auth.Read, true},
		{"prefix covers itself", []string{"app-reader"}, auth.KV, "/app/", auth.Read, true},
		{"slash prefix does not cover the bare name", []string{"app-reader"}, auth.KV, "/app", auth.Read, false},
		{"slash prefix does not cover a sibling", []string{"app-reader"}, auth.KV, "/apple", auth.Read, false},
		{"bare prefix covers a sibling", []string{"app-dir"}, auth.KV, "/apple", auth.Read, true},
		{"read does not grant write", []string{"app-reader"}, auth.KV, "/app/x", auth.Write, false},
		{"write implies read", []string{"app-dir"}, auth.KV, "/app/x", auth.Read, true},
		{"write grants write", []string{"app-dir"}, auth.KV, "/app/x", auth.Write, true},
		{"empty prefix covers everything", []string{"all-kv"}, auth.KV, "/other", auth.Read, true},
		{"empty prefix covers the empty name", []string{"all-kv"}, auth.KV, "", auth.Read, true},
		{"rules are per resource", []string{"all-kv"}, auth.Services, "pay", auth.Read, false},
		{"union of roles: first", []string{"app-reader", "svc-writer"}, auth.KV, "/app/x", auth.Read, true},
		{"union of roles: second", []string{"app-reader", "svc-writer"}, auth.Services, "payments", auth.Write, true},
		{"union does not mix resources", []string{"app-reader", "svc-writer"}, auth.KV, "pay", auth.Read, false},
		{"unnamed resource", []string{"svc-writer"}, auth.Metrics, "", auth.Read, true},
		{"unnamed resource, write", []string{"svc-writer"}, auth.Metrics, "", auth.Write, false},
		{"root writes kv", []string{"root"}, auth.KV, "/anything", auth.Write, true},
		{"root writes auth", []string{"root"}, auth.AuthAdmin, "", auth.Write, true},
		{"root reads routes", []string{"root"}, auth.Routes, "r", auth.Read, true},
		{"unknown access", []string{"root"}, auth.KV, "/x", auth.Access("admin"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := principalWith(t, roles, tt.holds...)
			if got := p.Allowed(tt.res, tt.target, tt.need); got != tt.want {
				t.Errorf("Allowed(%s, %q, %s) = %v, want %v (rules %v)", tt.res, tt.target, tt.need, got, tt.want, p.Rules)
			}
			if got := p.Filter(tt.res, tt.need)(tt.target); got != tt.want {
				t.Errorf("Filter(%s, %s)(%q) = %v, want %v", tt.res, tt.need, tt.target, got, tt.want)
			}
			if err := p.Require(tt.res, tt.target, tt.need); (err == nil) != tt.want {
				t.Errorf("Require(%s, %q, %s) = %v, want allowed %v", tt.res, tt.target, tt.need, err, tt.want)
			}
		})
	}
}

func TestPrefixRequests(t *testing.T) {
	p := principalWith(t, []auth.Role{{Name: "r", Rules: []auth.Rule{rule(auth.KV, "/app/", auth.Read)}}}, "r")
	tests := []struct {
		prefix           string
		covered, reached bool
	}{
		{"/app/", true, true},
		{"/app/db/", true, true},
		{"/app", false, true}, // also /apple: list it filtered, never whole
		{"/", false, true},
		{"", false, true},
		{"/other/", false, false},
		{"/apple", false, false},
	}
	for _, tt := range tests {
		if got := p.AllowedPrefix(auth.KV, tt.prefix, auth.Read); got != tt.covered {
			t.Errorf("AllowedPrefix(kv, %q, read) = %v, want %v", tt.prefix, got, tt.covered)
		}
		if err := p.RequirePrefix(auth.KV, tt.prefix, auth.Read); (err == nil) != tt.covered {
			t.Errorf("RequirePrefix(kv, %q, read) = %v, want allowed %v", tt.prefix, err, tt.covered)
		}
		if got := p.Reaches(auth.KV, tt.prefix, auth.Read); got != tt.reached {
			t.Errorf("Reaches(kv, %q, read) = %v, want %v", tt.prefix, got, tt.reached)
		}
	}
}

func TestRequireNamesWhatWasNeeded(t *testing.T) {
	p := principalWith(t, []auth.Role{{Name: "r", Rules: []auth.Rule{rule(auth.KV, "/app/", auth.Read)}}}, "r")
	err := p.Require(auth.KV, "/app/x", auth.Write)
	var fe *fault.Error
	if !errorsAs(err, &fe) || fe.Kind != fault.Forbidden {
		t.Fatalf("Require = %v, want a forbidden fault", err)
	}
	want := map[string]any{"resource": "kv", "name": "/app/x", "access": "write"}
	if !reflect.DeepEqual(fe.Fields, want) {
		t.Errorf("fields = %v, want %v", fe.Fields, want)
	}
	if want := `token ` + p.ID + ` may not write kv "/app/x": it needs write access on kv "/app/x"`; fe.Detail != want {
		t.Errorf("detail = %q, want %q", fe.Detail, want)
	}
}

func TestEffectiveRules(t *testing.T) {
	roles := []auth.Role{
		{Name: "a", Rules: []auth.Rule{rule(auth.KV, "/app/db/", auth.Read), rule(auth.KV, "/app/", auth.Read), rule(auth.Scalers, "web", auth.Read)}},
		{Name: "b", Rules: []auth.Rule{rule(auth.KV, "/app/", auth.Write), rule(auth.KV, "/app/", auth.Read), rule(auth.KV, "/b", auth.Read), rule(auth.Leases, "", auth.Read)}},
	}
	tests := []struct {
		holds []string
		want  []auth.Rule
	}{
		{[]string{"a"}, []auth.Rule{rule(auth.KV, "/app/", auth.Read), rule(auth.Scalers, "web", auth.Read)}},
		{[]string{"a", "b"}, []auth.Rule{rule(auth.KV, "/app/", auth.Write), rule(auth.KV, "/b", auth.Read), rule(auth.Leases, "", auth.Read), rule(auth.Scalers, "web", auth.Read)}},
		{[]string{"root", "a"}, []auth.Rule{
			rule(auth.KV, "", auth.Write), rule(auth.Leases, "", auth.Write), rule(auth.Services, "", auth.Write), rule(auth.Elections, "", auth.Write),
			rule(auth.Scalers, "", auth.Write), rule(auth.Metrics, "", auth.Write), rule(auth.Routes, "", auth.Write), rule(auth.AuthAdmin, "", auth.Write)}},
	}
	for _, tt := range tests {
		if got := principalWith(t, roles, tt.holds...).Rules; !reflect.DeepEqual(got, tt.want) {
			t.Errorf("rules of %v = %v, want %v", tt.holds, got, tt.want)
		}
	}
}
