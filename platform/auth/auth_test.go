package auth_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// fieldsOf returns the fields an Invalid fault names, failing the test
// for any other error.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var fe *fault.Error
	if !errors.As(err, &fe) || fe.Kind != fault.Invalid {
		t.Fatalf("error %v: want an invalid fault", err)
	}
	var fields []string
	for _, f := range fe.Fields["errors"].([]auth.FieldError) {
		fields = append(fields, f.Field)
	}
	return fields
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		name, doc string
		fields    []string // nil: valid
		decode    bool     // refused before validation
	}{
		{"issue example", `{"name":"app-reader","rules":[{"resource":"kv","prefix":"/app/","access":"read"}]}`, nil, false},
		{"unnamed resource", `{"name":"m","rules":[{"resource":"metrics","prefix":"","access":"read"},{"resource":"auth","access":"write"}]}`, nil, false},
		{"every error at once", `{"name":"a b","rules":[{"resource":"kvv","prefix":"/","access":"admin"},{"resource":"leases","prefix":"x","access":"read"}]}`,
			[]string{"name", "rules[0].resource", "rules[0].access", "rules[1].prefix"}, false},
		{"root is built in", `{"name":"root","rules":[{"resource":"kv","access":"read"}]}`, []string{"name"}, false},
		{"no rules", `{"name":"a","rules":[]}`, []string{"rules"}, false},
		{"control in prefix", `{"name":"a","rules":[{"resource":"kv","prefix":"/a\u0001","access":"read"}]}`, []string{"rules[0].prefix"}, false},
		{"long prefix", `{"name":"a","rules":[{"resource":"kv","prefix":"` + strings.Repeat("x", auth.MaxPrefixBytes+1) + `","access":"read"}]}`, []string{"rules[0].prefix"}, false},
		{"unknown field", `{"name":"a","rules":[],"x":1}`, nil, true},
		{"trailing data", `{"name":"a","rules":[{"resource":"kv","access":"read"}]} {}`, nil, true},
		{"not an object", `[]`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.ParseRole([]byte(tt.doc))
			if tt.decode {
				if fault.KindOf(err) != fault.Invalid {
					t.Fatalf("ParseRole = %v, want an invalid fault", err)
				}
				return
			}
			if got := fieldsOf(t, err); !reflect.DeepEqual(got, tt.fields) {
				t.Errorf("ParseRole fields = %v, want %v (%v)", got, tt.fields, err)
			}
		})
	}
}

func TestAccessGrants(t *testing.T) {
	tests := []struct {
		have, need auth.Access
		want       bool
	}{
		{auth.Read, auth.Read, true}, {auth.Write, auth.Read, true}, {auth.Write, auth.Write, true},
		{auth.Read, auth.Write, false}, {"", auth.Read, false}, {auth.Write, "", false},
	}
	for _, tt := range tests {
		if got := tt.have.Grants(tt.need); got != tt.want {
			t.Errorf("%q.Grants(%q) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}
