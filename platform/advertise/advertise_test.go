package advertise_test

import (
	"net"
	"testing"

	"github.com/stewardhq/steward/platform/advertise"
)

// TestLocalURL: a listener on every address is reached on loopback; one
// bound to an address, on that address (found by make chaos: a registry
// bound to its namespace's address announced itself to 127.0.0.1); the
// scheme is the one given (https when the process serves TLS).
func TestLocalURL(t *testing.T) {
	for _, tc := range []struct{ scheme, addr, want string }{
		{"http", "[::]:8082", "http://127.0.0.1:8082"},
		{"http", "0.0.0.0:8082", "http://127.0.0.1:8082"},
		{"http", "127.0.0.1:8082", "http://127.0.0.1:8082"},
		{"http", "10.213.77.10:8082", "http://10.213.77.10:8082"},
		{"http", "[fd00::1]:8082", "http://[fd00::1]:8082"},
		{"https", "0.0.0.0:8082", "https://127.0.0.1:8082"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertise.LocalURL(tc.scheme, addr); got != tc.want {
			t.Errorf("LocalURL(%s, %s) = %s, want %s", tc.scheme, tc.addr, got, tc.want)
		}
	}
}
