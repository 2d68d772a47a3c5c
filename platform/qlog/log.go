package qlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config describes one replica of one service's log.
type Config struct {
	// Service names the log: stream STEWARD_<SERVICE>, subjects steward.<service>.>.
	Service string
	// ReplicaID is this replica's unique name, e.g. "config-0".
	ReplicaID string
	// Voters is the fixed set of voting replica IDs. A replica not in it is
	// an observer: it applies and serves reads and watches but never counts
	// toward the commit quorum. Empty means {ReplicaID}: a single voter.
	Voters []string
	// Conn is the NATS connection; the caller owns it.
	Conn *nats.Conn
	// StreamReplicas is the stream's replica count: 1 in dev, 3 clustered.
	StreamReplicas int
	// BatchEncoding is how this replica writes its batches: BatchJSON (the
	// default) or BatchBinary, once every replica of the service reads it.
	BatchEncoding BatchEncoding
	// Snapshots stores snapshots; nil disables them (replay from the start).
	Snapshots SnapshotStore
	// SnapshotEvery and SnapshotInterval trigger a snapshot after that many
	// entries or that much time with new entries, whichever comes first.
	SnapshotEvery    int64
	SnapshotInterval time.Duration
	// RetainEntries is how many stream messages are kept below the newest
	// snapshot when the stream is trimmed, so lagging replicas and history
	// readers can still reach them. Zero never trims.
	RetainEntries uint64
	// WatchBuffer is how many events are kept in memory for watchers to
	// resume from and to absorb slow readers.
	WatchBuffer int
	// DedupeWindow is how long idempotency keys are remembered, measured in
	// log time (entry timestamps). JetStream's own duplicate window, which
	// covers whole batch messages, is set to the same value.
	DedupeWindow time.Duration
	// Group commit bounds: a batch closes at MaxBatch entries or
	// MaxBatchBytes of commands, after lingering at most Linger for more;
	// at most MaxInFlight batches are published at once. One in flight
	// (the default) makes the largest batches: with fsync on every write
	// the stream's messages per second are fixed by the disk, so entries
	// per message is the throughput (measured in bench/: 1.5-2x the
	// throughput of two in flight, at equal single-client latency).
	MaxBatch      int
	MaxBatchBytes int
	Linger        time.Duration
	MaxInFlight   int
	// ProposeTimeout bounds a proposal whose caller set no earlier
	// deadline, so that a lost quorum answers ErrUnknownOutcome instead of
	// blocking forever. One timer serves all the proposals of an eighth
	// of it, so a proposal ends between ProposeTimeout and 9/8 of it.
	ProposeTimeout time.Duration
	// ExpiryGrace is how long RunExpiry proposes nothing after this
	// replica saw the log unable to take writes (a proposal that failed,
	// after half a second if its caller gave up, or that took over two
	// seconds; an entry applied over two seconds after its proposer
	// stamped it, whoever proposed it; a replaced consumer; a failed read
	// index), or after another replica reported such a stall once it saw
	// it end (progressReport.Stalled). Clients whose renewals could not be
	// written during the outage, to whichever replica they sent them,
	// then renew before their deadlines, which passed meanwhile, are
	// acted on. Zero means 5 s.
	ExpiryGrace time.Duration
	// Clock stamps proposals; nil means time.Now.
	Clock  func() time.Time
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Service == "" || strings.ContainsAny(c.Service, ". *>") {
		return fmt.Errorf("qlog: service name %q must be a non-empty NATS token", c.Service)
	}
	if c.ReplicaID == "" || strings.ContainsAny(c.ReplicaID, ". *>") {
		return fmt.Errorf("qlog: replica id %q must be a non-empty NATS token", c.ReplicaID)
	}
	if c.Conn == nil {
		return errors.New("qlog: a NATS connection is required")
	}
	if len(c.Voters) == 0 {
		c.Voters = []string{c.ReplicaID}
	}
	c.Voters = slices.Clone(c.Voters)
	slices.Sort(c.Voters)
	if len(slices.Compact(slices.Clone(c.Voters))) != len(c.Voters) {
		return fmt.Errorf("qlog: voters %v has duplicates", c.Voters)
	}
	if c.BatchEncoding == "" {
		c.BatchEncoding = BatchJSON
	}
	if c.StreamReplicas <= 0 {
		c.StreamReplicas = 1
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = 50_000
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = 5 * time.Minute
	}
	if c.WatchBuffer <= 0 {
		c.WatchBuffer = 16_384
	}
	if c.DedupeWindow <= 0 {
		c.DedupeWindow = 5 * time.Minute
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 4 << 20
	}
	if c.Linger < 0 {
		c.Linger = 0
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1
	}
	if c.ProposeTimeout <= 0 {
		c.ProposeTimeout = 30 * time.Second
	}
	if c.ExpiryGrace <= 0 {
		c.ExpiryGrace = 5 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// StreamName returns the JetStream stream of a service.
func StreamName(service string) string { return "STEWARD_" + strings.ToUpper(service) }

func logSubject(service string) string      { return "steward." + service + ".log" }
func progressSubject(service string) string { return "steward." + service + ".applied" }

// Log is one replica of a service's log. It is safe for concurrent use.
type Log struct {
	cfg    Config
	logger *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	quorum int
	voter  bool
	nonce  string // distinguishes this incarnation's proposal IDs

	// mu guards the applied state: the core (with the state machine) and
	// the fields below. Apply holds it for writing, reads for reading.
	mu sync.RWMutex
	// core is the replicated bookkeeping the apply loop feeds; its
	// position (seq, rev) is read throughout the package.
	core
	applied  chan struct{} // closed and replaced after each applied message
	keyed    keyedWatches  // the watches of one key or prefix, woken by the applies that match
	lastSnap int64         // revision of the last snapshot taken
	snapKick chan struct{}
	// viewMu serialises the beginning of snapshots: SnapshotView runs under
	// the read lock but must not run alongside another SnapshotView.
	viewMu sync.Mutex
	// A snapshot is due after SnapshotEvery entries and once the log
	// applied since the last one is at least as large as that snapshot, so
	// the cost of snapshots stays proportional to the log, however large
	// the state grows.
	appliedBytes uint64 // stream bytes applied since start
	snapBytesAt  uint64 // appliedBytes when the last snapshot was encoded
	lastSnapSize uint64
	// prevSnapSize is the size of the snapshot before the last one taken
	// here (0 before two were), for guessing the next one's size.
	prevSnapSize uint64

	failed atomic.Pointer[FailedError]
	ready  atomic.Bool
	// started is set once Open's background work is done and the
	// replica's goroutines run; until then waitingFor says what it waits
	// for.
	started    atomic.Bool
	waitingFor atomic.Pointer[string]
	// catchUp is the stream's last sequence when the replica started; it is
	// ready once it applied that far.
	catchUp uint64

	proposals       chan *proposal
	proposeDeadline *sharedDeadline // ProposeTimeout's
	pendMu          sync.Mutex
	pending         map[string]*proposal
	nextID          atomic.Uint64

	progress *progressTracker
	reads    *readIndex
	metrics  *logMetrics
	// streamLast is the stream's last sequence as the stream leader last
	// told (for the apply-lag metric).
	streamLast atomic.Uint64
	// lastStall is when (Unix nanoseconds, local clock) the replica last
	// saw the log unable to take writes; see Config.ExpiryGrace.
	lastStall atomic.Int64
	// lastFresh is when the replica last applied an entry stamped less
	// than lateEntry before: the log took a write and it reached this
	// replica promptly. A stall noted before it is over, as this replica
	// sees it.
	lastFresh atomic.Int64
	// peerStall is the latest stall another replica reported once it was
	// over (progressReport.Stalled), on that replica's clock.
	peerStall atomic.Int64

	ctx    context.Context // cancelled by Close; owned by the Log's goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens the replica and returns at once: creating or updating the
// stream, restoring the newest valid snapshot and learning how far the
// stream goes happen in the background, each retried with backoff while
// NATS, JetStream or the snapshot store cannot answer yet (a fresh
// cluster still electing leaders, a restarting database), until they
// succeed or Close is called. Ready says what the replica is waiting for,
// and reports nil once it has caught up; WaitReady waits for that. Open
// returns an error only for a configuration that can never work.
func Open(ctx context.Context, cfg Config, sm StateMachine) (*Log, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("qlog: jetstream: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	lctx, cancel := context.WithCancel(context.Background())
	l := &Log{
		cfg:             cfg,
		logger:          cfg.Logger.With("service", cfg.Service, "replica", cfg.ReplicaID),
		js:              js,
		core:            newCore(sm, cfg.WatchBuffer, cfg.DedupeWindow),
		quorum:          len(cfg.Voters)/2 + 1,
		voter:           slices.Contains(cfg.Voters, cfg.ReplicaID),
		nonce:           hex.EncodeToString(b[:]),
		applied:         make(chan struct{}),
		proposals:       make(chan *proposal, 4096),
		proposeDeadline: &sharedDeadline{after: cfg.ProposeTimeout},
		snapKick:        make(chan struct{}, 1),
		pending:         make(map[string]*proposal),
		ctx:             lctx,
		cancel:          cancel,
	}
	l.progress = newProgressTracker(l)
	l.reads = newReadIndex(l)
	l.metrics = newLogMetrics(l)
	l.waitingFor.Store(new("the stream"))
	l.goRun("start", l.start)
	return l, nil
}

// start does what Open promised in the background, then starts the
// replica's goroutines.
func (l *Log) start(ctx context.Context) {
	// Short attempts for NATS requests: three replicas creating one R3
	// stream at once on a fresh cluster saw their first 10-second attempt
	// time out while the stream was being created; the next finds it.
	const natsAttempt = 3 * time.Second
	err := l.retry(ctx, "the stream "+StreamName(l.cfg.Service), natsAttempt, func(ctx context.Context) error {
		stream, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName(l.cfg.Service),
			Description: "Steward " + l.cfg.Service + " log (platform/qlog)",
			Subjects:    []string{logSubject(l.cfg.Service)},
			Storage:     jetstream.FileStorage,
			Replicas:    l.cfg.StreamReplicas,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  max(l.cfg.DedupeWindow, 2*time.Minute),
			MaxMsgSize:  int32(l.cfg.MaxBatchBytes + 1<<20),
			AllowDirect: true,
		})
		l.stream = stream
		return err
	})
	if err == nil {
		// A snapshot can be large, so an attempt may need minutes; but the
		// snapshot bucket's creation on a fresh cluster can be lost like
		// the stream's (seen: a first attempt that waited its whole 5
		// minutes), so the attempts start short and grow.
		err = l.retryGrowing(ctx, "the newest snapshot", natsAttempt, 5*time.Minute, l.restore)
	}
	if err == nil {
		// The stream leader's last sequence, not STREAM.INFO's: a member
		// answers that with its own, possibly older, state while the
		// group has no leader, and a voter's catch-up point bounds what
		// it tells readers (see readIndex).
		err = l.retry(ctx, "the stream leader's last sequence", natsAttempt, func(ctx context.Context) error {
			seq, err := l.reads.leaderLastSeq(ctx)
			l.catchUp = seq
			return err
		})
	}
	if err == nil {
		err = l.retry(ctx, "the stream's first sequence", natsAttempt, func(ctx context.Context) error {
			info, err := l.stream.Info(ctx)
			if err == nil && l.seq+1 < info.State.FirstSeq {
				l.fail(fmt.Sprintf("the stream starts at sequence %d but the newest usable snapshot ends at %d; "+
					"the entries between were trimmed", info.State.FirstSeq, l.seq))
			}
			return err
		})
	}
	if err == nil {
		err = l.retry(ctx, "NATS subscriptions", natsAttempt, func(context.Context) error {
			if err := l.progress.start(); err != nil {
				return err
			}
			if err := l.reads.start(); err != nil {
				l.progress.stop()
				return err
			}
			return nil
		})
	}
	if err != nil || l.failed.Load() != nil {
		return // closed, or fail-stopped
	}
	// Logged before the apply loop starts: after that, l.rev and l.seq
	// belong to it.
	l.logger.Info("qlog replica opened", "revision", l.rev, "seq", l.seq, "catch_up_to", l.catchUp,
		"voters", l.cfg.Voters, "voter", l.voter, "quorum", l.quorum)
	l.goRun("apply", l.applyLoop)
	l.goRun("batcher", l.batchLoop)
	l.goRun("read-index", l.reads.loop)
	l.goRun("progress", l.progress.publishLoop)
	if l.cfg.Snapshots != nil {
		l.goRun("snapshotter", l.snapshotLoop)
	}
	l.waitingFor.Store(nil)
	l.started.Store(true)
	l.markReadyIfCaughtUp()
}

// retry calls fn until it succeeds or ctx ends, with a fresh deadline of
// attempt per attempt and a backoff from 100 ms to 5 s between them. Ready
// names what it waits for and the last error meanwhile.
func (l *Log) retry(ctx context.Context, what string, attempt time.Duration, fn func(ctx context.Context) error) error {
	return l.retryGrowing(ctx, what, attempt, attempt, fn)
}

// retryGrowing is retry with an attempt's deadline doubling after each
// failed attempt, from first up to most.
func (l *Log) retryGrowing(ctx context.Context, what string, first, most time.Duration, fn func(ctx context.Context) error) error {
	backoff, attempt := 100*time.Millisecond, first
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.waitingFor.Store(new(fmt.Sprintf("%s (attempt %d: %v)", what, n, err)))
		l.logger.Warn("qlog start: waiting for "+what, "attempt", n, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		attempt = min(2*attempt, most)
	}
}

func (l *Log) goRun(name string, fn func(ctx context.Context)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn(l.ctx)
		l.logger.Debug("qlog goroutine exited", "goroutine", name)
	}()
}

// Close stops the replica's goroutines. Pending proposals fail with ErrClosed.
func (l *Log) Close() error {
	l.cancel()
	l.wg.Wait()
	l.progress.stop()
	l.reads.stop()
	l.failPending(ErrClosed)
	return nil
}

// Revision returns the last applied revision.
func (l *Log) Revision() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.rev
}

// ReplicaID returns the replica's ID.
func (l *Log) ReplicaID() string { return l.cfg.ReplicaID }

// Ready reports nil once the replica has caught up with the stream as it was
// at start, and it has not fail-stopped; otherwise why not.
func (l *Log) Ready() error {
	if f := l.failed.Load(); f != nil {
		return f
	}
	if l.ctx.Err() != nil {
		return ErrClosed
	}
	if !l.started.Load() {
		what := "starting"
		if w := l.waitingFor.Load(); w != nil {
			what = "waiting for " + *w
		}
		return fmt.Errorf("%w: %s", ErrNotReady, what)
	}
	if !l.ready.Load() {
		l.mu.RLock()
		seq := l.seq
		l.mu.RUnlock()
		return fmt.Errorf("%w: replaying the log: applied sequence %d of %d", ErrNotReady, seq, l.catchUp)
	}
	return nil
}

// WaitReady waits until Ready reports nil, the replica fails, or ctx ends.
func (l *Log) WaitReady(ctx context.Context) error {
	for {
		l.mu.RLock()
		ch := l.applied
		l.mu.RUnlock()
		err := l.Ready()
		if err == nil {
			return nil
		}
		var fe *FailedError
		if errors.As(err, &fe) || errors.Is(err, ErrClosed) {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Log) markReadyIfCaughtUp() {
	l.mu.RLock()
	caught := l.seq >= l.catchUp
	l.mu.RUnlock()
	if caught && !l.ready.Swap(true) {
		l.logger.Info("qlog replica caught up", "revision", l.Revision())
	}
}

// fail stops the replica: it will apply nothing more, answer nothing, and
// says why in its log and through Ready.
func (l *Log) fail(reason string) {
	fe := &FailedError{Reason: reason}
	if l.failed.CompareAndSwap(nil, fe) {
		l.logger.Error("qlog replica fail-stopped", "reason", reason)
		l.failPending(fe)
		l.mu.Lock()
		l.wakeLocked()
		l.keyed.all()
		l.mu.Unlock()
	}
}

// wakeLocked wakes everyone waiting on l.applied (readers, watchers,
// WaitReady) and arms a fresh channel. The caller holds l.mu for writing.
func (l *Log) wakeLocked() {
	close(l.applied)
	l.applied = make(chan struct{})
}

func (l *Log) err() error {
	if f := l.failed.Load(); f != nil {
		return f
	}
	if l.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// serving is err, and ErrNotReady while Open's background work goes on.
func (l *Log) serving() error {
	if err := l.err(); err != nil {
		return err
	}
	if !l.started.Load() {
		return l.Ready()
	}
	return nil
}

// lateEntry is how long a proposal may take, or an entry may wait between
// its stamp and its apply, before the replica counts it as a stall of
// writes (see Config.ExpiryGrace).
const lateEntry = 2 * time.Second

// minStallEvidence is how long a proposal must have waited before its
// caller giving up on it counts as a stall: a caller that cancels sooner
// says something about its own deadline, not about the log.
const minStallEvidence = 500 * time.Millisecond

// noteStall records that the log could not take writes just now.
func (l *Log) noteStall() { l.lastStall.Store(time.Now().UnixNano()) }

// stalledWithin reports whether the replica saw a stall within d, or
// another replica reported one that it saw end.
func (l *Log) stalledWithin(d time.Duration) bool {
	last := max(l.lastStall.Load(), l.peerStall.Load())
	return last != 0 && time.Since(time.Unix(0, last)) < d
}

// stallToReport is the stall this replica tells the others of in its
// progress reports: its last one, once it is over (the replica applied a
// fresh entry since) and while it is within the expiry grace. Zero if
// none. A replica that still cannot write or catch up reports nothing,
// so a replica that stays sick does not hold every replica's expiries;
// it is heard when it recovers, when its clients may only then get
// through.
func (l *Log) stallToReport() int64 {
	last := l.lastStall.Load()
	if last == 0 || l.lastFresh.Load() <= last || time.Since(time.Unix(0, last)) >= l.cfg.ExpiryGrace {
		return 0
	}
	return last
}

// notePeerStall keeps the latest stall another replica reported.
func (l *Log) notePeerStall(at int64) {
	for {
		cur := l.peerStall.Load()
		if at <= cur || l.peerStall.CompareAndSwap(cur, at) {
			return
		}
	}
}
