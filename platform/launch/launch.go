// Package launch is the main function of every standalone Steward binary:
// settings from STEWARD_* variables, the logger they ask for, SIGINT and
// SIGTERM as a graceful stop, and one line on stderr and exit status 1 on
// failure.
package launch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
)

// Settings is a service's settings struct: it says how to log.
type Settings interface {
	Logging() (logging.Format, slog.Level)
}

// Main loads S from the environment and runs run until a signal; it does
// not return.
func Main[S Settings](name string, run func(context.Context, S, *slog.Logger) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := func() error {
		var s S
		if err := envconf.Load(&s); err != nil {
			return err
		}
		format, level := s.Logging()
		return run(ctx, s, logging.New(os.Stderr, format, level))
	}()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
