package election_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/service/servicetest"
	"github.com/stewardhq/steward/services/election"
)

// TestStreamStaysBounded: 6,000 campaigns in ten elections leave fewer
// than 3,000 messages in STEWARD_ELECTION.
func TestStreamStaysBounded(t *testing.T) {
	servicetest.Bounded(t, election.ServiceName, election.Open, func(r *election.Replica) http.Handler { return r.Handler },
		func(i int) *http.Request {
			return httptest.NewRequest("POST", fmt.Sprintf("/v1/elections/e%d/campaign", i%10), strings.NewReader(`{"candidate":"c1","ttl":"1h"}`))
		})
}
