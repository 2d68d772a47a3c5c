package config_test

import (
	"fmt"
	"testing"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestLeaseTTLInEveryAnswer: grant, read, keepalive and revoke all
// answer the TTL the lease was granted with.
func TestLeaseTTLInEveryAnswer(t *testing.T) {
	n := startNode(t, qlogtest.StartServer(t).Connect(t), "config-0", nil, 1000)
	r := expect(t, call(t, "POST", n.url+"/v1/leases", `{"ttl":"10s"}`), 201)
	id := r.num("id")
	lease := fmt.Sprintf("%s/v1/leases/%d", n.url, id)
	for _, tc := range []struct {
		name, method, url string
		status            int
	}{
		{"read", "GET", lease, 200},
		{"keepalive", "POST", lease + "/keepalive", 200},
		{"keepalive, id escaped", "POST", fmt.Sprintf("%s/v1/leases/%%3%c/keepalive", n.url, fmt.Sprint(id)[0]) + fmt.Sprint(id)[1:], 200},
		{"revoke", "DELETE", lease, 200},
	} {
		if got := expect(t, call(t, tc.method, tc.url, ""), tc.status).body["ttl"]; got != "10s" {
			t.Errorf("%s: %s %s: ttl = %v, want 10s", tc.name, tc.method, tc.url, got)
		}
	}
	if got := r.body["ttl"]; got != "10s" {
		t.Errorf("grant: ttl = %v, want 10s", got)
	}
}
