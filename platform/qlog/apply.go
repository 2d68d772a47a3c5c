package qlog

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// wireBatch is one stream message: the entries one replica group-committed.
// It is JSON so that `nats stream view` shows readable entries; commands are
// JSON documents themselves and travel unescaped.
type wireBatch struct {
	Entries []wireEntry `json:"entries"`
}

type wireEntry struct {
	ID       string          `json:"id"`          // proposal ID, unique per proposer incarnation
	Proposer string          `json:"p"`           // replica ID
	Time     int64           `json:"t"`           // proposer's clock, Unix nanoseconds
	Key      string          `json:"k,omitempty"` // idempotency key
	Cmd      json.RawMessage `json:"c"`
}

// chainHash is the running hash of what a replica applied:
// h(n) = SHA-256(h(n-1) || revision || len(cmd) || cmd || len(result) || result).
// Two replicas that applied the same entries with the same results have
// the same hash at every revision; hashing results, not just commands,
// makes a replica whose state diverged (a bug, a bad restore, tampering)
// visible at the first entry whose outcome differs.
type chainHash [sha256.Size]byte

func (c chainHash) next(rev int64, cmd, result []byte) chainHash {
	h := sha256.New()
	var n [8]byte
	h.Write(c[:])
	binary.BigEndian.PutUint64(n[:], uint64(rev))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(len(cmd)))
	h.Write(n[:])
	h.Write(cmd)
	binary.BigEndian.PutUint64(n[:], uint64(len(result)))
	h.Write(n[:])
	h.Write(result)
	var out chainHash
	h.Sum(out[:0])
	return out
}

// delivery hands an applied entry's outcome to the local proposer waiting for it.
type delivery struct {
	p   *proposal
	out outcome
}

// applyLoop consumes the stream in order and applies each message.
//
// It runs its own ephemeral pull consumer rather than nats.go's ordered
// consumer, for how quickly it moves when the NATS server holding the
// consumer is lost. The ordered consumer re-creates itself with 10-second
// attempts and a backoff of 1, 2, 4 s: a consumer placed on a server that
// was killed (placement does not know yet that it is gone) cost 11.8 s
// of stalled writes in a fault test. Here a consumer that sends nothing,
// not even its heartbeat, for a second is replaced, and creating one gives
// up after two seconds and tries again at once (placement is random over
// the stream's servers, so the next try usually avoids the lost one).
func (l *Log) applyLoop(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil && l.failed.Load() == nil {
		l.mu.RLock()
		start := l.seq + 1
		l.mu.RUnlock()
		err := l.consumeFrom(ctx, start)
		if ctx.Err() != nil || l.failed.Load() != nil {
			return
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			l.fail(fmt.Sprintf("stream %s disappeared", StreamName(l.cfg.Service)))
			return
		}
		if ge := (*gapError)(nil); errors.As(err, &ge) && ge.first {
			// A consumer that starts at the next sequence delivered a later
			// one first: the stream no longer holds it. That is the stream
			// trimmed past this replica while it lagged (compaction, not
			// loss): jump to a snapshot that covers the trimmed entries, as
			// a restarting replica would. Anything else is a real gap and
			// fail-stops.
			if rerr := l.restoreAfterTrim(ctx); rerr != nil {
				if ctx.Err() == nil {
					l.fail(fmt.Sprintf("%v (%v)", ge, rerr))
				}
				return
			}
			backoff = 50 * time.Millisecond
			continue
		}
		// A gap in the middle of a consumer's deliveries is a delivery lost
		// on the way (a reconnect): a new consumer from the next sequence
		// fetches it again.
		l.metrics.consumers.Inc()
		l.noteStall()
		l.logger.Warn("qlog consumer interrupted; replacing it", "err", err, "from_seq", start, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// consumeFrom creates a consumer that starts at stream sequence start and
// applies what it delivers until it fails.
func (l *Log) consumeFrom(ctx context.Context, start uint64) error {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cons, err := l.stream.CreateConsumer(cctx, jetstream.ConsumerConfig{
		Description:   "qlog replica " + l.cfg.ReplicaID,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
		AckPolicy:     jetstream.AckNonePolicy,
		MemoryStorage: true,
		Replicas:      1,
		// The servers remove a consumer whose replica stopped pulling
		// (crashed, or replaced it here without being able to delete it).
		InactiveThreshold: 30 * time.Second,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	name := cons.CachedInfo().Name
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_ = l.stream.DeleteConsumer(dctx, name)
		cancel()
	}()
	it, err := cons.Messages(jetstream.PullMaxMessages(1024), jetstream.PullHeartbeat(500*time.Millisecond),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return fmt.Errorf("start consuming: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for first := true; l.failed.Load() == nil; first = false {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		if err := l.applyMessage(meta.Sequence.Stream, msg.Data()); err != nil {
			if ge := (*gapError)(nil); errors.As(err, &ge) {
				ge.first = first
				return err // applyLoop tells compaction from a lost delivery
			}
			l.fail(err.Error())
			return err
		}
	}
	return l.failed.Load() // a fail-stopped replica applies nothing more
}

// applyMessage applies the batch stored at stream sequence seq. It returns
// an error, which fail-stops the replica, when seq is not the next sequence.
func (l *Log) applyMessage(seq uint64, data []byte) error {
	var batch wireBatch
	decodeErr := json.Unmarshal(data, &batch)

	var deliveries []delivery
	l.mu.Lock()
	switch {
	case seq <= l.seq:
		l.mu.Unlock()
		return fmt.Errorf("stream sequence went backwards: got %d after applying %d", seq, l.seq)
	case seq != l.seq+1:
		l.mu.Unlock()
		return &gapError{got: seq, applied: l.seq}
	}
	if decodeErr != nil {
		// Every replica sees the same bytes and skips them alike, so this
		// cannot make replicas diverge; it only means someone published
		// garbage on the log subject.
		l.logger.Warn("qlog skipped an undecodable stream message", "seq", seq, "err", decodeErr)
	}
	for _, we := range batch.Entries {
		l.rev++
		if t := time.Unix(0, we.Time); t.After(l.logTime) {
			l.logTime = t
		}
		l.dedupe.expire(l.logTime.Add(-l.cfg.DedupeWindow).UnixNano())
		var out outcome
		if rec, dup := l.dedupe.get(we.Key); dup {
			out = outcome{res: Result{Revision: rec.Rev, Value: rec.Result, Duplicate: true}, rev: l.rev}
			l.chain = l.chain.next(l.rev, we.Cmd, nil)
		} else {
			result, events := l.sm.Apply(Entry{Revision: l.rev, Time: l.logTime, Proposer: we.Proposer, Cmd: we.Cmd})
			if we.Key != "" {
				l.dedupe.put(we.Key, dedupeRecord{Rev: l.rev, Time: l.logTime.UnixNano(), Result: result})
			}
			for _, ev := range events {
				ev.Revision = l.rev
				l.ring.push(ev)
			}
			out = outcome{res: Result{Revision: l.rev, Value: result}, rev: l.rev}
			l.chain = l.chain.next(l.rev, we.Cmd, result)
		}
		if we.Proposer == l.cfg.ReplicaID {
			if p := l.takePending(we.ID); p != nil {
				deliveries = append(deliveries, delivery{p, out})
			}
		}
	}
	l.seq = seq
	l.appliedBytes += uint64(len(data))
	rev, chain := l.rev, l.chain
	l.wakeLocked()
	snapshotDue := l.rev-l.lastSnap >= l.cfg.SnapshotEvery && l.appliedBytes-l.snapBytesAt >= l.lastSnapSize
	l.mu.Unlock()

	for _, d := range deliveries {
		d.p.done <- d.out
	}
	l.progress.applied(rev, seq, chain)
	if !l.ready.Load() {
		l.markReadyIfCaughtUp()
	}
	if snapshotDue {
		l.kickSnapshot()
	}
	return nil
}

// dedupeTable remembers idempotency keys in the order they were applied and
// forgets them when the log's clock passes their time plus the window. It
// is part of the replicated state (and of snapshots), so every replica
// agrees on what is a duplicate.
type dedupeTable struct {
	byKey map[string]dedupeRecord
	order []string // keys in apply order; expiry pops from the front
}

type dedupeRecord struct {
	Key    string `json:"k"`
	Rev    int64  `json:"r"`
	Time   int64  `json:"t"`
	Result []byte `json:"v,omitempty"`
}

func newDedupeTable() dedupeTable { return dedupeTable{byKey: map[string]dedupeRecord{}} }

func (d *dedupeTable) get(key string) (dedupeRecord, bool) {
	if key == "" {
		return dedupeRecord{}, false
	}
	r, ok := d.byKey[key]
	return r, ok
}

func (d *dedupeTable) put(key string, r dedupeRecord) {
	r.Key = key
	d.byKey[key] = r
	d.order = append(d.order, key)
}

// expire drops keys recorded before cutoff (Unix nanoseconds). Entry times
// from different proposers are not sorted, so a key can outlive its window
// until those before it expire; the result is the same on every replica.
func (d *dedupeTable) expire(cutoff int64) {
	n := 0
	for n < len(d.order) && d.byKey[d.order[n]].Time < cutoff {
		delete(d.byKey, d.order[n])
		n++
	}
	if n > 0 {
		d.order = d.order[n:]
	}
}

func (d *dedupeTable) records() []dedupeRecord {
	out := make([]dedupeRecord, len(d.order))
	for i, k := range d.order {
		out[i] = d.byKey[k]
	}
	return out
}

// gapError is a stream message that is not the next one. first says it
// was the first message of a consumer that asked for the next one.
type gapError struct {
	got, applied uint64
	first        bool
}

func (e *gapError) Error() string {
	return fmt.Sprintf("gap in the stream: got sequence %d after applying %d", e.got, e.applied)
}
