package balancer

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// tests pick and report concurrently, and nothing a balancer starts may
// outlive them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
