package qlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/jsonscan"
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
	// stored is closed once the publish of the proposal's batch ended:
	// storeErr is nil when JetStream acknowledged the message (see
	// Propose for why that matters), else why it was not.
	stored   chan struct{}
	storeErr error
	// state settles a race between the publisher and a caller that gives
	// up: whoever moves it from queued first decides whether the proposal
	// is ever sent.
	state atomic.Int32
}

const (
	proposalQueued    = iota
	proposalClaimed   // the publisher took it into a batch it sends
	proposalAbandoned // its caller gave up before that: never sent
)

// claim takes the proposal into a batch about to be sent; false if its
// caller already gave up on it.
func (p *proposal) claim() bool { return p.state.CompareAndSwap(proposalQueued, proposalClaimed) }

// abandon gives up on a proposal that was never sent; false if the
// publisher already took it.
func (p *proposal) abandon() bool { return p.state.CompareAndSwap(proposalQueued, proposalAbandoned) }

type outcome struct {
	res Result
	rev int64 // the revision this entry took (differs from res.Revision for duplicates)
	err error
}

// Propose appends cmd (a JSON document) to the log and returns its result
// once JetStream acknowledged the message that carries it, a majority of
// voters applied it and this replica has its result.
//
// Waiting for JetStream's acknowledgement, not only for the voters, is what
// makes linearizable reads see every acknowledged write (see Log.Read): in
// a cluster the voters' consumers may deliver a message from a follower
// that stored it before the stream leader did, and the acknowledgement is
// sent by the stream leader only after it stored the message.
func (l *Log) Propose(ctx context.Context, cmd []byte, opts ProposeOptions) (res Result, err error) {
	if err := l.serving(); err != nil {
		return Result{}, err
	}
	began := time.Now()
	defer func() {
		if stallEvidence(err, time.Since(began)) {
			l.noteStall()
		}
	}()
	expired := l.proposeDeadline.channel() // ProposeTimeout, for a ctx that never ends
	if !jsonscan.Valid(cmd) {
		return Result{}, errors.New("qlog: a command must be a JSON document")
	}
	p := &proposal{
		id:     l.nonce + "." + strconv.FormatUint(l.nextID.Add(1), 36),
		done:   make(chan outcome, 1),
		stored: make(chan struct{}),
		size:   len(cmd) + len(opts.IdempotencyKey) + 64,
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
		return Result{}, fmt.Errorf("%w: the log's queue stayed full until the request ended: %w", ErrUnavailable, ctx.Err())
	case <-expired:
		l.takePending(p.id)
		return Result{}, fmt.Errorf("%w: the log's queue stayed full for %s: %w", ErrUnavailable, l.cfg.ProposeTimeout, context.DeadlineExceeded)
	case <-l.ctx.Done():
		l.takePending(p.id)
		return Result{}, ErrClosed
	}

	var out outcome
	delivered := false
	select {
	case out = <-p.done:
		delivered = true
	case <-ctx.Done():
	case <-expired:
	}
	if !delivered {
		if l.takePending(p.id) != nil {
			if p.abandon() {
				return Result{}, fmt.Errorf("%w: the proposal was still queued when the request ended, and never sent: %w", ErrUnavailable, gaveUp(ctx))
			}
			return Result{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, gaveUp(ctx))
		}
		out = <-p.done // it was being delivered as we gave up
	}
	if out.err != nil {
		return Result{}, out.err
	}
	select {
	case <-p.stored:
		if p.storeErr != nil {
			// Applied here, so it is in the stream, but the stream leader
			// never said so: the outcome is only known once a read says it.
			return Result{}, fmt.Errorf("%w: applied, but JetStream's acknowledgement never came: %v", ErrUnknownOutcome, p.storeErr)
		}
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: waiting for JetStream's acknowledgement: %v", ErrUnknownOutcome, ctx.Err())
	case <-expired:
		return Result{}, fmt.Errorf("%w: waiting for JetStream's acknowledgement: %v", ErrUnknownOutcome, context.DeadlineExceeded)
	}
	waitStart := time.Now()
	if err := l.progress.waitQuorum(ctx, expired, out.rev); err != nil {
		return Result{}, err
	}
	l.metrics.quorumWait.Observe(time.Since(waitStart).Seconds())
	return out.res, nil
}

// stallEvidence reports whether a proposal that ended with err after took
// shows the log unable to take writes: it took over lateEntry, or failed
// for want of JetStream or the voters. A proposal given up by its caller
// (or by ProposeTimeout) counts only after minStallEvidence.
func stallEvidence(err error, took time.Duration) bool {
	switch {
	case took > lateEntry:
		return true
	case !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrUnknownOutcome):
		return false
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return took >= minStallEvidence
	default:
		return true
	}
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
//
// A proposal whose caller gave up before its batch was encoded is left
// out (see proposal.claim), and a batch that JetStream refused outright on
// every attempt (an API error, no responders, no connection to send on)
// fails with ErrUnavailable: it was never stored, so retrying is safe
// without an idempotency key. Any attempt whose fate is unknown (a timeout)
// makes the batch's failure ErrUnknownOutcome.
func (l *Log) publish(ctx context.Context, msgID string, batch []*proposal) {
	batch = slices.DeleteFunc(batch, func(p *proposal) bool { return !p.claim() })
	if len(batch) == 0 {
		return
	}
	entries := make([]wireEntry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	data := l.cfg.BatchEncoding.encodeBatch(entries)
	l.metrics.batchEntries.Observe(float64(len(batch)))
	l.metrics.batchBytes.Observe(float64(len(data)))
	began := time.Now()
	deadline := began.Add(time.Minute)
	backoff := 20 * time.Millisecond
	maybeStored := false
	var err error
	for attempt := 1; ; attempt++ {
		if l.cfg.Conn.Status() != nats.CONNECTED {
			// Sent now, the message would wait in the client's reconnect
			// buffer and its fate would be unknown; not sent, it is not.
			err = fmt.Errorf("not connected to NATS (%v)", l.cfg.Conn.Status())
		} else {
			// Short attempts: a stream whose leader was lost answers nothing
			// until NATS elects another, and the first attempt after that
			// should not wait out an attempt sent before it.
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = l.js.Publish(pctx, logSubject(l.cfg.Service), data, jetstream.WithMsgID(msgID))
			cancel()
			if err == nil {
				l.metrics.publish.Observe(time.Since(began).Seconds())
				l.markStored(batch, nil)
				return // the apply loop delivers each result
			}
			maybeStored = maybeStored || !refused(err)
		}
		if ctx.Err() != nil || time.Now().After(deadline) || !l.anyPending(batch) {
			break
		}
		l.logger.Warn("qlog publish failed; retrying", "attempt", attempt, "msg_id", msgID, "entries", len(batch), "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
	l.markStored(batch, err)
	l.metrics.publishErrs.WithLabelValues(map[bool]string{true: "unknown", false: "refused"}[maybeStored]).Inc()
	if maybeStored {
		l.failBatch(batch, fmt.Errorf("%w: publish: %v", ErrUnknownOutcome, err))
	} else {
		l.failBatch(batch, fmt.Errorf("%w: publish: %v", ErrUnavailable, err))
	}
}

// refused reports whether a publish error means the message was not
// stored: JetStream answered with an error, or nobody could answer.
func refused(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// markStored ends the wait of every proposal in batch for JetStream's
// acknowledgement: err is nil if it came.
func (l *Log) markStored(batch []*proposal, err error) {
	for _, p := range batch {
		p.storeErr = err
		close(p.stored)
	}
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

// gaveUp is why a proposal stopped waiting: its caller's context ended,
// or else ProposeTimeout passed.
func gaveUp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}
