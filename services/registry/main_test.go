package registry_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// replica's checker, expiry, presence and announcer must stop with it.
func TestMain(m *testing.M) {
	code := m.Run()
	// Idle keep-alive connections of the clients outlive the tests.
	httpClient.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
