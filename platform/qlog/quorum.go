package qlog

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// progressReport is what each replica publishes on steward.<service>.applied:
// how far it applied and its running hash there.
type progressReport struct {
	Replica  string `json:"replica"`
	Revision int64  `json:"revision"`
	Seq      uint64 `json:"seq"`
	Chain    string `json:"chain"` // hex
	// Stalled is the last time (Unix nanoseconds, the reporter's clock)
	// the reporter saw the log unable to take writes, sent once that
	// stall is over and while it is within the expiry grace: every
	// replica then holds its expiries as the reporter does (see
	// Config.ExpiryGrace). Replicas of earlier versions neither send nor
	// read it.
	Stalled int64 `json:"stalled,omitempty"`
}

// progressTracker is the commit quorum. It knows how far each voter
// applied, wakes proposals waiting for a majority, and compares this
// replica's running hash with the voters' at equal revisions.
type progressTracker struct {
	l    *Log
	kick chan struct{}
	sub  *nats.Subscription

	mu       sync.Mutex
	voterRev map[string]int64 // voter → highest applied revision reported
	changed  chan struct{}    // closed and replaced when voterRev grows
	// own running hash after each applied message, for comparing with
	// reports about revisions already passed; bounded.
	history   map[int64]chainHash
	histOrder []int64
	// reports from voters ahead of this replica, checked once it gets there
	ahead map[string]progressReport
	// voters whose hash disagreed with this replica's at some revision;
	// hashes chain, so once different they stay different.
	disagree map[string]bool
}

const hashHistory = 8192

func newProgressTracker(l *Log) *progressTracker {
	return &progressTracker{
		l:        l,
		kick:     make(chan struct{}, 1),
		voterRev: map[string]int64{},
		changed:  make(chan struct{}),
		history:  map[int64]chainHash{},
		ahead:    map[string]progressReport{},
		disagree: map[string]bool{},
	}
}

func (t *progressTracker) start() error {
	sub, err := t.l.cfg.Conn.Subscribe(progressSubject(t.l.cfg.Service), t.receive)
	if err != nil {
		return fmt.Errorf("qlog: subscribe to progress: %w", err)
	}
	sub.SetPendingLimits(1<<16, 64<<20)
	t.sub = sub
	return nil
}

func (t *progressTracker) stop() {
	if t.sub != nil {
		_ = t.sub.Unsubscribe()
	}
}

// applied records this replica's own progress after a message and asks the
// publisher to announce it.
func (t *progressTracker) applied(rev int64, seq uint64, chain chainHash) {
	t.mu.Lock()
	if _, ok := t.history[rev]; !ok {
		t.history[rev] = chain
		t.histOrder = append(t.histOrder, rev)
		if len(t.histOrder) > hashHistory {
			delete(t.history, t.histOrder[0])
			t.histOrder = t.histOrder[1:]
		}
	}
	if t.l.voter {
		t.raise(t.l.cfg.ReplicaID, rev)
	}
	var check []progressReport
	for v, r := range t.ahead {
		if r.Revision <= rev {
			check = append(check, r)
			delete(t.ahead, v)
		}
	}
	t.mu.Unlock()
	for _, r := range check {
		t.compare(r)
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *progressTracker) raise(voter string, rev int64) {
	if rev > t.voterRev[voter] {
		t.voterRev[voter] = rev
		close(t.changed)
		t.changed = make(chan struct{})
	}
}

// receive handles another replica's report (and this replica's own echo,
// which changes nothing).
func (t *progressTracker) receive(m *nats.Msg) {
	var r progressReport
	if err := json.Unmarshal(m.Data, &r); err != nil || r.Replica == t.l.cfg.ReplicaID {
		return
	}
	if r.Stalled != 0 {
		t.l.notePeerStall(r.Stalled)
	}
	if !slices.Contains(t.l.cfg.Voters, r.Replica) {
		return // observers never count and are never compared against
	}
	t.mu.Lock()
	t.raise(r.Replica, r.Revision)
	_, have := t.history[r.Revision]
	if !have {
		if latest := t.latestOwn(); r.Revision > latest {
			t.ahead[r.Replica] = r
		}
	}
	t.mu.Unlock()
	if have {
		t.compare(r)
	}
}

func (t *progressTracker) latestOwn() int64 {
	if n := len(t.histOrder); n > 0 {
		return t.histOrder[n-1]
	}
	return 0
}

// compare checks a voter's hash against this replica's at the same
// revision. When a majority of the voters disagree with this replica, it is
// the one that diverged, and it fail-stops. (A minority that disagrees is
// the other replicas' problem: each of them will find itself outvoted.)
func (t *progressTracker) compare(r progressReport) {
	t.mu.Lock()
	own, ok := t.history[r.Revision]
	if !ok || hex.EncodeToString(own[:]) == r.Chain {
		t.mu.Unlock()
		return
	}
	t.disagree[r.Replica] = true
	n := len(t.disagree)
	t.mu.Unlock()
	t.l.logger.Error("qlog running hash differs from a voter's", "voter", r.Replica, "revision", r.Revision,
		"ours", hex.EncodeToString(own[:]), "theirs", r.Chain, "voters_disagreeing", n, "quorum", t.l.quorum)
	if n >= t.l.quorum {
		t.l.fail(fmt.Sprintf("running hash at revision %d differs from %d of %d voters: this replica's state diverged",
			r.Revision, n, len(t.l.cfg.Voters)))
	}
}

// waitQuorum waits until a majority of voters applied rev.
func (t *progressTracker) waitQuorum(ctx context.Context, expired <-chan struct{}, rev int64) error {
	for {
		t.mu.Lock()
		n := 0
		for _, v := range t.l.cfg.Voters {
			if t.voterRev[v] >= rev {
				n++
			}
		}
		ch := t.changed
		t.mu.Unlock()
		if n >= t.l.quorum {
			return nil
		}
		if err := t.l.err(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: applied by %d of %d voters, %d needed: %v", ErrUnknownOutcome, n, len(t.l.cfg.Voters), t.l.quorum, ctx.Err())
		case <-expired:
			return fmt.Errorf("%w: applied by %d of %d voters, %d needed: %v", ErrUnknownOutcome, n, len(t.l.cfg.Voters), t.l.quorum, context.DeadlineExceeded)
		case <-t.l.ctx.Done():
			return ErrClosed
		}
	}
}

// publishLoop announces this replica's progress after applies (coalesced:
// one report covers every message applied since the last) and once a
// second, so that replicas that start later learn where the others are.
func (t *progressTracker) publishLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.kick:
		case <-tick.C:
		}
		if t.l.failed.Load() != nil {
			continue // a failed replica's state must not count toward a quorum
		}
		t.l.mu.RLock()
		r := progressReport{Replica: t.l.cfg.ReplicaID, Revision: t.l.rev, Seq: t.l.seq, Chain: hex.EncodeToString(t.l.chain[:]), Stalled: t.l.stallToReport()}
		t.l.mu.RUnlock()
		data, _ := json.Marshal(r)
		if err := t.l.cfg.Conn.Publish(progressSubject(t.l.cfg.Service), data); err != nil {
			t.l.logger.Debug("qlog progress publish failed", "err", err)
		}
	}
}
