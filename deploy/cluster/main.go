// Command cluster runs the topology of deploy/compose/compose.yaml as
// local processes on 127.0.0.1 (make cluster): three NATS servers
// clustered with JetStream, a fresh database on the machine's
// PostgreSQL, `steward migrate`, three voting replicas of each service,
// two gateways, auth on with a root token made up for the run. Each
// service's environment is compose's, its host names rewritten to local
// ports. It prints the gateways' URLs and the root token, and runs until
// Ctrl-C; every process logs into the run directory.
//
// Package smoke (deploy/cluster/smoke) is the check the test runs
// through a gateway of this cluster, and the compose and Helm tests
// through theirs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/stewardhq/steward/deploy/cluster/smoke"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// defaultBasePort puts the first gateway at 18080, clear of the
// machine's own NATS (4222) and of steward dev's ports (8080-8084).
const defaultBasePort = 18080

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := defaultBasePort
	if v := os.Getenv("CLUSTER_BASE_PORT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("CLUSTER_BASE_PORT=%q: want a port number", v)
		}
		base = n
	}
	adminURL := os.Getenv("STEWARD_TEST_DATABASE_URL")
	if adminURL == "" {
		adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	o := options{}
	fs.StringVar(&o.composeFile, "compose", "deploy/compose/compose.yaml", "the compose file whose topology to run")
	fs.StringVar(&o.binDir, "bin", "", "directory with steward and nats-server (empty: build them into the run directory)")
	fs.StringVar(&o.runDir, "dir", "", "run directory: logs, NATS stores (empty: a new one under the system's temporary directory)")
	fs.IntVar(&o.basePort, "base-port", base, "first local port (gateway-1's); the others follow (CLUSTER_BASE_PORT)")
	fs.StringVar(&o.adminURL, "database-url", adminURL, "PostgreSQL to create the run's database on (STEWARD_TEST_DATABASE_URL)")
	smokeCheck := fs.Bool("smoke", false, "once ready, run the smoke check through every gateway (deploy/cluster/smoke); a failure stops the cluster")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if o.runDir == "" {
		d, err := os.MkdirTemp("", "steward-cluster-")
		if err != nil {
			return err
		}
		o.runDir = d
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "[cluster %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
	}
	o.logf = logf
	if o.binDir == "" {
		o.binDir = filepath.Join(o.runDir, "bin")
		logf("building steward and nats-server into %s", o.binDir)
		if err := buildBinaries(ctx, o.binDir, "."); err != nil {
			return err
		}
	}
	began := time.Now()
	c, err := startCluster(ctx, o)
	if err != nil {
		return err
	}
	defer c.stop()
	gateways := c.gatewayURLs()
	logf("ready in %s; logs in %s", time.Since(began).Round(time.Millisecond), filepath.Join(o.runDir, "logs"))
	fmt.Fprintf(stdout, "\nSteward is running (Ctrl-C to stop).\n")
	for _, g := range gateways {
		fmt.Fprintf(stdout, "  gateway     %s\n", g)
	}
	fmt.Fprintf(stdout, "  root token  %s\n\n", c.secrets.root)
	if len(gateways) > 0 {
		fmt.Fprintf(stdout, "  curl -H 'Authorization: Bearer %s' %s/v1/services\n\n", c.secrets.root, gateways[0])
	}
	if *smokeCheck {
		for _, g := range gateways {
			if err := smoke.Run(ctx, smoke.Target{GatewayURL: g, Token: c.secrets.root}, logf); err != nil {
				return err
			}
		}
	}
	<-ctx.Done()
	logf("stopping")
	return nil
}

// buildBinaries builds steward (from the Go workspace that holds dir)
// and nats-server into binDir, static as make build and make chaos do.
func buildBinaries(ctx context.Context, binDir, dir string) error {
	for _, b := range []struct{ out, pkg string }{
		{"steward", "github.com/stewardhq/steward/cmd/steward"},
		{"nats-server", "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(binDir, b.out), b.pkg)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return errors.Join(fmt.Errorf("go build %s: %w", b.pkg, err), errors.New(string(out)))
		}
	}
	return nil
}
