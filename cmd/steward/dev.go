package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/natsembed"
	"github.com/stewardhq/steward/platform/pgstore"
)

// devConfig is `steward dev`'s environment.
type devConfig struct {
	DataDir         string         `envconfig:"DATA_DIR" default:".steward"`
	NATSAddr        envconf.Addr   `envconfig:"DEV_NATS_ADDR" default:"127.0.0.1:4223"`
	NATSMonitorAddr envconf.Addr   `envconfig:"DEV_NATS_MONITOR_ADDR" default:"127.0.0.1:8222"`
	DatabaseURL     string         `envconfig:"DATABASE_URL"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info"`
}

// runDev starts the embedded NATS server (JetStream, fsync on every write),
// connects PostgreSQL when STEWARD_DATABASE_URL is set, prints where
// everything listens, and runs until ctx is cancelled.
func runDev(ctx context.Context, stdout, stderr io.Writer) error {
	var cfg devConfig
	if err := envconf.Load(&cfg); err != nil {
		return err
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
	if cfg.DatabaseURL != "" {
		pool, err := pgstore.Open(ctx, cfg.DatabaseURL, logger)
		if err != nil {
			return err
		}
		defer pool.Close()
		c := pool.Config().ConnConfig
		postgres = fmt.Sprintf("%s@%s:%d/%s (migrated)", c.User, c.Host, c.Port, c.Database)
	}

	monitor := "off"
	if a := ns.MonitorAddr(); a != nil {
		monitor = fmt.Sprintf("http://%s/healthz", a)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "steward dev (version %s): ready, Ctrl-C to stop\n", version)
	fmt.Fprintf(tw, "  nats\t%s\tJetStream in %s, fsync on every write, %d streams\n", ns.ClientURL(), filepath.Join(dataDir, "nats"), info.Streams)
	fmt.Fprintf(tw, "  nats monitor\t%s\t\n", monitor)
	fmt.Fprintf(tw, "  postgres\t%s\t\n", postgres)
	fmt.Fprintf(tw, "  auth\toff\tno service has an API to protect yet\n")
	if err := tw.Flush(); err != nil {
		return err
	}
	logger.Info("steward dev ready", "nats", ns.ClientURL(), "data_dir", dataDir)

	<-ctx.Done()
	logger.Info("stopping")
	return nil
}
