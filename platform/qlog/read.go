package qlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Read calls fn with the state machine at a revision that satisfies c and
// returns fn's error. fn runs under the replica's read lock: it may read
// the state machine concurrently with other readers but must not keep
// references to mutable state after it returns, and must not call back
// into the Log.
func (l *Log) Read(ctx context.Context, c Consistency, fn func(revision int64) error) error {
	if err := l.err(); err != nil {
		return err
	}
	if c == Linearizable {
		seq, err := l.reads.index(ctx)
		if err != nil {
			return err
		}
		if err := l.waitApplied(ctx, seq); err != nil {
			return err
		}
	} else if err := l.Ready(); err != nil {
		return err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return fn(l.rev)
}

// waitApplied waits until the replica applied stream sequence seq.
func (l *Log) waitApplied(ctx context.Context, seq uint64) error {
	for {
		l.mu.RLock()
		done, ch := l.seq >= seq, l.applied
		l.mu.RUnlock()
		if done {
			return nil
		}
		if err := l.err(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readIndex learns the stream's last sequence for linearizable reads, one
// request for all the readers that arrived while the previous request was
// out (etcd's ReadIndex batching). A reader only joins a request that
// starts after it arrived, so the index covers every write acknowledged
// before the read began.
type readIndex struct {
	l    *Log
	reqs chan chan indexResult
}

type indexResult struct {
	seq uint64
	err error
}

func newReadIndex(l *Log) *readIndex {
	return &readIndex{l: l, reqs: make(chan chan indexResult, 4096)}
}

func (r *readIndex) index(ctx context.Context) (uint64, error) {
	ch := make(chan indexResult, 1)
	select {
	case r.reqs <- ch:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-r.l.ctx.Done():
		return 0, ErrClosed
	}
	select {
	case res := <-ch:
		return res.seq, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// loop serves index requests in rounds and, when idle, checks the stream
// every two seconds so that a stream that vanished or went backwards
// fail-stops the replica even when nobody reads.
func (r *readIndex) loop(ctx context.Context) {
	watchdog := time.NewTicker(2 * time.Second)
	defer watchdog.Stop()
	for {
		var waiting []chan indexResult
		select {
		case <-ctx.Done():
			return
		case ch := <-r.reqs:
			waiting = append(waiting, ch)
		case <-watchdog.C:
		}
	drain:
		for {
			select {
			case ch := <-r.reqs:
				waiting = append(waiting, ch)
			default:
				break drain
			}
		}
		seq, err := r.lastSeq(ctx)
		for _, ch := range waiting {
			ch <- indexResult{seq, err}
		}
	}
}

func (r *readIndex) lastSeq(ctx context.Context) (uint64, error) {
	// What was applied before asking must be in the stream's answer; what
	// is applied while the request is out may legitimately be newer.
	r.l.mu.RLock()
	applied := r.l.seq
	r.l.mu.RUnlock()
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := r.l.stream.Info(ictx)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.l.fail(fmt.Sprintf("stream %s disappeared", StreamName(r.l.cfg.Service)))
			return 0, r.l.err()
		}
		return 0, fmt.Errorf("qlog: read index: %w", err)
	}
	last := info.State.LastSeq
	if last < applied {
		r.l.fail(fmt.Sprintf("stream sequence went backwards: the stream ends at %d but this replica applied %d", last, applied))
		return 0, r.l.err()
	}
	return last, nil
}
