// Command steward is Steward's one binary: `steward <role>` runs one
// replica of a service (config, registry, election, scaler) or a gateway,
// `steward dev` runs all of them in one process on an embedded NATS
// server, `steward migrate` prepares the PostgreSQL database, `steward log
// dump` prints a service's log. Every setting is a STEWARD_* environment
// variable; `steward <command> --help` lists a command's.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/launch"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/scaler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "steward:", err)
		os.Exit(1)
	}
}

// errUsage is a command line steward does not understand; the usage is
// already on stderr and the exit status is 2, as flag packages do.
var errUsage = errors.New("usage")

// command is one `steward <name>`.
type command struct {
	name, summary string
	// settings are the structs whose STEWARD_* variables the command
	// reads, for --help.
	settings []any
	// overridden are variables of settings the command sets itself.
	overridden []string
	run        func(ctx context.Context, stdout, stderr io.Writer) error
	// runArgs, set instead of run, takes the command's arguments.
	runArgs func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// role is a command that runs one service as its own binary does
// (launch.Main): settings from the environment, the logger they ask for.
func role[S launch.Settings](name, summary string, serve func(context.Context, S, *slog.Logger) error) command {
	return command{name: name, summary: summary, settings: []any{new(S)},
		run: func(ctx context.Context, _, stderr io.Writer) error {
			var s S
			if err := envconf.Load(&s); err != nil {
				return err
			}
			format, level := s.Logging()
			return serve(ctx, s, logging.New(stderr, format, level))
		}}
}

func commands() []command {
	return []command{
		{name: "dev", summary: "run every service in one process on an embedded NATS server",
			settings: devSettings(), overridden: devOverridden, run: runDev},
		role("config", "run a replica of the configuration service", config.Run),
		role("registry", "run a replica of the service registry", registry.Run),
		role("election", "run a replica of the leader-election service", election.Run),
		role("scaler", "run a replica of the autoscaler", scaler.Run),
		role("gateway", "run a gateway", gateway.Run),
		{name: "migrate", summary: "apply the PostgreSQL migrations at STEWARD_DATABASE_URL and exit",
			settings: []any{new(migrateSettings)}, run: runMigrate},
		{name: "auth-init", summary: "give each of Steward's own roles a token with the least access it needs, under the secrets given, and exit",
			settings: []any{new(authInitSettings)}, run: runAuthInit},
		{name: "log", summary: "print a service's log stream as JSON lines, an entry a line: log dump <service> [--from seq] [--follow]",
			settings: []any{new(logSettings)}, runArgs: runLog},
		{name: "gen-env", summary: "print a .env for deploy/compose with fresh secrets", run: runGenEnv},
		{name: "probe", summary: "GET the URL given, exit 0 on a 2xx answer (health checks in the image, which has no curl)", runArgs: runProbe},
		{name: "version", summary: "print the version and the VCS revision",
			run: func(_ context.Context, stdout, _ io.Writer) error {
				_, err := fmt.Fprintln(stdout, versionLine())
				return err
			}},
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "usage: steward <command> [--help]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\t[command]: this, or the STEWARD_* settings of a command\n")
	tw.Flush()
	fmt.Fprint(w, "\nSettings are STEWARD_* environment variables; `steward <command> --help` lists them.\n")
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return errUsage
	}
	name, rest := args[0], args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		if len(rest) == 0 {
			usage(stdout)
			return nil
		}
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		switch {
		case len(rest) == 1 && (rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help"):
			return help(stdout, c)
		case c.runArgs != nil:
			return c.runArgs(ctx, rest, stdout, stderr)
		case len(rest) > 0:
			fmt.Fprintf(stderr, "steward %s: unexpected argument %q (settings are STEWARD_* variables)\n\n", name, rest[0])
			usage(stderr)
			return errUsage
		}
		return c.run(ctx, stdout, stderr)
	}
	fmt.Fprintf(stderr, "steward: unknown command %q\n\n", name)
	usage(stderr)
	return errUsage
}

func help(w io.Writer, c command) error {
	fmt.Fprintf(w, "usage: steward %s\n\n%s.\n", c.name, strings.ToUpper(c.summary[:1])+c.summary[1:])
	if len(c.settings) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nSettings:")
	// The shared settings say <service> where a default depends on the
	// role (STEWARD_REPLICA_ID: <service>-0); name it.
	var b strings.Builder
	if err := envconf.UsageExcept(&b, c.overridden, c.settings...); err != nil {
		return err
	}
	_, err := io.WriteString(w, strings.ReplaceAll(b.String(), "<service>", c.name))
	return err
}

// version and revision are set at build time with -ldflags "-X
// main.version=... -X main.revision=..." (the Dockerfile does, having no
// .git); by default they come from the build information.
var version, revision = "", ""

func versionLine() string {
	v, rev := version, revision
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true" && revision == ""
			}
		}
		if rev != "" && modified {
			rev += " (modified)"
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("steward %s revision %s", v, rev)
}
