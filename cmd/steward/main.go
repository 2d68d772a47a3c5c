// Command steward is Steward's all-in-one binary. `steward dev` runs every
// service in one process on an embedded NATS server, with nothing else
// installed; later subcommands form the CLI.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "steward:", err)
		stop()
		os.Exit(1)
	}
}

const usage = `usage: steward <command>

commands:
  dev      run every Steward service in one process on an embedded NATS server
  version  print the version

Configuration comes from STEWARD_* environment variables; see README.md.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "steward", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
