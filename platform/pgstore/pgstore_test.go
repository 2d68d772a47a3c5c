package pgstore_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stewardhq/steward/platform/pgstore"
	"github.com/stewardhq/steward/platform/pgstore/pgtest"
)

func tables(t *testing.T, pool *pgxpool.Pool) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE 'qlog_%'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got[name] = true
	}
	return got
}

// TestMigrationsUpDownUp applies every migration on a fresh database,
// reverts them all, and applies them again, checking the schema each time.
func TestMigrationsUpDownUp(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	pool, err := pgstore.Open(ctx, pgtest.NewDatabase(t), logger)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer pool.Close()

	want := map[string]bool{"qlog_snapshots": true, "qlog_history": true}
	check := func(step string, wantTables map[string]bool, wantVersion uint) {
		t.Helper()
		got := tables(t, pool)
		if len(got) != len(wantTables) {
			t.Fatalf("after %s: tables = %v, want %v", step, got, wantTables)
		}
		for name := range wantTables {
			if !got[name] {
				t.Fatalf("after %s: table %s missing (have %v)", step, name, got)
			}
		}
		v, dirty, err := pgstore.Version(ctx, pool)
		if err != nil || dirty || v != wantVersion {
			t.Fatalf("after %s: Version = %d, dirty %v, err %v; want %d, clean", step, v, dirty, err, wantVersion)
		}
	}
	check("up", want, 1)

	if err := pgstore.MigrateDown(ctx, pool, logger); err != nil {
		t.Fatalf("MigrateDown: %v", err)
	}
	check("down", map[string]bool{}, 0)

	if err := pgstore.MigrateUp(ctx, pool, logger); err != nil {
		t.Fatalf("MigrateUp again: %v", err)
	}
	check("up again", want, 1)

	// Up on an up-to-date schema is a no-op, as every service start does it.
	if err := pgstore.MigrateUp(ctx, pool, logger); err != nil {
		t.Fatalf("MigrateUp when current: %v", err)
	}
	check("up when current", want, 1)
}

func TestOpenRefusesUnreachableServer(t *testing.T) {
	_, err := pgstore.Open(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("Open on a closed port succeeded")
	}
}
