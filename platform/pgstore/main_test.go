package pgstore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: the
// pool's connections and background work must stop with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
