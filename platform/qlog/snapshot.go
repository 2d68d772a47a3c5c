package qlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Snapshot is a replica's state at one revision, as kept by a SnapshotStore.
type Snapshot struct {
	Service  string
	Replica  string
	Revision int64
	Seq      uint64 // the stream sequence the snapshot reflects
	Data     []byte // header and state machine snapshot; see encodeSnapshot
	Checksum []byte // SHA-256 of Data
	Created  time.Time
}

// SnapshotStore keeps snapshots: PostgreSQL in deployments (pgstore), the
// JetStream object store in dev mode (ObjectStoreSnapshots).
type SnapshotStore interface {
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// NewestSnapshots returns up to limit snapshots of service, newest
	// (highest revision) first. They may be corrupt; the log verifies them.
	NewestSnapshots(ctx context.Context, service string, limit int) ([]Snapshot, error)
}

// snapshotHeader is the log's own part of a snapshot: where it is in the
// stream, its running hash, and the idempotency keys still remembered,
// all of which are replicated state as much as the state machine's.
type snapshotHeader struct {
	Revision int64          `json:"revision"`
	Seq      uint64         `json:"seq"`
	LogTime  int64          `json:"logTime"`
	Chain    string         `json:"chain"`
	Dedupe   []dedupeRecord `json:"dedupe"`
}

// beginSnapshotLocked starts a snapshot of the applied state (see
// core.beginSnapshot); the caller holds l.mu (for reading at least).
func (l *Log) beginSnapshotLocked() (finish func() (Snapshot, error), err error) {
	seal, err := l.beginSnapshot(l.snapshotSizeHint())
	if err != nil {
		return nil, err
	}
	s := Snapshot{Service: l.cfg.Service, Replica: l.cfg.ReplicaID, Revision: l.rev, Seq: l.seq, Created: l.cfg.Clock()}
	return func() (Snapshot, error) {
		data, sum, err := seal()
		if err != nil {
			return Snapshot{}, err
		}
		s.Data, s.Checksum = data, sum
		return s, nil
	}, nil
}

// snapshotDueLocked reports whether a snapshot is due (see Log.appliedBytes);
// the caller holds l.mu.
func (l *Log) snapshotDueLocked() bool {
	return l.rev-l.lastSnap >= l.cfg.SnapshotEvery && l.appliedBytes-l.snapBytesAt >= l.lastSnapSize
}

// snapshotSizeHint guesses the size of the next snapshot, for its buffer:
// growing a large buffer by doubling clears and copies it again and again.
// The guess is the last snapshot's size, grown by as much as it grew over
// the one before (at most doubled: while keys are only added, each
// snapshot is about twice the last, as one is taken once the log has
// grown by the last one's size), and an eighth more.
func (l *Log) snapshotSizeHint() int {
	last, prev := float64(l.lastSnapSize), float64(l.prevSnapSize)
	next := last
	if prev > 0 && last > prev {
		next = min(2*last, last*last/prev)
	}
	return int(next + last/8)
}

// restoreLocked verifies s and loads it into the log and the state machine.
func (l *Log) restoreLocked(s Snapshot) error {
	if err := l.core.restore(s.Data, s.Checksum); err != nil {
		return err
	}
	l.lastSnap = l.rev
	// The ring was emptied past every position a watch holds: keyed
	// watches must look, and find themselves cut off.
	l.keyed.all()
	return nil
}

// restore loads the newest snapshot that verifies. Only the newest is
// fetched at first; older ones are fetched only if it does not verify. A
// corrupt snapshot is logged and skipped; if one fails after the state
// machine began to restore it, the next candidate replaces that partial
// state wholesale.
func (l *Log) restore(ctx context.Context) error {
	if l.cfg.Snapshots == nil {
		return nil
	}
	tried := map[string]bool{}
	for _, limit := range []int{1, 5} {
		// Fetched without holding l.mu: every reader of the replica's
		// revision would wait on this call (seen: five minutes of
		// requests, /readyz too, held by a lost NATS request).
		cands, err := l.cfg.Snapshots.NewestSnapshots(ctx, l.cfg.Service, limit)
		if err != nil {
			return fmt.Errorf("qlog: list snapshots: %w", err)
		}
		for _, s := range cands {
			id := fmt.Sprintf("%d/%s", s.Revision, s.Replica)
			if tried[id] {
				continue
			}
			tried[id] = true
			start := time.Now()
			l.mu.Lock()
			err := l.restoreLocked(s)
			if err == nil {
				l.lastSnapSize = uint64(len(s.Data))
			}
			l.mu.Unlock()
			if err != nil {
				l.logger.Warn("qlog skipped a bad snapshot", "revision", s.Revision, "replica", s.Replica, "err", err)
				continue
			}
			l.logger.Info("qlog restored snapshot", "revision", s.Revision, "seq", s.Seq, "from_replica", s.Replica,
				"bytes", len(s.Data), "took", time.Since(start))
			return nil
		}
	}
	if len(tried) > 0 {
		return fmt.Errorf("qlog: none of the %d newest snapshots of %s verifies; refusing to start from a partial state", len(tried), l.cfg.Service)
	}
	return nil
}

func (l *Log) kickSnapshot() {
	select {
	case l.snapKick <- struct{}{}:
	default:
	}
}

// snapshotLoop takes a snapshot every SnapshotEvery entries or
// SnapshotInterval, whichever comes first, and then trims the stream.
func (l *Log) snapshotLoop(ctx context.Context) {
	tick := time.NewTicker(l.cfg.SnapshotInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.snapKick:
			// Every apply while a snapshot was being written and saved
			// kicked again; once it is saved, the kick is stale.
			l.mu.RLock()
			due := l.snapshotDueLocked()
			l.mu.RUnlock()
			if !due {
				continue
			}
		case <-tick.C:
		}
		if _, err := l.TakeSnapshot(ctx); err != nil && ctx.Err() == nil {
			l.logger.Warn("qlog snapshot failed", "err", err)
		}
	}
}

// TakeSnapshot stores a snapshot now (unless nothing changed since the
// last) and trims the stream below it minus RetainEntries. It returns the
// snapshot's revision.
func (l *Log) TakeSnapshot(ctx context.Context) (int64, error) {
	if l.cfg.Snapshots == nil {
		return 0, errors.New("qlog: no snapshot store configured")
	}
	if err := l.serving(); err != nil {
		return 0, err
	}
	// The snapshot begins under the read lock (applies wait, reads go on):
	// a SnapshotViewer's view is taken there and written after the lock is
	// released, any other state machine is serialised there whole. The
	// upload happens after the lock is released. viewMu keeps two
	// snapshots from taking views at once, which the read lock alone allows.
	l.viewMu.Lock()
	l.mu.RLock()
	if l.rev == l.lastSnap || l.seq == 0 {
		rev := l.lastSnap
		l.mu.RUnlock()
		l.viewMu.Unlock()
		return rev, nil
	}
	finish, err := l.beginSnapshotLocked()
	bytesAt := l.appliedBytes
	l.mu.RUnlock()
	l.viewMu.Unlock()
	if err != nil {
		return 0, err
	}
	s, err := finish()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := l.cfg.Snapshots.SaveSnapshot(ctx, s); err != nil {
		return 0, fmt.Errorf("save snapshot: %w", err)
	}
	l.mu.Lock()
	if s.Revision > l.lastSnap {
		l.lastSnap, l.snapBytesAt = s.Revision, bytesAt
		l.prevSnapSize, l.lastSnapSize = l.lastSnapSize, uint64(len(s.Data))
	}
	l.mu.Unlock()
	l.metrics.snapshots.Observe(time.Since(start).Seconds())
	l.logger.Info("qlog snapshot saved", "revision", s.Revision, "seq", s.Seq, "bytes", len(s.Data), "took", time.Since(start))
	if r := l.cfg.RetainEntries; r > 0 && s.Seq > r {
		if err := l.stream.Purge(ctx, jetstream.WithPurgeSequence(s.Seq-r)); err != nil {
			return s.Revision, fmt.Errorf("trim stream below %d: %w", s.Seq-r, err)
		}
	}
	return s.Revision, nil
}

// readAll is io.ReadAll with a bound, for snapshot stores.
func readAll(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("snapshot over %d bytes", limit)
	}
	return b, nil
}

// errCatchUpLater marks a failure to learn where the stream starts or which
// snapshots there are (a slow link, a stream without a leader, the
// snapshot store down): the replica tries again rather than fail-stop for
// a gap that may be only compaction. A chaos run fail-stopped a replica for
// good when its stream info timed out over a throttled link.
var errCatchUpLater = errors.New("cannot tell yet whether the gap is compaction")

// restoreAfterTrim handles a gap found while applying: if the stream now
// starts after this replica's position (it was trimmed while the replica
// lagged), it restores the newest snapshot that reaches the stream's first
// message. It returns an error when the gap is not explained by trimming
// or no snapshot covers it; the caller then fail-stops. An error wrapping
// errCatchUpLater says only that it could not find out now.
func (l *Log) restoreAfterTrim(ctx context.Context) error {
	if l.cfg.Snapshots == nil {
		return errors.New("no snapshot store to catch up from")
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("%w: stream info: %w", errCatchUpLater, err)
	}
	first := info.State.FirstSeq
	l.mu.RLock()
	applied := l.seq
	l.mu.RUnlock()
	if first <= applied+1 {
		return errors.New("the stream still holds the missing messages: not compaction")
	}
	cands, err := l.cfg.Snapshots.NewestSnapshots(ctx, l.cfg.Service, 5)
	if err != nil {
		return fmt.Errorf("%w: list snapshots: %w", errCatchUpLater, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range cands {
		if s.Seq+1 < first || s.Seq <= l.seq {
			continue
		}
		if err := l.restoreLocked(s); err != nil {
			// restoreLocked may have replaced part of the state: only a
			// later candidate that verifies may go on from here.
			l.logger.Warn("qlog skipped a bad snapshot", "revision", s.Revision, "replica", s.Replica, "err", err)
			continue
		}
		l.logger.Warn("qlog fell behind a trimmed stream; restored a newer snapshot", "revision", s.Revision, "seq", s.Seq,
			"was_at_seq", applied, "stream_first_seq", first)
		l.wakeLocked()
		return nil
	}
	return fmt.Errorf("no snapshot reaches the stream's first sequence %d", first)
}
