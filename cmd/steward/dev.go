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
	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/natsembed"
	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/services/config"
	"github.com/stewardhq/steward/services/election"
	"github.com/stewardhq/steward/services/registry"
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

// devRole is one role as dev runs it: where it listens, what the banner
// says of it, and its Serve on the settings dev completed.
type devRole struct {
	short, name, addrVar, paths string
	addr                        *envconf.Addr
	replicated                  *service.Replicated // nil for the gateway
	process                     *service.Process
	ln                          net.Listener
	serve                       func(context.Context, net.Listener, *nats.Conn, *pgxpool.Pool, *slog.Logger) error
}

// serveOn returns serve on the settings *s as they are when it is called.
func serveOn[S any](s *S, serve func(context.Context, S, net.Listener, *nats.Conn, *pgxpool.Pool, *slog.Logger) error) func(context.Context, net.Listener, *nats.Conn, *pgxpool.Pool, *slog.Logger) error {
	return func(ctx context.Context, ln net.Listener, nc *nats.Conn, p *pgxpool.Pool, l *slog.Logger) error {
		return serve(ctx, *s, ln, nc, p, l)
	}
}

// list returns the roles in the order they start and the banner lists
// them: the gateway first, as the one address most users need.
func (r *devRoles) list() []*devRole {
	return []*devRole{
		{short: "gateway", name: "gateway", addrVar: "GATEWAY_ADDR", addr: &r.gateway.Addr, process: &r.gateway.Process,
			paths: "/s/{service}/..., all of /v1 (Steward's API), the web console at /ui/, routes from /steward/gateway/routes/",
			serve: func(ctx context.Context, ln net.Listener, _ *nats.Conn, _ *pgxpool.Pool, l *slog.Logger) error {
				return gateway.Serve(ctx, r.gateway, ln, l)
			}},
		{short: "config", name: "config service", addrVar: "CONFIG_ADDR", addr: &r.config.Addr,
			replicated: &r.config.Replicated, process: &r.config.Process,
			paths: "/v1/kv, /v1/txn, /v1/watch, /v1/leases, /openapi.json",
			serve: serveOn(&r.config, config.Serve)},
		{short: "registry", name: "registry service", addrVar: "REGISTRY_ADDR", addr: &r.registry.Addr,
			replicated: &r.registry.Replicated, process: &r.registry.Process,
			paths: "/v1/services, /v1/registry/leases, /openapi.json",
			serve: serveOn(&r.registry, registry.Serve)},
		{short: "election", name: "election service", addrVar: "ELECTION_ADDR", addr: &r.election.Addr,
			replicated: &r.election.Replicated, process: &r.election.Process,
			paths: "/v1/elections, /openapi.json",
			serve: serveOn(&r.election, election.Serve)},
		{short: "scaler", name: "scaler service", addrVar: "SCALER_ADDR", addr: &r.scaler.Addr,
			replicated: &r.scaler.Replicated, process: &r.scaler.Process,
			paths: "/v1/scalers, /v1/metrics, /openapi.json",
			serve: serveOn(&r.scaler, scaler.Serve)},
	}
}

// devOverridden are the roles' variables dev sets itself, so --help does
// not offer them: the NATS server is embedded, each service is its only
// replica, the roles find each other on loopback.
var devOverridden = []string{"NATS_URL", "REPLICA_ID", "VOTERS", "STREAM_REPLICAS", "BATCH_ENCODING",
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
	roleList := roles.list()
	by := map[string]*devRole{}
	var lc net.ListenConfig
	for _, r := range roleList {
		by[r.short] = r
		if r.ln, err = lc.Listen(ctx, "tcp", string(*r.addr)); err != nil {
			return fmt.Errorf("%s: listen on %s (STEWARD_%s): %w", r.name, *r.addr, r.addrVar, err)
		}
	}
	// What dev sets, the same for every service: it is the only replica
	// of its stream on the embedded server, and registers itself on
	// loopback: dev mode is one machine. The roles read the same
	// STEWARD_TLS_* variables, so they reach each other with https://
	// URLs when those name a certificate.
	localURL := func(role string) string { return advertise.LocalURL(by[role].process.Scheme(), by[role].ln.Addr()) }
	registryURL := localURL("registry")
	for _, r := range roleList {
		r.process.AdvertiseAddr = advertise.LocalAddr(r.ln.Addr())
		r.process.ShutdownTimeout = cfg.ShutdownTimeout
		if rs := r.replicated; rs != nil {
			rs.ReplicaID, rs.Voters, rs.StreamReplicas = r.short+"-0", nil, 1
			// The only replica of its stream: no older one can be
			// reading it.
			rs.BatchEncoding = qlog.BatchBinary
			rs.NATSURL, rs.DatabaseURL, rs.RegistryURL = ns.ClientURL(), cfg.DatabaseURL, registryURL
		}
	}
	// With STEWARD_AUTH=on every role shares the bootstrap root token
	// (made up here and printed once when none is set), and uses it for
	// its own calls unless STEWARD_AUTH_TOKEN names another.
	rootSecret, generated := roles.config.BootstrapToken, false
	if roles.config.Auth && rootSecret == "" {
		rootSecret, generated = auth.NewSecret(), true
	}
	for _, r := range roleList {
		if roles.config.Auth {
			r.process.BootstrapToken = rootSecret
			if r.process.Token == "" {
				r.process.Token = rootSecret
			}
		}
	}
	roles.registry.AllowLocal = true
	roles.scaler.ElectionURLs = []string{localURL("election")}
	roles.scaler.ConfigURLs = []string{localURL("config")}
	roles.gateway.RegistryURL = registryURL
	roles.gateway.ConfigURL = localURL("config")

	g, gctx := errgroup.WithContext(ctx)
	for _, r := range roleList {
		g.Go(func() error {
			if err := r.serve(gctx, r.ln, nc, pool, logger.With("service", r.short)); err != nil {
				return fmt.Errorf("%s: %w", r.name, err)
			}
			return nil
		})
	}

	monitor := "off"
	if a := ns.MonitorAddr(); a != nil {
		monitor = fmt.Sprintf("http://%s/healthz", a)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "steward dev (%s): ready, Ctrl-C to stop\n", strings.TrimPrefix(versionLine(), "steward "))
	for _, r := range roleList {
		fmt.Fprintf(tw, "  %s\t%s://%s\t%s\n", r.short, r.process.Scheme(), dialable(r.ln.Addr()), r.paths)
	}
	fmt.Fprintf(tw, "  nats\t%s\tJetStream in %s, fsync on every write, %d streams at start\n", ns.ClientURL(), filepath.Join(dataDir, "nats"), info.Streams)
	fmt.Fprintf(tw, "  nats monitor\t%s\t\n", monitor)
	fmt.Fprintf(tw, "  postgres\t%s\t\n", postgres)
	switch {
	case !bool(roles.config.Auth):
		fmt.Fprintf(tw, "  auth\toff\tanyone who reaches these ports may do anything; STEWARD_AUTH=on requires tokens\n")
	case generated:
		fmt.Fprintf(tw, "  auth\ton\troot token %s (shown once; STEWARD_AUTH_BOOTSTRAP_TOKEN chooses it)\n", rootSecret)
	default:
		fmt.Fprintf(tw, "  auth\ton\troot token from STEWARD_AUTH_BOOTSTRAP_TOKEN\n")
	}
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
