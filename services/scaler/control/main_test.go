package control

import (
	"testing"

	"go.uber.org/goleak"
)

// The loop's workers, its watch and the queue's timers must all end with
// their term.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
