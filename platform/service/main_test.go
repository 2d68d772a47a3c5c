package service_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestMain fails the package if a test leaves a goroutine behind: Serve
// must stop the expiry sweep, the archive, the announcer and the Spec's
// tasks before it returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, qlogtest.IgnoreNATSLeaks()) }
