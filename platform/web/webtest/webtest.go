// Package webtest holds what tests of Steward's HTTP services share:
// serving a real server on a loopback port for the length of a test, and
// waiting for a condition with a deadline.
package webtest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"
)

// ServeOn runs run on a fresh loopback listener until the test ends (its
// context is then cancelled, and an error it returns fails the test) and
// returns the base URL once GET /readyz answers 200.
func ServeOn(t testing.TB, run func(ctx context.Context, ln net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", ln.Addr(), err)
		}
	})
	url := "http://" + ln.Addr().String()
	WaitFor(t, 30*time.Second, url+" ready", func() bool {
		res, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return url
}

// WaitFor polls cond every 20 ms until it holds, and fails the test if it
// does not within d.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
