// Command steward-gateway runs the gateway.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "steward-gateway:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var s gateway.Settings
	if err := envconf.Load(&s); err != nil {
		return err
	}
	return gateway.Run(ctx, s, logging.New(os.Stderr, s.LogFormat, s.LogLevel))
}
