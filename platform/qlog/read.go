package qlog

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Read calls fn with the state machine at a revision that satisfies c and
// returns fn's error. fn runs under the replica's read lock: it may read
// the state machine concurrently with other readers but must not keep
// references to mutable state after it returns, and must not call back
// into the Log.
func (l *Log) Read(ctx context.Context, c Consistency, fn func(revision int64) error) error {
	if err := l.serving(); err != nil {
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

// readIndex learns, for linearizable reads, a stream sequence at or past
// every write acknowledged before the read began: one round for all the
// readers that arrived while the previous round was out (etcd's ReadIndex
// batching). A reader only joins a round that starts after it arrived.
//
// A round asks two sources at once and takes the larger answer:
//
//   - the stream leader's last sequence (leaderLastSeq). A write is
//     acknowledged only after the stream leader acknowledged its message,
//     which it does after storing it (Propose); a NATS server takes the
//     leadership of a stream only after it applied every entry committed
//     before (its first entry as leader is applied first), so the leader
//     that answers has every acknowledged write.
//   - the applied sequence of a majority of the voters, asked afresh
//     (voterIndex). A write is acknowledged only after a majority of voters
//     applied it, and any two majorities share a voter, so one of the
//     answers is at or past it. A voter answers only once it caught up
//     with the stream as it was when it started, so a voter that restarted
//     does not answer with less than it applied before.
//
// Either source alone covers every acknowledged write in the common case;
// each also covers a fault the other does not. A stream leader cut off
// from the other NATS servers keeps answering as leader until it notices
// (seconds), without the writes acknowledged by its successor; the voters
// a reader can reach while its NATS server is cut off are never a
// majority, so such a read waits and fails instead of answering stale.
type readIndex struct {
	l    *Log
	reqs chan chan indexResult

	// Voter confirmation: requests go out on steward.<service>.readindex
	// with a reply subject under inbox, one suffix per round.
	inbox string
	subs  []*nats.Subscription

	mu     sync.Mutex
	rounds map[uint64]chan voterAnswer // rounds waiting for voters' answers
}

// voterAnswer is a voter's reply to a read-index request.
type voterAnswer struct {
	Replica string `json:"replica"`
	Seq     uint64 `json:"seq"`
}

type indexResult struct {
	seq uint64
	err error
}

func newReadIndex(l *Log) *readIndex {
	return &readIndex{l: l, reqs: make(chan chan indexResult, 4096), inbox: nats.NewInbox(),
		rounds: map[uint64]chan voterAnswer{}}
}

func readIndexSubject(service string) string { return "steward." + service + ".readindex" }

// start subscribes to the replies to this replica's rounds and, on a
// voter, to the other replicas' requests.
func (r *readIndex) start() error {
	sub, err := r.l.cfg.Conn.Subscribe(r.inbox+".*", r.receive)
	if err != nil {
		return fmt.Errorf("qlog: subscribe to read-index replies: %w", err)
	}
	r.subs = append(r.subs, sub)
	if r.l.voter {
		sub, err := r.l.cfg.Conn.Subscribe(readIndexSubject(r.l.cfg.Service), r.answer)
		if err != nil {
			r.stop()
			return fmt.Errorf("qlog: subscribe to read-index requests: %w", err)
		}
		r.subs = append(r.subs, sub)
	}
	return nil
}

func (r *readIndex) stop() {
	for _, s := range r.subs {
		_ = s.Unsubscribe()
	}
}

// answer tells a reader how far this voter applied, once it is ready (a
// replica that is still replaying may be behind what it applied before it
// restarted).
func (r *readIndex) answer(m *nats.Msg) {
	if m.Reply == "" || r.l.Ready() != nil {
		return
	}
	r.l.mu.RLock()
	seq := r.l.seq
	r.l.mu.RUnlock()
	data, _ := json.Marshal(voterAnswer{Replica: r.l.cfg.ReplicaID, Seq: seq})
	_ = m.Respond(data)
}

func (r *readIndex) receive(m *nats.Msg) {
	round, err := strconv.ParseUint(m.Subject[len(r.inbox)+1:], 10, 64)
	var a voterAnswer
	if err != nil || json.Unmarshal(m.Data, &a) != nil {
		return
	}
	r.mu.Lock()
	ch := r.rounds[round]
	r.mu.Unlock()
	select {
	case ch <- a: // nil when the round is over: never ready
	default:
	}
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

// roundsInFlight bounds the read-index rounds out at once. One: readers
// that arrive while a round is out wait for the next, which then serves
// them all. Four in flight (smaller rounds, more requests) measured 0.2-0.3x
// the reads per second of one with 64 readers on a loaded 2-core machine.
const roundsInFlight = 1

// loop serves index requests in rounds and, when idle, checks the stream
// every two seconds so that a stream that vanished or went backwards
// fail-stops the replica even when nobody reads.
func (r *readIndex) loop(ctx context.Context) {
	var (
		round uint64
		slots = make(chan struct{}, roundsInFlight)
		wg    sync.WaitGroup
	)
	defer wg.Wait()
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
			_, _ = r.lastSeq(ctx)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
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
		round++
		this := round
		wg.Go(func() {
			defer func() { <-slots }()
			began := time.Now()
			res := r.round(ctx, this)
			r.l.metrics.readIndex.Observe(time.Since(began).Seconds())
			if res.err != nil {
				r.l.metrics.readErrs.Inc()
				r.l.noteStall()
			}
			for _, ch := range waiting {
				ch <- res
			}
		})
		watchdog.Reset(2 * time.Second)
	}
}

// round asks the stream leader and a majority of voters at once.
func (r *readIndex) round(ctx context.Context, round uint64) indexResult {
	var (
		wg             sync.WaitGroup
		leader, voters uint64
		lerr, verr     error
	)
	wg.Go(func() { leader, lerr = r.lastSeq(ctx) })
	voters, verr = r.voterIndex(ctx, round)
	wg.Wait()
	if err := cmp.Or(lerr, verr); err != nil {
		return indexResult{err: err}
	}
	return indexResult{seq: max(leader, voters)}
}

// voterIndex returns the largest applied sequence among the answers of a
// majority of voters (this replica's own included when it is a ready
// voter), asked after the round began.
func (r *readIndex) voterIndex(ctx context.Context, round uint64) (uint64, error) {
	l := r.l
	got := map[string]uint64{}
	if l.voter && l.Ready() == nil {
		l.mu.RLock()
		got[l.cfg.ReplicaID] = l.seq
		l.mu.RUnlock()
	}
	if len(got) >= l.quorum {
		return got[l.cfg.ReplicaID], nil // a single voter: itself
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	answers := make(chan voterAnswer, 2*len(l.cfg.Voters))
	r.mu.Lock()
	r.rounds[round] = answers
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.rounds, round)
		r.mu.Unlock()
	}()
	reply := r.inbox + "." + strconv.FormatUint(round, 10)
	ask := func() {
		if err := l.cfg.Conn.PublishRequest(readIndexSubject(l.cfg.Service), reply, nil); err != nil {
			l.logger.Debug("qlog read-index request failed", "err", err)
		}
	}
	ask()
	// Core NATS drops messages across a reconnect: ask again now and then.
	again := time.NewTicker(250 * time.Millisecond)
	defer again.Stop()
	for len(got) < l.quorum {
		select {
		case a := <-answers:
			if slices.Contains(l.cfg.Voters, a.Replica) {
				got[a.Replica] = a.Seq
			}
		case <-again.C:
			ask()
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: read index: %d of %d voters answered, %d needed: %w",
				ErrUnavailable, len(got), len(l.cfg.Voters), l.quorum, ctx.Err())
		}
	}
	var idx uint64
	for _, s := range got {
		idx = max(idx, s)
	}
	return idx, nil
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
		return 0, fmt.Errorf("%w: read index: %w", ErrUnavailable, err)
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
		return 0, fmt.Errorf("%w: read index: %w", ErrUnavailable, err)
	}
	r.l.fail(fmt.Sprintf("stream sequence went backwards: the stream ends at %d but this replica applied %d", last, applied))
	return 0, r.l.err()
}

// leaderLastSeq returns the sequence of the stream's last message as the
// stream leader has it, from the stream's info: a small answer of the same
// size whatever the messages hold. (The message get API, which only the
// leader answers too, ships the whole last message, base64 in JSON, to
// tell its sequence: up to a batch of MaxBatchBytes for every round.)
//
// In a cluster only the stream leader answers STREAM.INFO while the group
// has one; while it is leaderless (or new) a member answers with its own,
// possibly older, state, and says so by naming no leader in the answer's
// cluster, which is refused here: such a member may lack a write that was
// acknowledged before the read began. A standalone server names itself.
// DIRECT.GET, which the client library prefers when AllowDirect is set, is
// answered by any member, so it is no read index either.
func (r *readIndex) leaderLastSeq(ctx context.Context) (uint64, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := r.l.cfg.Conn.RequestWithContext(ictx, "$JS.API.STREAM.INFO."+StreamName(r.l.cfg.Service), nil)
	if err != nil {
		return 0, err
	}
	last, err := parseStreamInfoLast(msg.Data)
	if err != nil {
		return 0, err
	}
	r.noteLast(last)
	return last, nil
}

// parseStreamInfoLast reads a STREAM.INFO answer: the stream's last
// sequence if the stream leader gave it.
func parseStreamInfoLast(data []byte) (uint64, error) {
	var resp struct {
		State *struct {
			LastSeq uint64 `json:"last_seq"`
		} `json:"state"`
		Cluster *struct {
			Leader string `json:"leader"`
		} `json:"cluster"`
		Error *struct {
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return 0, fmt.Errorf("stream info response: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == 10059: // JSStreamNotFoundErr
		return 0, jetstream.ErrStreamNotFound
	case resp.Error != nil:
		return 0, fmt.Errorf("stream info: %s (%d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.State == nil:
		return 0, errors.New("stream info: no state in the answer")
	case resp.Cluster == nil || resp.Cluster.Leader == "":
		return 0, errors.New("stream info: answered by a member of a group without a leader")
	}
	return resp.State.LastSeq, nil
}

// noteLast records the stream's last sequence for the apply-lag metric.
func (r *readIndex) noteLast(seq uint64) {
	for {
		old := r.l.streamLast.Load()
		if seq <= old || r.l.streamLast.CompareAndSwap(old, seq) {
			return
		}
	}
}
