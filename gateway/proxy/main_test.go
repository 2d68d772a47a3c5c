package proxy_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// per-try timers and upstream connections of a proxied request must end
// with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
