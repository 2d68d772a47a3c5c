package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/gateway"
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/natsembed"
	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
	"github.com/stewardhq/steward/services/registry/client"
	"github.com/stewardhq/steward/services/scaler"
)

// devConfig is what `steward dev` reads beside each role's own settings:
// the embedded NATS server, the data directory, and each role's listen
// address (the same variables the roles read).
type devConfig struct {
	DataDir         string         `envconfig:"DATA_DIR" default:".steward" desc:"directory of the embedded NATS server's JetStream files"`
	NATSAddr        envconf.Addr   `envconfig:"DEV_NATS_ADDR" default:"127.0.0.1:4223" desc:"client address of the embedded NATS server"`
	NATSMonitorAddr envconf.Addr   `envconfig:"DEV_NATS_MONITOR_ADDR" default:"127.0.0.1:8222" desc:"monitoring address of the embedded NATS server"`
	DatabaseURL     string         `envconfig:"DATABASE_URL" desc:"PostgreSQL for snapshots and history (empty: none)"`
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"4s" desc:"how long in-flight requests may drain at shutdown"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`
}

// devRoles is every role's settings, read from the environment exactly as
// `steward <role>` reads them; dev then overrides only what one process
// on one machine must set (devOverridden).
type devRoles struct {
	config   config.Settings
	registry registry.Settings
	election election.Settings
	scaler   scaler.Settings
	gateway  gateway.Settings
}

func (r *devRoles) specs() []any {
	return []any{&r.config, &r.registry, &r.election, &r.scaler, &r.gateway}
}

// devOverridden are the roles' variables dev sets itself, so --help does
// not offer them: the NATS server is embedded, each service is its only
// replica, the roles find each other on loopback.
var devOverridden = []string{"NATS_URL", "REPLICA_ID", "VOTERS", "STREAM_REPLICAS",
	"REGISTRY_URL", "CONFIG_URL", "ELECTION_URLS", "ADVERTISE_ADDR", "REGISTRY_ALLOW_LOCAL"}

// devSettings are the settings `steward dev` reads, for --help: its own,
// then each role's, less the ones it overrides.
func devSettings() []any {
	var r devRoles
	return append([]any{new(devConfig)}, r.specs()...)
}

// runDev starts the embedded NATS server (JetStream, fsync on every write),
// connects PostgreSQL when STEWARD_DATABASE_URL is set, prints where
// everything listens, and runs until ctx is cancelled.
func runDev(ctx context.Context, stdout, stderr io.Writer) error {
	var cfg devConfig
	var roles devRoles
	for _, spec := range append([]any{&cfg}, roles.specs()...) {
		if err := envconf.Load(spec); err != nil {
			return err
		}
	}
	logger := logging.New(stderr, cfg.LogFormat, cfg.LogLevel)

	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("STEWARD_DATA_DIR: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}

	ns, err := natsembed.Start(natsembed.Options{
		Name:        "steward-dev",
		Dir:         filepath.Join(dataDir, "nats"),
		Addr:        string(cfg.NATSAddr),
		MonitorAddr: string(cfg.NATSMonitorAddr),
		SyncAlways:  true,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	defer func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		logger.Info("nats server stopped")
	}()

	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("steward-dev"))
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("jetstream is not available on the embedded server: %w", err)
	}

	postgres := "not used (set STEWARD_DATABASE_URL to keep snapshots and history in PostgreSQL)"
	var pool *pgxpool.Pool
	if cfg.DatabaseURL != "" {
		if pool, err = pgstore.Open(ctx, cfg.DatabaseURL, logger); err != nil {
			return err
		}
		defer pool.Close()
		c := pool.Config().ConnConfig
		postgres = fmt.Sprintf("%s@%s:%d/%s (migrated)", c.User, c.Host, c.Port, c.Database)
	}

	// Every service listens before the banner is printed, so the banner
	// tells the truth and a port clash fails at once.
	var lc net.ListenConfig
	configLn, err := lc.Listen(ctx, "tcp", string(roles.config.Addr))
	if err != nil {
		return fmt.Errorf("config service: listen on %s (STEWARD_CONFIG_ADDR): %w", roles.config.Addr, err)
	}
	registryLn, err := lc.Listen(ctx, "tcp", string(roles.registry.Addr))
	if err != nil {
		return fmt.Errorf("registry service: listen on %s (STEWARD_REGISTRY_ADDR): %w", roles.registry.Addr, err)
	}
	gatewayLn, err := lc.Listen(ctx, "tcp", string(roles.gateway.Addr))
	if err != nil {
		return fmt.Errorf("gateway: listen on %s (STEWARD_GATEWAY_ADDR): %w", roles.gateway.Addr, err)
	}
	electionLn, err := lc.Listen(ctx, "tcp", string(roles.election.Addr))
	if err != nil {
		return fmt.Errorf("election service: listen on %s (STEWARD_ELECTION_ADDR): %w", roles.election.Addr, err)
	}
	scalerLn, err := lc.Listen(ctx, "tcp", string(roles.scaler.Addr))
	if err != nil {
		return fmt.Errorf("scaler service: listen on %s (STEWARD_SCALER_ADDR): %w", roles.scaler.Addr, err)
	}
	// Every service registers itself in the registry under a loopback
	// address: dev mode is one machine.
	registryURL := client.LocalURL(registryLn.Addr())
	advertise := func(ln net.Listener) string { return client.LocalURL(ln.Addr())[len("http://"):] }
	electionURL := client.LocalURL(electionLn.Addr())
	configURL := client.LocalURL(configLn.Addr())

	// What dev sets, the same for every service: it is the only replica
	// of its stream on the embedded server, and registers itself on
	// loopback.
	rs := &roles.registry
	rs.ReplicaID, rs.Voters, rs.StreamReplicas = "registry-0", nil, 1
	rs.NATSURL, rs.DatabaseURL, rs.ShutdownTimeout = ns.ClientURL(), cfg.DatabaseURL, cfg.ShutdownTimeout
	rs.AllowLocal, rs.AdvertiseAddr = true, advertise(registryLn)
	cs := &roles.config
	cs.ReplicaID, cs.Voters, cs.StreamReplicas = "config-0", nil, 1
	cs.NATSURL, cs.DatabaseURL, cs.ShutdownTimeout = ns.ClientURL(), cfg.DatabaseURL, cfg.ShutdownTimeout
	cs.RegistryURL, cs.AdvertiseAddr = registryURL, advertise(configLn)
	es := &roles.election
	es.ReplicaID, es.Voters, es.StreamReplicas = "election-0", nil, 1
	es.NATSURL, es.DatabaseURL, es.ShutdownTimeout = ns.ClientURL(), cfg.DatabaseURL, cfg.ShutdownTimeout
	es.RegistryURL, es.AdvertiseAddr = registryURL, advertise(electionLn)
	ss := &roles.scaler
	ss.ReplicaID, ss.Voters, ss.StreamReplicas = "scaler-0", nil, 1
	ss.NATSURL, ss.DatabaseURL, ss.ShutdownTimeout = ns.ClientURL(), cfg.DatabaseURL, cfg.ShutdownTimeout
	ss.RegistryURL, ss.AdvertiseAddr, ss.ElectionURLs = registryURL, advertise(scalerLn), []string{electionURL}
	gs := &roles.gateway
	gs.RegistryURL, gs.ConfigURL, gs.AdvertiseAddr = registryURL, configURL, advertise(gatewayLn)
	gs.ShutdownTimeout = cfg.ShutdownTimeout

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := registry.Serve(gctx, *rs, registryLn, nc, pool, logger.With("service", "registry")); err != nil {
			return fmt.Errorf("registry service: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := config.Serve(gctx, *cs, configLn, nc, pool, logger.With("service", "config")); err != nil {
			return fmt.Errorf("config service: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := gateway.Serve(gctx, *gs, gatewayLn, logger.With("service", "gateway")); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := election.Serve(gctx, *es, electionLn, nc, pool, logger.With("service", "election")); err != nil {
			return fmt.Errorf("election service: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := scaler.Serve(gctx, *ss, scalerLn, nc, pool, logger.With("service", "scaler")); err != nil {
			return fmt.Errorf("scaler service: %w", err)
		}
		return nil
	})

	monitor := "off"
	if a := ns.MonitorAddr(); a != nil {
		monitor = fmt.Sprintf("http://%s/healthz", a)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "steward dev (%s): ready, Ctrl-C to stop\n", strings.TrimPrefix(versionLine(), "steward "))
	fmt.Fprintf(tw, "  gateway\thttp://%s\t/s/{service}/..., all of /v1 (Steward's API), routes from /steward/gateway/routes/\n", dialable(gatewayLn.Addr()))
	fmt.Fprintf(tw, "  config\thttp://%s\t/v1/kv, /v1/txn, /v1/watch, /v1/leases, /openapi.json\n", dialable(configLn.Addr()))
	fmt.Fprintf(tw, "  registry\thttp://%s\t/v1/services, /v1/registry/leases, /openapi.json\n", dialable(registryLn.Addr()))
	fmt.Fprintf(tw, "  election\thttp://%s\t/v1/elections, /openapi.json\n", dialable(electionLn.Addr()))
	fmt.Fprintf(tw, "  scaler\thttp://%s\t/v1/scalers, /v1/metrics, /openapi.json\n", dialable(scalerLn.Addr()))
	fmt.Fprintf(tw, "  nats\t%s\tJetStream in %s, fsync on every write, %d streams at start\n", ns.ClientURL(), filepath.Join(dataDir, "nats"), info.Streams)
	fmt.Fprintf(tw, "  nats monitor\t%s\t\n", monitor)
	fmt.Fprintf(tw, "  postgres\t%s\t\n", postgres)
	fmt.Fprintf(tw, "  auth\toff\tnot implemented yet: do not expose these ports\n")
	if err := tw.Flush(); err != nil {
		return err
	}
	logger.Info("steward dev ready", "nats", ns.ClientURL(), "data_dir", dataDir)

	err = g.Wait()
	if ctx.Err() != nil {
		logger.Info("stopped")
	}
	return err
}

// dialable shows a listen address as a client would dial it: a wildcard
// host becomes localhost.
func dialable(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok && (t.IP == nil || t.IP.IsUnspecified()) {
		return net.JoinHostPort("localhost", strconv.Itoa(t.Port))
	}
	return a.String()
}
