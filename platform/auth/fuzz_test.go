package auth_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/fault"
)

// FuzzParseBearer: ParseBearer never panics, refuses with an Unauthorized
// fault, and what it accepts is one bounded token68 that follows the
// scheme in the header.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer stw_abc", "bearer a==", "Bearer  a", "Bearer a b", "Basic x", "", "Bearer", "Bearer =", "Bearer \x00", "BEARER " + auth.NewSecret()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		secret, err := auth.ParseBearer(header)
		if err != nil {
			if secret != "" || fault.KindOf(err) != fault.Unauthorized {
				t.Fatalf("ParseBearer(%q) = %q, %v: want \"\" and an unauthorized fault", header, secret, err)
			}
			return
		}
		if secret == "" || len(secret) > auth.MaxSecretBytes || strings.ContainsAny(secret, " \t\r\n") ||
			!strings.EqualFold(header[:7], "Bearer ") || !strings.HasSuffix(header, " "+secret) {
			t.Fatalf("ParseBearer(%q) accepted %q", header, secret)
		}
		if again, err := auth.ParseBearer("Bearer " + secret); again != secret || err != nil {
			t.Fatalf("ParseBearer of its own answer %q = %q, %v", secret, again, err)
		}
	})
}

// FuzzRoleDocument: decoding and validating any document never panics,
// refuses with an Invalid fault, and a valid role encodes to a document
// that parses to the same role.
func FuzzRoleDocument(f *testing.F) {
	for _, s := range []string{
		`{"name":"app-reader","rules":[{"resource":"kv","prefix":"/app/","access":"read"}]}`,
		`{"name":"m","rules":[{"resource":"metrics","access":"write"},{"resource":"services","prefix":"pay","access":"read"}]}`,
		`{"name":"root","rules":[]}`, `{"name":"a","rules":[{"resource":"kv","prefix":"\u0000","access":"read"}]}`,
		`{}`, `null`, `[]`, `{"name":1}`, `{"name":"a","rules":null}`, `{"name":"a","rules":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := auth.ParseRole(doc)
		if err != nil {
			if fault.KindOf(err) != fault.Invalid {
				t.Fatalf("ParseRole(%q) = %v: want an invalid fault", doc, err)
			}
			return
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		again, err := auth.ParseRole(enc)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("valid role %+v encodes to %s, which parses to %+v, %v", r, enc, again, err)
		}
	})
}
