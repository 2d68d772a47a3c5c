package qlog

import (
	"context"
	"sort"
	"strings"
	"sync"
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

	// A watch of one key or one prefix (WatchKey, WatchPrefix) is woken
	// only by the events it matches, through its group's channel,
	// instead of by every apply: keyedWatches marks it unseen with the
	// position of the first such event, and it skips what was applied
	// in between unread. The fields are written by the apply (l.mu held
	// for writing) and by the watch's own take (l.mu held for reading).
	key, prefix string
	group       *keyGroup // nil for a watch woken by every apply
	unseen      bool      // a matching event may be held at or after firstUnseen
	firstUnseen uint64

	// notify, if set (Notify), is called wherever group.ch is closed;
	// written and read under keyedWatches.mu. stopNotify ends its call
	// on the replica's close.
	notify     func()
	stopNotify func() bool
}

// keyGroup is the watches of one key, or of one prefix, and the channel
// that wakes them: closed (and replaced) by an apply whose events touch
// the key or the prefix, as l.applied is by every apply.
type keyGroup struct {
	watches map[*Watch]struct{}
	ch      chan struct{} // replaced under l.mu for writing
	marked  bool          // by the apply being marked: woken already
}

// keyedWatches indexes the watches of one key or one prefix, so that an
// apply wakes only the watches its events match: with thousands of
// watchers of different keys, a write costs one wake-up per watcher it
// concerns, not one per watcher. Its lock is taken inside l.mu.
type keyedWatches struct {
	mu       sync.Mutex
	keys     map[string]*keyGroup
	prefixes map[string]*keyGroup
	marked   []*keyGroup // by the apply being marked (matched, all)
}

func (k *keyedWatches) index(w *Watch) (map[string]*keyGroup, string) {
	if w.prefix != "" {
		return k.prefixes, w.prefix
	}
	return k.keys, w.key
}

// add puts w in its group. The caller holds l.mu (for reading at least).
func (k *keyedWatches) add(w *Watch) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys, k.prefixes = map[string]*keyGroup{}, map[string]*keyGroup{}
	}
	m, name := k.index(w)
	g := m[name]
	if g == nil {
		g = &keyGroup{watches: map[*Watch]struct{}{}, ch: make(chan struct{})}
		m[name] = g
	}
	g.watches[w] = struct{}{}
	w.group = g
}

func (k *keyedWatches) remove(w *Watch) {
	k.mu.Lock()
	defer k.mu.Unlock()
	m, name := k.index(w)
	if g := m[name]; g != nil {
		delete(g.watches, w)
		if len(g.watches) == 0 {
			delete(m, name)
		}
	}
}

// matched marks and wakes the watches each event matches; evs were
// pushed to the ring at positions first, first+1, .... The caller holds
// l.mu for writing (as wakeLocked wakes the others: measured with 10,000
// watchers of one key, waking them after l.mu's release was slower).
func (k *keyedWatches) matched(evs []Event, first uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.unmark()
	if len(k.keys) == 0 && len(k.prefixes) == 0 {
		return
	}
	for i, ev := range evs {
		pos := first + uint64(i)
		if g := k.keys[ev.Key]; g != nil {
			k.mark(g, pos)
		}
		if len(k.prefixes) == 0 {
			continue
		}
		// Whichever is fewer: the prefixes watched, or the key's own
		// prefixes looked up (no allocation: a substring).
		if len(k.prefixes) <= len(ev.Key)+1 {
			for p, g := range k.prefixes {
				if strings.HasPrefix(ev.Key, p) {
					k.mark(g, pos)
				}
			}
			continue
		}
		for n := 0; n <= len(ev.Key); n++ {
			if g := k.prefixes[ev.Key[:n]]; g != nil {
				k.mark(g, pos)
			}
		}
	}
}

// all wakes every keyed watch to read from where it is: after a
// fail-stop (it finds the error) or a restore (it finds itself cut off,
// ErrWatchLagged, its position older than anything the ring holds). The
// caller holds l.mu for writing.
func (k *keyedWatches) all() {
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.unmark()
	for _, m := range []map[string]*keyGroup{k.keys, k.prefixes} {
		for _, g := range m {
			k.mark(g, 0)
		}
	}
}

// mark notes that the event at pos may concern g's watches and wakes
// them, once per apply; pos 0 (all) has each read from where it is, since
// a take reads from the later of its position and firstUnseen. The caller
// holds k.mu, and l.mu for writing.
func (k *keyedWatches) mark(g *keyGroup, pos uint64) {
	if g.marked {
		return // at an earlier position of this apply
	}
	g.marked = true
	k.marked = append(k.marked, g)
	for w := range g.watches {
		if !w.unseen {
			w.unseen, w.firstUnseen = true, pos
		}
		if w.notify != nil {
			w.notify()
		}
	}
	close(g.ch)
	g.ch = make(chan struct{})
}

// unmark readies the groups marked by this apply for the next.
func (k *keyedWatches) unmark() {
	for _, g := range k.marked {
		g.marked = false
	}
	clear(k.marked)
	k.marked = k.marked[:0]
}

// Watch returns a watch that yields the events at revision from and after,
// for which filter (if not nil) returns true. from <= 0 means "from the
// next revision". A from older than the replica holds fails with a
// *CompactedError before anything is delivered.
func (l *Log) Watch(from int64, filter func(Event) bool) (*Watch, error) {
	return l.newWatch(from, filter, "", "", false)
}

// WatchKey is Watch of the events of one key. Unlike a watch with a
// filter, it is woken only by the applies that touch its key; Close it
// when done.
func (l *Log) WatchKey(from int64, key string) (*Watch, error) {
	return l.newWatch(from, func(ev Event) bool { return ev.Key == key }, key, "", true)
}

// WatchPrefix is Watch of the events of the keys under prefix, woken only
// by the applies that touch one; Close it when done.
func (l *Log) WatchPrefix(from int64, prefix string) (*Watch, error) {
	if prefix == "" {
		return l.Watch(from, nil) // every key: every apply concerns it
	}
	return l.newWatch(from, func(ev Event) bool { return strings.HasPrefix(ev.Key, prefix) }, "", prefix, true)
}

func (l *Log) newWatch(from int64, filter func(Event) bool, key, prefix string, keyed bool) (*Watch, error) {
	if err := l.serving(); err != nil {
		return nil, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	pos, first, err := l.watchFrom(from)
	if err != nil {
		return nil, err
	}
	w := &Watch{l: l, pos: pos, from: first, filter: filter, key: key, prefix: prefix}
	if !keyed {
		return w, nil
	}
	// Registered under l.mu: no apply comes between the start and the
	// registration unmarked. Of what the ring already holds from the
	// start (a resumed watch), the first event it matches is where its
	// first take reads from; none, and it waits for a mark.
	for p := pos; p < l.ring.nextPos(); p++ {
		if filter(l.ring.at(p)) {
			w.unseen, w.firstUnseen = true, p
			break
		}
	}
	l.keyed.add(w)
	return w, nil
}

// Close ends the watch: a keyed watch leaves the index that wakes it,
// and Notify's function is not called after Close returns, but for a call
// already under way when the replica closed. Closing
// twice, or closing a watch with a filter, does nothing.
func (w *Watch) Close() {
	if w.group != nil {
		w.l.keyed.remove(w)
	}
	if w.stopNotify != nil {
		w.stopNotify()
	}
}

// Notify has f called whenever the channel Changed returns would be
// closed (an apply that may concern the watch, a fail-stop, a restore)
// and once when the replica closes, so that a server can serve thousands
// of watches from a few goroutines rather than one waiting on Changed for
// each. f runs with the log's apply lock held: it must hand the work on
// and return, never block or call into the log.
//
// Only a keyed watch (WatchKey, WatchPrefix) notifies; Notify returns
// false for any other, which must be waited on with Changed. Call it once,
// before the TryNextRevision that must not miss an apply after it.
func (w *Watch) Notify(f func()) bool {
	if w.group == nil {
		return false
	}
	w.l.keyed.mu.Lock()
	w.notify = f
	w.l.keyed.mu.Unlock()
	w.stopNotify = context.AfterFunc(w.l.ctx, f)
	return true
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
// something after this call that may concern the watch (anything, for a
// watch with a filter). Take it before TryNextRevision so that an apply in
// between is not missed.
func (w *Watch) Changed() <-chan struct{} {
	w.l.mu.RLock()
	defer w.l.mu.RUnlock()
	if w.group != nil {
		return w.group.ch
	}
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
	if w.group != nil {
		if !w.unseen {
			// Nothing this watch matches was applied since pos: what
			// was applied is skipped unread, so that a watch of a quiet
			// key is never cut off for events it would not have sent.
			w.pos = max(w.pos, l.ring.nextPos())
			return nil, w.group.ch, nil
		}
		w.pos = max(w.pos, w.firstUnseen)
	}
	out, next, err := l.events(w.pos, w.from, w.filter, wholeRevision)
	w.pos = next
	if err != nil {
		return nil, nil, err
	}
	if len(out) > 0 {
		return out, nil, nil
	}
	if w.group != nil {
		w.unseen = false // read to the end of the ring: nothing left
		return nil, w.group.ch, nil
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
