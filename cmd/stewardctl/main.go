// Command stewardctl is Steward's command-line client: configuration
// keys and leases, the service registry, elections, scalers and their
// rollouts, the gateway's routes and auth, over the Go SDK, as users of
// etcdctl, consul and kubectl expect it.
//
// Exit status: 0 ok, 1 error, 2 usage (a bad flag or argument), 3 not
// found, 4 precondition failed (a compare-and-swap that lost).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
