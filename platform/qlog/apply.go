package qlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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
		msg := "qlog consumer interrupted; replacing it"
		if ge := (*gapError)(nil); errors.As(err, &ge) && ge.first {
			// A consumer that starts at the next sequence delivered a later
			// one first: the stream no longer holds it. That is the stream
			// trimmed past this replica while it lagged (compaction, not
			// loss): jump to a snapshot that covers the trimmed entries, as
			// a restarting replica would. Anything else is a real gap and
			// fail-stops; not knowing yet is tried again.
			rerr := l.restoreAfterTrim(ctx)
			if rerr == nil {
				backoff = 50 * time.Millisecond
				continue
			}
			if !errors.Is(rerr, errCatchUpLater) || ctx.Err() != nil {
				if ctx.Err() == nil {
					l.fail(fmt.Sprintf("%v (%v)", ge, rerr))
				}
				return
			}
			err, msg = rerr, "qlog found a gap it cannot tell from compaction yet; trying again"
		}
		// A gap in the middle of a consumer's deliveries is a delivery lost
		// on the way (a reconnect): a new consumer from the next sequence
		// fetches it again.
		l.metrics.consumers.Inc()
		l.noteStall()
		l.logger.Warn(msg, "err", err, "from_seq", start, "backoff", backoff)
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
	var deliveries []delivery
	l.mu.Lock()
	firstPos := l.ring.nextPos()
	out, err := l.core.apply(seq, data)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	l.keyed.matched(out.Events, firstPos)
	if out.Skipped != nil {
		l.logger.Warn("qlog skipped an undecodable stream message", "seq", seq, "err", out.Skipped)
	}
	for _, e := range out.Entries {
		if e.Proposer == l.cfg.ReplicaID {
			if p := l.takePending(e.ID); p != nil {
				deliveries = append(deliveries, delivery{p, e.Out})
			}
		}
	}
	if out.Oldest != 0 {
		// An entry applied long after it was stamped was held up on its
		// way (a stall that may not have touched this replica's own
		// proposals or reads): its TTLs count from its stamp, so give its
		// client the expiry grace to renew. Noted under the lock, before
		// any read can see the entry.
		age := l.cfg.Clock().Sub(time.Unix(0, out.Oldest))
		l.metrics.entryAge.Observe(max(age.Seconds(), 0))
		if age > lateEntry {
			l.noteStall()
		} else {
			l.lastFresh.Store(time.Now().UnixNano())
		}
	}
	l.appliedBytes += uint64(len(data))
	l.wakeLocked()
	snapshotDue := l.snapshotDueLocked()
	l.mu.Unlock()

	for _, d := range deliveries {
		d.p.done <- d.out
	}
	l.progress.applied(out.Rev, out.Seq, out.Chain)
	if !l.ready.Load() {
		l.markReadyIfCaughtUp()
	}
	if snapshotDue {
		l.kickSnapshot()
	}
	return nil
}
