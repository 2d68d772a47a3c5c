package qlog_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestMain fails the package if a test leaves a goroutine behind: a
// replica's apply, batcher, read-index, progress and snapshot loops and
// its expiry runner must all stop with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, qlogtest.IgnoreNATSLeaks()) }
