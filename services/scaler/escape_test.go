package scaler_test

import (
	"testing"

	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestNameEscaping: a scaler name in a path is percent-decoded exactly
// once and then checked (webtest.NameEscapes).
func TestNameEscaping(t *testing.T) {
	p := startPlane(t)
	n := startNode(t, p, "scaler-0", nodeOptions{})
	for _, tc := range webtest.NameEscapes {
		t.Run(tc.Case, func(t *testing.T) {
			u := n.url + "/v1/scalers/" + tc.Path
			r := call(t, "PUT", u, specWith(nil))
			if want := max(tc.Status, 201); r.status != want {
				t.Fatalf("PUT %s = %d, want %d: %s", u, r.status, want, r.raw)
			}
			if tc.Status != 0 {
				return
			}
			if got := call(t, "GET", n.url+"/v1/scalers/"+tc.Name, ""); got.status != 200 || got.body["name"] != tc.Name {
				t.Fatalf("GET /v1/scalers/%s = %d %s", tc.Name, got.status, got.raw)
			}
			expect(t, call(t, "GET", u+"/decisions", ""), 200)
			expect(t, call(t, "DELETE", u, ""), 200)
			expect(t, call(t, "GET", n.url+"/v1/scalers/"+tc.Name, ""), 404)
		})
	}
}
