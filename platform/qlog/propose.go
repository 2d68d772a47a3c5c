package qlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnknownOutcome is returned when a proposal's fate is unknown: it was
// sent but the caller gave up (context ended) or the stream did not answer.
// The entry may still be applied. Retrying with the same idempotency key is
// safe.
var ErrUnknownOutcome = errors.New("qlog: outcome unknown; retry with the same idempotency key")

type proposal struct {
	id    string
	entry wireEntry
	size  int
	done  chan outcome // buffered; exactly one send, by whoever takes it from pending
}

type outcome struct {
	res Result
	rev int64 // the revision this entry took (differs from res.Revision for duplicates)
	err error
}

// Propose appends cmd (a JSON document) to the log and returns its result
// once a majority of voters applied it and this replica has its result.
func (l *Log) Propose(ctx context.Context, cmd []byte, opts ProposeOptions) (Result, error) {
	if err := l.err(); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.ProposeTimeout)
	defer cancel()
	if !json.Valid(cmd) {
		return Result{}, errors.New("qlog: a command must be a JSON document")
	}
	p := &proposal{
		id:   l.nonce + "." + strconv.FormatUint(l.nextID.Add(1), 36),
		done: make(chan outcome, 1),
		size: len(cmd) + len(opts.IdempotencyKey) + 64,
	}
	p.entry = wireEntry{ID: p.id, Proposer: l.cfg.ReplicaID, Time: l.cfg.Clock().UnixNano(), Key: opts.IdempotencyKey, Cmd: cmd}
	if p.size > l.cfg.MaxBatchBytes {
		return Result{}, fmt.Errorf("qlog: command of %d bytes is over the batch limit of %d", len(cmd), l.cfg.MaxBatchBytes)
	}

	l.pendMu.Lock()
	l.pending[p.id] = p
	l.pendMu.Unlock()
	select {
	case l.proposals <- p:
	case <-ctx.Done():
		l.takePending(p.id)
		return Result{}, ctx.Err()
	case <-l.ctx.Done():
		l.takePending(p.id)
		return Result{}, ErrClosed
	}

	var out outcome
	select {
	case out = <-p.done:
	case <-ctx.Done():
		if l.takePending(p.id) != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
		}
		out = <-p.done // it was being delivered as we gave up
	}
	if out.err != nil {
		return Result{}, out.err
	}
	if err := l.progress.waitQuorum(ctx, out.rev); err != nil {
		return Result{}, err
	}
	return out.res, nil
}

// takePending removes and returns the proposal with id, or nil if someone
// else (the apply loop, a failed publish, a cancelled caller) took it.
func (l *Log) takePending(id string) *proposal {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	p := l.pending[id]
	delete(l.pending, id)
	return p
}

func (l *Log) failPending(err error) {
	l.pendMu.Lock()
	ps := l.pending
	l.pending = make(map[string]*proposal)
	l.pendMu.Unlock()
	for _, p := range ps {
		p.done <- outcome{err: err}
	}
}

// batchLoop is the group commit. It takes the first waiting proposal, adds
// whatever else is queued (up to the batch bounds, lingering briefly if
// configured), and publishes the batch as one stream message. With
// MaxInFlight batches already being stored it waits for a slot, and the
// proposals that arrive meanwhile join the batch: under load batches grow
// by themselves, as etcd's Raft proposals do, and one fsync covers many
// entries.
func (l *Log) batchLoop(ctx context.Context) {
	slots := make(chan struct{}, l.cfg.MaxInFlight)
	var (
		seqNo uint64
		carry *proposal // did not fit the previous batch; opens the next
	)
	for {
		first := carry
		if first == nil {
			select {
			case first = <-l.proposals:
			case <-ctx.Done():
				return
			}
		}
		batch, size := []*proposal{first}, first.size
		batch, size, carry = l.fill(batch, size, l.cfg.Linger)
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		if carry == nil {
			batch, _, carry = l.fill(batch, size, 0)
		}
		seqNo++
		msgID := l.cfg.ReplicaID + "." + l.nonce + "." + strconv.FormatUint(seqNo, 36)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() { <-slots }()
			l.publish(ctx, msgID, batch)
		}()
	}
}

// fill adds queued proposals to batch until a bound is reached, waiting up
// to linger for more to arrive. A proposal that would overflow the byte
// bound is returned as leftover, to open the next batch.
func (l *Log) fill(batch []*proposal, size int, linger time.Duration) ([]*proposal, int, *proposal) {
	var deadline <-chan time.Time
	if linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < l.cfg.MaxBatch {
		var p *proposal
		select {
		case p = <-l.proposals:
		default:
			if deadline == nil {
				return batch, size, nil
			}
			select {
			case p = <-l.proposals:
			case <-deadline:
				return batch, size, nil
			}
		}
		if size+p.size > l.cfg.MaxBatchBytes {
			return batch, size, p
		}
		batch = append(batch, p)
		size += p.size
	}
	return batch, size, nil
}

// publish stores one batch, retrying with the same Nats-Msg-Id so that a
// retry after a lost acknowledgement is dropped by JetStream's duplicate
// window instead of stored twice. It gives up when every proposal in the
// batch has been abandoned or after a minute.
func (l *Log) publish(ctx context.Context, msgID string, batch []*proposal) {
	wb := wireBatch{Entries: make([]wireEntry, len(batch))}
	for i, p := range batch {
		wb.Entries[i] = p.entry
	}
	// Commands are JSON and travel unescaped: json.Marshal would turn each
	// '<', '>' and '&' into six bytes and push a dense value over the
	// batch limit it was checked against.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(wb)
	data := buf.Bytes()
	if err != nil {
		l.failBatch(batch, fmt.Errorf("qlog: encode batch: %w", err))
		return
	}
	deadline := time.Now().Add(time.Minute)
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = l.js.Publish(pctx, logSubject(l.cfg.Service), data, jetstream.WithMsgID(msgID))
		cancel()
		if err == nil {
			return // the apply loop delivers each result
		}
		if ctx.Err() != nil || time.Now().After(deadline) || !l.anyPending(batch) {
			break
		}
		l.logger.Warn("qlog publish failed; retrying", "attempt", attempt, "msg_id", msgID, "entries", len(batch), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
	l.failBatch(batch, fmt.Errorf("%w: publish: %v", ErrUnknownOutcome, err))
}

func (l *Log) anyPending(batch []*proposal) bool {
	l.pendMu.Lock()
	defer l.pendMu.Unlock()
	for _, p := range batch {
		if _, ok := l.pending[p.id]; ok {
			return true
		}
	}
	return false
}

func (l *Log) failBatch(batch []*proposal, err error) {
	for _, p := range batch {
		if l.takePending(p.id) != nil {
			p.done <- outcome{err: err}
		}
	}
}
