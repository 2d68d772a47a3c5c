package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stewardhq/steward/platform/qlog"
)

// Snapshots is the PostgreSQL qlog.SnapshotStore (table qlog_snapshots).
type Snapshots struct {
	pool *pgxpool.Pool
	keep int
}

// NewSnapshots returns a store that keeps the newest keep snapshots of
// each service (at least 2, so a corrupt newest one has a fallback).
func NewSnapshots(pool *pgxpool.Pool, keep int) *Snapshots {
	return &Snapshots{pool: pool, keep: max(keep, 2)}
}

// SaveSnapshot stores s and deletes the service's snapshots older than the
// newest keep, in one transaction.
func (s *Snapshots) SaveSnapshot(ctx context.Context, snap qlog.Snapshot) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO qlog_snapshots (service, revision, replica, seq, state, checksum, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (service, revision, replica) DO UPDATE
			SET seq = EXCLUDED.seq, state = EXCLUDED.state, checksum = EXCLUDED.checksum, created_at = EXCLUDED.created_at`,
			snap.Service, snap.Revision, snap.Replica, int64(snap.Seq), snap.Data, snap.Checksum, snap.Created)
		if err != nil {
			return fmt.Errorf("insert snapshot: %w", err)
		}
		_, err = tx.Exec(ctx, `
			DELETE FROM qlog_snapshots
			WHERE service = $1 AND (revision, replica) NOT IN (
				SELECT revision, replica FROM qlog_snapshots WHERE service = $1
				ORDER BY revision DESC, created_at DESC LIMIT $2)`,
			snap.Service, s.keep)
		if err != nil {
			return fmt.Errorf("prune snapshots: %w", err)
		}
		return nil
	})
}

// NewestSnapshots returns up to limit snapshots of service, newest first.
func (s *Snapshots) NewestSnapshots(ctx context.Context, service string, limit int) ([]qlog.Snapshot, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT service, revision, replica, seq, state, checksum, created_at
		FROM qlog_snapshots WHERE service = $1
		ORDER BY revision DESC, created_at DESC LIMIT $2`, service, limit)
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (qlog.Snapshot, error) {
		var (
			snap qlog.Snapshot
			seq  int64
		)
		err := row.Scan(&snap.Service, &snap.Revision, &snap.Replica, &seq, &snap.Data, &snap.Checksum, &snap.Created)
		snap.Seq = uint64(seq)
		return snap, err
	})
}
