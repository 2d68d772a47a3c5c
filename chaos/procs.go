package main

import (
	"context"
	"time"

	"github.com/stewardhq/steward/platform/supervise"
)

// proc is one supervised process inside a node's namespace (ip netns
// exec replaces itself with the program, so the pid is the program's).
// The supervisor restarts it when it exits on its own (counted and
// reported); the nemesis kills, stops and restarts it on purpose.
type proc struct {
	*supervise.Process
	role string // config, registry, election, scaler, gateway, nats
	node int
}

// sleepCtx sleeps for d or until ctx ends; it reports whether it slept
// the whole time.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
