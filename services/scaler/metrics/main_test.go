package metrics_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Scrape starts goroutines and HTTP connections; none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
