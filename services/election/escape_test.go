package election_test

import (
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestNameEscaping: an election name in a path is percent-decoded
// exactly once and then checked (webtest.NameEscapes).
func TestNameEscaping(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "election-0", nil)
	for _, tc := range webtest.NameEscapes {
		t.Run(tc.Case, func(t *testing.T) {
			u := n.url + "/v1/elections/" + tc.Path
			r, err := do(t.Context(), "POST", u+"/campaign", campaignBody("a", "10s"))
			if err != nil {
				t.Fatal(err)
			}
			if want := max(tc.Status, 200); r.status != want {
				t.Fatalf("POST %s/campaign = %d, want %d: %s", u, r.status, want, r.raw)
			}
			if tc.Status != 0 {
				return
			}
			token := r.num("token")
			got := call(t, "GET", n.url+"/v1/elections/"+tc.Name, "")
			if got.status != 200 || got.str("leader") != "a" {
				t.Fatalf("GET /v1/elections/%s = %d %s, want a leading", tc.Name, got.status, got.raw)
			}
			expect(t, call(t, "POST", u+"/resign", tokenBody("a", token)), 200)
		})
	}
}
