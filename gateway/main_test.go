package gateway_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// gateway's discovery watches, route source and servers must stop with
// Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, qlogtest.IgnoreNATSLeaks()) }
