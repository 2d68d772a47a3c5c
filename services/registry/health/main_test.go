package health

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// checker and presence loop must stop with its context.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
