package web_test

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bodies to a decoding handler: every answer must
// be 200 or a 4xx problem, never a 5xx or a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"name":"a","count":1}`, `{"name":`, `[]`, `null`, `{"count":1e400}`, `"x"`, `{"name":"a"}{}`, "\xff"} {
		f.Add(s)
	}
	h := testHandler(nil)
	f.Fuzz(func(t *testing.T, body string) {
		rec := do(t, h, http.MethodPost, "/v1/greet", body, nil)
		if rec.Code == http.StatusOK {
			return
		}
		if rec.Code < 400 || rec.Code > 499 {
			t.Fatalf("POST %q = %d, want 200 or 4xx", body, rec.Code)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
			t.Fatalf("POST %q answered %d without problem+json", body, rec.Code)
		}
	})
}
