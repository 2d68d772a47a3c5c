package control

import (
	"sync"
	"time"
)

// queue is a work queue of keys in the spirit of client-go's
// util/workqueue (a rate-limited delaying queue), small enough not to
// bring client-go in:
//
//   - a key waiting to be processed is held once, however often it is
//     added (dedupe);
//   - a key is handed to one worker at a time: added while a worker holds
//     it, it is queued again when that worker calls Done;
//   - AddAfter holds a key back; of several delays for one key the
//     earliest wins;
//   - AddRateLimited is AddAfter with the key's own exponential backoff,
//     which Forget resets.
//
// Unlike client-go's, ShutDown drops the keys still pending: the queue
// lives for one leadership term, and a term that ended has nothing left
// to do.
type queue struct {
	base, limit time.Duration

	mu         sync.Mutex
	ready      *sync.Cond
	order      []string            // keys ready, oldest first
	dirty      map[string]bool     // keys in order, or to queue again on Done
	processing map[string]bool     // keys a worker holds
	waiting    map[string]*delayed // keys held back
	failures   map[string]int      // consecutive AddRateLimited per key
	shutdown   bool
}

// delayed is a key held back until at.
type delayed struct {
	at    time.Time
	timer *time.Timer
}

// newQueue returns a queue whose backoff starts at base and doubles up
// to limit.
func newQueue(base, limit time.Duration) *queue {
	q := &queue{base: base, limit: limit, dirty: map[string]bool{}, processing: map[string]bool{},
		waiting: map[string]*delayed{}, failures: map[string]int{}}
	q.ready = sync.NewCond(&q.mu)
	return q
}

// Add queues key unless it is queued already.
func (q *queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.add(key)
}

func (q *queue) add(key string) {
	if q.shutdown || q.dirty[key] {
		return
	}
	q.dirty[key] = true
	if q.processing[key] {
		return
	}
	q.order = append(q.order, key)
	q.ready.Signal()
}

// AddAfter queues key once d has passed, or sooner if it is held back
// for less already.
func (q *queue) AddAfter(key string, d time.Duration) {
	if d <= 0 {
		q.Add(key)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shutdown {
		return
	}
	at := time.Now().Add(d)
	if w := q.waiting[key]; w != nil {
		if !at.Before(w.at) {
			return
		}
		w.timer.Stop()
	}
	w := &delayed{at: at}
	w.timer = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		// A sooner delay that replaced this one has its own timer.
		if q.waiting[key] == w {
			delete(q.waiting, key)
			q.add(key)
		}
	})
	q.waiting[key] = w
}

// AddRateLimited queues key after its backoff: base, doubled on every
// call since the key's last Forget, up to limit.
func (q *queue) AddRateLimited(key string) {
	q.mu.Lock()
	n := q.failures[key]
	q.failures[key] = n + 1
	q.mu.Unlock()
	q.AddAfter(key, backoff(q.base, q.limit, n))
}

// Forget resets key's backoff: its work succeeded.
func (q *queue) Forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.failures, key)
}

// NumRequeues returns how often key was rate limited since its Forget.
func (q *queue) NumRequeues(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// Get blocks until a key is ready and hands it to the caller, who must
// call Done with it; ok is false once the queue is shut down.
func (q *queue) Get() (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) == 0 && !q.shutdown {
		q.ready.Wait()
	}
	if q.shutdown {
		return "", false
	}
	key, q.order = q.order[0], q.order[1:]
	delete(q.dirty, key)
	q.processing[key] = true
	return key, true
}

// Done releases key; if it was added meanwhile, it is queued again.
func (q *queue) Done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if q.dirty[key] && !q.shutdown {
		q.order = append(q.order, key)
		q.ready.Signal()
	}
}

// Len returns how many keys are ready.
func (q *queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// ShutDown drops every pending key, stops the delays and makes Get
// return false; later adds are ignored.
func (q *queue) ShutDown() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.shutdown = true
	for _, w := range q.waiting {
		w.timer.Stop()
	}
	q.order, q.dirty, q.waiting = nil, map[string]bool{}, map[string]*delayed{}
	q.ready.Broadcast()
}

// backoff returns base doubled n times, at most limit.
func backoff(base, limit time.Duration, n int) time.Duration {
	d := base
	for range n {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}
