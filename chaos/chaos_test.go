package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
)

// TestChaos runs the whole fault suite, as make chaos does, when
// CHAOS_TEST=1 (it needs root and the binaries of make build plus
// bin/nats-server; CHAOS_* settings apply). Give go test a -timeout
// longer than CHAOS_DURATION plus a few minutes.
func TestChaos(t *testing.T) {
	if os.Getenv("CHAOS_TEST") == "" {
		t.Skip("the fault suite runs with CHAOS_TEST=1, as root (make chaos is the usual way)")
	}
	if os.Getenv("CHAOS_BIN") == "" {
		t.Setenv("CHAOS_BIN", filepath.Join("..", "bin"))
	}
	o, err := loadOptions()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		t.Fatal(err)
	}
}
