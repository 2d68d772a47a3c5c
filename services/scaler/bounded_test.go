package scaler_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/service/servicetest"
	"github.com/stewardhq/steward/services/scaler"
)

// TestStreamStaysBounded: 6,000 updates of a scaler leave fewer than
// 3,000 messages in STEWARD_SCALER.
func TestStreamStaysBounded(t *testing.T) {
	servicetest.Bounded(t, scaler.ServiceName, scaler.Open, func(r *scaler.Replica) http.Handler { return r.Handler },
		func(i int) *http.Request {
			spec := fmt.Sprintf(`{"service":"web","minReplicas":1,"maxReplicas":%d,
				"metrics":[{"name":"gateway_rps","target":{"type":"averageValue","value":10}}],
				"driver":{"type":"webhook","url":"http://scaler-hook.example/scale","secret":"s3cret"}}`, 10+i%1000)
			return httptest.NewRequest("PUT", "/v1/scalers/web", strings.NewReader(spec))
		})
}
