package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/stewardhq/steward/sdk"
)

// Exit statuses a script can tell apart.
const (
	exitOK                 = 0
	exitError              = 1
	exitUsage              = 2
	exitNotFound           = 3
	exitPreconditionFailed = 4
)

// app is what every command shares: the global flags, the streams, and
// the client they make.
type app struct {
	endpoint string
	token    string
	envToken string // STEWARD_TOKEN, used without --token
	output   string

	stdin          io.Reader
	stdout, stderr io.Writer

	// running is set once a command's own code starts: an error before
	// that came from cobra's parsing of the command line, a usage error.
	running bool
}

// usageError is a command line that does not say what to do.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// run executes the command line args and returns the exit status.
// getenv reads STEWARD_ENDPOINT and STEWARD_TOKEN, the defaults of
// --endpoint and --token.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.root(getenv)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err, a.running)
	fmt.Fprintf(stderr, "stewardctl: %s\n", message(err))
	if code == exitUsage {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitCode is the status err ends the program with; running says whether
// the command's own code had started.
func exitCode(err error, running bool) int {
	var u usageError
	switch {
	case !running, errors.As(err, &u):
		return exitUsage
	case errors.Is(err, sdk.ErrNotFound):
		return exitNotFound
	case errors.Is(err, sdk.ErrPreconditionFailed):
		return exitPreconditionFailed
	}
	return exitError
}

// message is err for a person: a problem Steward answered is its detail
// (the SDK's "steward: 404:" prefix is for logs).
func message(err error) string {
	var e *sdk.Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = fmt.Sprintf("status %d", e.Status)
	}
	return msg
}

func (a *app) root(getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:   "stewardctl",
		Short: "Steward's command-line client",
		Long: `stewardctl calls Steward: configuration keys and leases, the service
registry, elections, scalers and their rollouts, the gateway's routes and auth.

It reaches Steward at --endpoint (STEWARD_ENDPOINT; default the gateway of a
steward dev on this machine), a comma-separated list of base URLs that calls
fail over between, with --token (STEWARD_TOKEN) as the bearer token when
auth is on.

Exit status: 0 ok, 1 error, 2 usage, 3 not found, 4 precondition failed.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          usageArgs(cobra.NoArgs),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.running = true
			switch a.output {
			case "table", "json", "yaml":
				return nil
			}
			return usagef("-o %q: want table, json or yaml", a.output)
		},
		Run: func(cmd *cobra.Command, args []string) { _ = cmd.Help() },
	}
	endpoint := getenv("STEWARD_ENDPOINT")
	if endpoint == "" {
		endpoint = sdk.DefaultEndpoint
	}
	f := root.PersistentFlags()
	f.StringVar(&a.endpoint, "endpoint", endpoint, "Steward's base URLs, comma-separated (STEWARD_ENDPOINT)")
	// Not the flag's default, which --help would print: a secret.
	a.envToken = getenv("STEWARD_TOKEN")
	f.StringVar(&a.token, "token", "", "bearer token (default STEWARD_TOKEN)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(a.kvCommand(), a.leaseCommand(), a.svcCommand(), a.electionCommand(),
		a.scalerCommand(), a.rolloutCommand(), a.routesCommand(), a.authCommand(), a.versionCommand())
	return root
}

// usageArgs is check with its error marked as a usage error.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// group is a command that only holds subcommands: run alone it shows its
// help, run with an unknown subcommand it is a usage error (cobra would
// show the help and succeed).
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(cobra.NoArgs),
		Run:   func(cmd *cobra.Command, args []string) { _ = cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// client is the SDK client of the global flags.
func (a *app) client() (*sdk.Client, error) {
	opts := []sdk.Option{sdk.WithUserAgent("stewardctl/" + version())}
	if token := cmp.Or(a.token, a.envToken); token != "" {
		opts = append(opts, sdk.WithToken(token))
	}
	c, err := sdk.New(a.endpoint, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// version is the module version stewardctl was built from, or the VCS
// revision of a build from a work tree.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = s.Value
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print stewardctl's version",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, _ := debug.ReadBuildInfo()
			goVersion := "unknown"
			if info != nil {
				goVersion = info.GoVersion
			}
			_, err := fmt.Fprintf(a.stdout, "stewardctl %s (%s)\n", version(), goVersion)
			return err
		},
	}
}

// call is one call of Steward's that a command makes with its arguments.
type call[T any] func(ctx context.Context, c *sdk.Client, args []string) (T, error)

// runs makes cmd make one call and show its answer as -o asks, as a
// table tab makes of it by default. Most commands are that.
func runs[T any](a *app, cmd *cobra.Command, fn call[T], tab func(T) table) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		v, err := fn(cmd.Context(), c, args)
		if err != nil {
			return err
		}
		return a.show(v, func() table { return tab(v) })
	}
	return cmd
}

// list is items, or an empty list (JSON [], not null) when there are none.
func list[T any](items []T, err error) ([]T, error) {
	if items == nil && err == nil {
		items = []T{}
	}
	return items, err
}
