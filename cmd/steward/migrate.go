package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/pgstore"
)

// migrateSettings are `steward migrate`'s environment.
type migrateSettings struct {
	DatabaseURL string         `envconfig:"DATABASE_URL" desc:"PostgreSQL database to migrate"`
	LogFormat   logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel    slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`
}

// runMigrate applies every pending migration (what each service also does
// at start) and prints the schema version, so a deployment can migrate
// once, before the services start.
func runMigrate(ctx context.Context, stdout, stderr io.Writer) error {
	var s migrateSettings
	if err := envconf.Load(&s); err != nil {
		return err
	}
	if s.DatabaseURL == "" {
		// pgx would fall back to libpq's PG* defaults: never guess the
		// database to migrate.
		return fmt.Errorf("STEWARD_DATABASE_URL is empty: set it to the database to migrate")
	}
	logger := logging.New(stderr, s.LogFormat, s.LogLevel)
	pool, err := pgstore.Open(ctx, s.DatabaseURL, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	v, dirty, err := pgstore.Version(ctx, pool)
	if err != nil {
		return err
	}
	if dirty {
		return fmt.Errorf("schema version %d is dirty: a migration failed half-way", v)
	}
	_, err = fmt.Fprintf(stdout, "schema at version %d\n", v)
	return err
}
