package registry_test

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// replica's checker, expiry, presence and announcer must stop with it.
func TestMain(m *testing.M) {
	var err error
	if contract, err = loadContract(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	httpClient.Transport = contract.Transport(http.DefaultTransport, true)
	fuzzClient.Transport = contract.Transport(http.DefaultTransport, false)
	code := m.Run()
	// Idle keep-alive connections of the clients (all http.DefaultTransport's)
	// outlive the tests.
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(qlogtest.IgnoreNATSLeaks()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
