package h1client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// connection's exchange runs on its caller's goroutine and no other.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
