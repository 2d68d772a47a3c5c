package registry_test

import (
	"fmt"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/web/webtest"
)

// TestNameEscaping: a service name and an instance id in a path are
// each percent-decoded exactly once and then checked
// (webtest.NameEscapes).
func TestNameEscaping(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	const body = `{"address":"10.0.0.1","port":80,"check":{"ttl":"10s"}}`
	for _, tc := range webtest.NameEscapes {
		for _, at := range []struct{ param, service, id, wantSvc, wantID string }{
			{"service", tc.Path, "i-1", tc.Name, "i-1"},
			{"id", "web", tc.Path, "web", tc.Name},
		} {
			t.Run(at.param+"/"+tc.Case, func(t *testing.T) {
				u := fmt.Sprintf("%s/v1/services/%s/instances/%s", n.url, at.service, at.id)
				r := call(t, "PUT", u, body)
				if want := max(tc.Status, 200); r.status != want {
					t.Fatalf("PUT %s = %d, want %d: %s", u, r.status, want, r.raw)
				}
				if tc.Status != 0 {
					return
				}
				inst := r.instance(t)
				if inst.Service != at.wantSvc || inst.ID != at.wantID {
					t.Fatalf("PUT %s registered %s/%s, want %s/%s", u, inst.Service, inst.ID, at.wantSvc, at.wantID)
				}
				plain := fmt.Sprintf("%s/v1/services/%s/instances/%s", n.url, at.wantSvc, at.wantID)
				expect(t, call(t, "GET", plain, ""), 200)
				expect(t, call(t, "PUT", u+"/heartbeat", ""), 200)
				expect(t, call(t, "GET", fmt.Sprintf("%s/v1/services/%s/instances", n.url, at.service), ""), 200)
				expect(t, call(t, "DELETE", u, ""), 200)
				expect(t, call(t, "GET", plain, ""), 404)
			})
		}
	}
}

// TestRegistryLeaseTTLInEveryAnswer: every answer about a registry lease
// reports the TTL it was granted with.
func TestRegistryLeaseTTLInEveryAnswer(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), testSettings("registry-0", nil))
	r := expect(t, call(t, "POST", n.url+"/v1/registry/leases", `{"ttl":"10s"}`), 201)
	var l struct {
		ID  int64  `json:"id"`
		TTL string `json:"ttl"`
	}
	r.decode(t, &l)
	if l.TTL != "10s" {
		t.Errorf("grant: ttl = %q, want 10s", l.TTL)
	}
	lease := fmt.Sprintf("%s/v1/registry/leases/%d", n.url, l.ID)
	for _, tc := range []struct{ method, url string }{{"GET", lease}, {"POST", lease + "/keepalive"}, {"DELETE", lease}} {
		expect(t, call(t, tc.method, tc.url, ""), 200).decode(t, &l)
		if l.TTL != "10s" {
			t.Errorf("%s %s: ttl = %q, want 10s", tc.method, tc.url, l.TTL)
		}
	}
}
