package registry_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/service/servicetest"
	"github.com/stewardhq/steward/services/registry"
)

// TestStreamStaysBounded: 6,000 heartbeats of one instance leave fewer
// than 3,000 messages in STEWARD_REGISTRY (it was never trimmed before).
func TestStreamStaysBounded(t *testing.T) {
	servicetest.Bounded(t, registry.ServiceName, registry.Open, func(r *registry.Replica) http.Handler { return r.Handler },
		func(i int) *http.Request {
			const instance = "/v1/services/web/instances/web-1"
			if i == 0 {
				return httptest.NewRequest("PUT", instance, strings.NewReader(`{"address":"10.0.0.1","port":80,"check":{"ttl":"1h"}}`))
			}
			return httptest.NewRequest("PUT", instance+"/heartbeat", strings.NewReader(fmt.Sprintf(`{"status":"passing","output":"beat %d"}`, i)))
		})
}
