package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stewardhq/steward/platform/qlog"
)

// History archives a service's events in PostgreSQL (table qlog_history)
// and answers per-key history older than the replicas keep in memory.
type History struct {
	pool    *pgxpool.Pool
	service string
}

// NewHistory returns the archive of service.
func NewHistory(pool *pgxpool.Pool, service string) *History {
	return &History{pool: pool, service: service}
}

// archiveBatch bounds one insert.
const archiveBatch = 512

// Archive copies every event of l into the table until ctx ends. It
// resumes at the newest archived revision (re-inserting that revision's
// events, which the primary key makes a no-op), so several replicas may
// archive at once and a restart loses nothing the replica still holds. If
// the replica no longer holds the revision to resume from, the gap is
// logged and archiving continues from the oldest revision it holds.
func (h *History) Archive(ctx context.Context, l *qlog.Log, logger *slog.Logger) error {
	for ctx.Err() == nil {
		err := h.archiveOnce(ctx, l, logger)
		if ctx.Err() != nil {
			return nil
		}
		logger.Warn("history archiver restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (h *History) archiveOnce(ctx context.Context, l *qlog.Log, logger *slog.Logger) error {
	var from int64
	if err := h.pool.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM qlog_history WHERE service = $1`, h.service).Scan(&from); err != nil {
		return fmt.Errorf("archive position: %w", err)
	}
	from = max(from, 1)
	w, err := l.Watch(from, nil)
	var ce *qlog.CompactedError
	if errors.As(err, &ce) {
		logger.Warn("history archive has a gap: the replica no longer holds these revisions",
			"service", h.service, "from", from, "to", ce.CompactRevision-1)
		w, err = l.Watch(ce.CompactRevision, nil)
	}
	if err != nil {
		return err
	}
	var (
		batch   []qlog.Event
		lastRev int64
		idx     int
		idxs    []int
	)
	for {
		// Wait for one event, then take whatever follows within 20ms.
		ev, err := w.Next(ctx)
		if err != nil {
			return err
		}
		for {
			if ev.Revision == lastRev {
				idx++
			} else {
				lastRev, idx = ev.Revision, 0
			}
			batch, idxs = append(batch, ev), append(idxs, idx)
			if len(batch) >= archiveBatch {
				break
			}
			nctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			ev, err = w.Next(nctx)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					return err
				}
				break
			}
		}
		if err := h.insert(ctx, batch, idxs); err != nil {
			return err
		}
		batch, idxs = batch[:0], idxs[:0]
	}
}

func (h *History) insert(ctx context.Context, events []qlog.Event, idxs []int) error {
	revs := make([]int64, len(events))
	keys := make([]string, len(events))
	types := make([]string, len(events))
	data := make([][]byte, len(events))
	for i, ev := range events {
		revs[i], keys[i], types[i], data[i] = ev.Revision, ev.Key, ev.Type, ev.Data
	}
	_, err := h.pool.Exec(ctx, `
		INSERT INTO qlog_history (service, revision, idx, key, type, data)
		SELECT $1, r, i, k, t, d FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::bytea[]) AS u(r, i, k, t, d)
		ON CONFLICT DO NOTHING`, h.service, revs, idxs, keys, types, data)
	if err != nil {
		return fmt.Errorf("archive %d events: %w", len(events), err)
	}
	return nil
}

// KeyEvents returns up to limit archived events of key with revision below
// before, newest first.
func (h *History) KeyEvents(ctx context.Context, key string, before int64, limit int) ([]qlog.Event, error) {
	rows, err := h.pool.Query(ctx, `
		SELECT revision, type, key, data FROM qlog_history
		WHERE service = $1 AND key = $2 AND revision < $3
		ORDER BY revision DESC, idx DESC LIMIT $4`, h.service, key, before, limit)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", key, err)
	}
	defer rows.Close()
	var out []qlog.Event
	for rows.Next() {
		var ev qlog.Event
		if err := rows.Scan(&ev.Revision, &ev.Type, &ev.Key, &ev.Data); err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}
