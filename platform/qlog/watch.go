package qlog

import (
	"context"
	"sort"
)

// eventRing keeps the newest events in apply order, each with a position
// (a counter over all events ever pushed). Watchers read it by position,
// so a slow watcher costs no memory: when the ring overwrites events a
// watcher had not read yet, that watcher is cut off with ErrWatchLagged.
type eventRing struct {
	buf      []Event
	head     int    // index of the oldest event
	n        int    // events held
	firstPos uint64 // position of the oldest event held
	// heldFrom is the oldest revision whose events are all still held.
	heldFrom int64
}

func newEventRing(capacity int) eventRing {
	return eventRing{buf: make([]Event, capacity), heldFrom: 1}
}

func (r *eventRing) nextPos() uint64 { return r.firstPos + uint64(r.n) }

func (r *eventRing) push(ev Event) {
	if r.n == len(r.buf) {
		dropped := r.buf[r.head]
		r.buf[r.head] = Event{}
		r.head = (r.head + 1) % len(r.buf)
		r.n--
		r.firstPos++
		r.heldFrom = max(r.heldFrom, dropped.Revision+1)
	}
	r.buf[(r.head+r.n)%len(r.buf)] = ev
	r.n++
}

func (r *eventRing) at(pos uint64) Event {
	return r.buf[(r.head+int(pos-r.firstPos))%len(r.buf)]
}

// reset empties the ring so that it holds everything after revision rev;
// used after restoring a snapshot at rev.
func (r *eventRing) reset(rev int64) {
	// Positions keep counting past everything ever held, so that a
	// watcher reading from before the restore is cut off (ErrWatchLagged)
	// rather than silently skipping the restored-over events.
	r.firstPos += uint64(r.n) + 1
	clear(r.buf)
	r.head, r.n = 0, 0
	r.heldFrom = rev + 1
}

// search returns the position of the first held event at or after rev.
func (r *eventRing) search(rev int64) uint64 {
	i := sort.Search(r.n, func(i int) bool { return r.at(r.firstPos+uint64(i)).Revision >= rev })
	return r.firstPos + uint64(i)
}

// Watch is an ordered, gap-free stream of events from one replica.
type Watch struct {
	l      *Log
	pos    uint64
	from   int64
	filter func(Event) bool
}

// Watch returns a watch that yields the events at revision from and after,
// for which filter (if not nil) returns true. from <= 0 means "from the
// next revision". A from older than the replica holds fails with a
// *CompactedError before anything is delivered.
func (l *Log) Watch(from int64, filter func(Event) bool) (*Watch, error) {
	if err := l.serving(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	pos, first, err := l.watchFrom(from)
	if err != nil {
		return nil, err
	}
	return &Watch{l: l, pos: pos, from: first, filter: filter}, nil
}

// CompactRevision returns the oldest revision a watch can start from.
func (l *Log) CompactRevision() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.ring.heldFrom
}

// Next blocks until the next matching event, ctx ends, or the watch fails
// (ErrWatchLagged, a fail-stop, ErrClosed).
func (w *Watch) Next(ctx context.Context) (Event, error) {
	evs, err := w.next(ctx, false)
	if err != nil {
		return Event{}, err
	}
	return evs[0], nil
}

// NextRevision is Next for all the matching events of the next revision
// that has any: a transaction or a prefix delete makes several events at
// one revision, and a client that resumes "after revision R" must have
// seen all of R's. The events of a revision are applied together, so they
// are all held when the first is.
func (w *Watch) NextRevision(ctx context.Context) ([]Event, error) {
	return w.next(ctx, true)
}

// TryNextRevision is NextRevision without waiting: nil, nil when nothing
// matching is held yet. With Changed, a caller can wait for the log in its
// own select (a server's stream loop) instead of in a goroutine of its own.
func (w *Watch) TryNextRevision() ([]Event, error) {
	evs, _, err := w.take(true)
	return evs, err
}

// Done returns a channel that is closed when the replica closes: the
// watch yields nothing more (TryNextRevision answers ErrClosed).
func (w *Watch) Done() <-chan struct{} { return w.l.ctx.Done() }

// Changed returns a channel that is closed when the replica applies
// something after this call. Take it before TryNextRevision so that an
// apply in between is not missed.
func (w *Watch) Changed() <-chan struct{} {
	w.l.mu.RLock()
	defer w.l.mu.RUnlock()
	return w.l.applied
}

// take returns the next matching events held, or none and the channel to
// wait on for more.
func (w *Watch) take(wholeRevision bool) ([]Event, <-chan struct{}, error) {
	l := w.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.err(); err != nil {
		return nil, nil, err
	}
	out, next, err := l.events(w.pos, w.from, w.filter, wholeRevision)
	w.pos = next
	if err != nil {
		return nil, nil, err
	}
	if len(out) > 0 {
		return out, nil, nil
	}
	return nil, l.applied, nil
}

func (w *Watch) next(ctx context.Context, wholeRevision bool) ([]Event, error) {
	l := w.l
	for {
		out, ch, err := w.take(wholeRevision)
		if err != nil || len(out) > 0 {
			return out, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-l.ctx.Done():
			return nil, ErrClosed
		}
	}
}
