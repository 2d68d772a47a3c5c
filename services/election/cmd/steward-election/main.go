// Command steward-election runs one replica of the leader-election service.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/services/election"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "steward-election:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var s election.Settings
	if err := envconf.Load(&s); err != nil {
		return err
	}
	return election.Run(ctx, s, logging.New(os.Stderr, s.LogFormat, s.LogLevel))
}
