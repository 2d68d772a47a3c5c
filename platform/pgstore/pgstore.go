// Package pgstore connects Steward to PostgreSQL: a pgx v5 pool and the
// schema migrations embedded in the migrations module, applied with
// golang-migrate at start.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/stewardhq/steward/migrations"
)

// Open connects a pool to url (STEWARD_DATABASE_URL), checks that the
// server answers, and applies any pending migrations.
func Open(ctx context.Context, url string, logger *slog.Logger) (*pgxpool.Pool, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: ping %s: %w", redact(pool), err)
	}
	if err := MigrateUp(ctx, pool, logger); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func redact(pool *pgxpool.Pool) string {
	c := pool.Config().ConnConfig
	return fmt.Sprintf("%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// MigrateUp applies every migration not yet applied.
func MigrateUp(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	return withMigrate(ctx, pool, logger, func(m *migrate.Migrate) error {
		before, _, _ := m.Version()
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate up: %w", err)
		}
		after, _, _ := m.Version()
		if after != before {
			logger.Info("database migrated", "from", before, "to", after)
		}
		return nil
	})
}

// MigrateDown reverts every migration. It exists for tests and operators
// rolling back a release; services never call it.
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	return withMigrate(ctx, pool, logger, func(m *migrate.Migrate) error {
		if err := m.Down(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate down: %w", err)
		}
		logger.Info("database migrations reverted")
		return nil
	})
}

// Version returns the applied schema version and whether a failed
// migration left it dirty. Version 0 means no migration is applied.
func Version(ctx context.Context, pool *pgxpool.Pool) (version uint, dirty bool, err error) {
	err = withMigrate(ctx, pool, slog.New(slog.DiscardHandler), func(m *migrate.Migrate) error {
		version, dirty, err = m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			version, dirty, err = 0, false, nil
		}
		return err
	})
	return version, dirty, err
}

func withMigrate(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger, fn func(*migrate.Migrate) error) error {
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("migrations source: %w", err)
	}
	// golang-migrate speaks database/sql; this borrows one pool connection
	// for it (the driver holds it for its advisory lock).
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		return fmt.Errorf("migrations driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	defer m.Close()
	m.Log = migrateLogger{logger}
	// Asks golang-migrate to stop after the current migration if ctx ends
	// meanwhile. An AfterFunc, not a goroutine waiting on ctx.Done(), which
	// outlived every call (forever for a context that never ends).
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()
	return fn(m)
}

// migrateLogger shows golang-migrate's progress lines in the service log.
type migrateLogger struct{ logger *slog.Logger }

func (l migrateLogger) Printf(format string, v ...any) {
	l.logger.Info("migrate: " + fmt.Sprintf(format, v...))
}
func (l migrateLogger) Verbose() bool { return false }
