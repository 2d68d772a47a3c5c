package qlog

import (
	"context"
	"encoding/json"
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
	last, err := r.leaderLastSeq(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			r.l.fail(fmt.Sprintf("stream %s disappeared", StreamName(r.l.cfg.Service)))
			return 0, r.l.err()
		}
		return 0, fmt.Errorf("qlog: read index: %w", err)
	}
	if last >= applied {
		return last, nil
	}
	// In a cluster the leader stores a message when it applies it, like
	// every member, and this replica's consumer may live on a member that
	// applied it first: a leader briefly behind is not a stream that went
	// backwards. One that stays behind is.
	for range 10 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if last, err = r.leaderLastSeq(ctx); err == nil && last >= applied {
			return last, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("qlog: read index: %w", err)
	}
	r.l.fail(fmt.Sprintf("stream sequence went backwards: the stream ends at %d but this replica applied %d", last, applied))
	return 0, r.l.err()
}

// leaderLastSeq returns the sequence of the stream's last message as the
// stream leader has it. It uses the (non-direct) message get API because
// only the leader answers that one, and it errs while there is no leader.
// STREAM.INFO is no read index in a cluster: a member answers it with its
// own, possibly older, state while the group is leaderless or new; and
// DIRECT.GET, which the client library prefers when AllowDirect is set, is
// answered by any member.
func (r *readIndex) leaderLastSeq(ctx context.Context) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := json.Marshal(map[string]string{"last_by_subj": logSubject(r.l.cfg.Service)})
	msg, err := r.l.cfg.Conn.RequestWithContext(ictx, "$JS.API.STREAM.MSG.GET."+StreamName(r.l.cfg.Service), req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("message get response: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == 10059: // JSStreamNotFoundErr
		return 0, jetstream.ErrStreamNotFound
	case resp.Error != nil && resp.Error.ErrCode == 10037: // JSNoMessageFoundErr: nothing on the subject yet
		info, err := r.l.stream.Info(ictx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	case resp.Error != nil:
		return 0, fmt.Errorf("message get: %s (%d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return 0, errors.New("message get: empty answer")
	}
	return resp.Message.Seq, nil
}
