package config_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/service/servicetest"
	"github.com/stewardhq/steward/services/config"
)

// TestStreamStaysBounded: 6,000 puts to 100 keys leave fewer than 3,000
// messages in STEWARD_CONFIG. A snapshot also waits until the log since
// the previous one is as large as the snapshot (qlog), and the history
// kept for ?revision= reads is in the snapshot, so the stream is bounded
// in bytes by that history: 1,000 revisions here.
func TestStreamStaysBounded(t *testing.T) {
	t.Setenv("STEWARD_CONFIG_RETAIN_REVISIONS", "1000")
	servicetest.Bounded(t, config.ServiceName, config.Open, func(r *config.Replica) http.Handler { return r.Handler },
		func(i int) *http.Request {
			return httptest.NewRequest("PUT", fmt.Sprintf("/v1/kv/app/k%d", i%100), strings.NewReader(fmt.Sprintf(`{"value":"v%d"}`, i)))
		})
}
