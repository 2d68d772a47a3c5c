package sse

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A Hub serves streams with a few goroutines instead of one each.
//
// A stream served on its own goroutine (loop) costs, for every apply that
// concerns it, a goroutine woken, the log's lock taken four times and a
// write system call from that goroutine; with 10,000 watchers of one key
// that was 4–6.5 µs a watcher above a server that only writes each event
// to every connection. A Hub keeps no goroutine for a stream that is
// caught up: the log calls the stream's notify function (qlog's
// Watch.Notify) from its apply, which puts the stream in the Hub's queue,
// and up to GOMAXPROCS workers take what the log holds for each stream
// queued and write it to the connection without waiting (a non-blocking
// write system call). A stream whose connection does not take everything
// at once (its client reads slowly, or has a large backlog) gets a
// goroutine of its own for as long as its write waits, under the
// stream's write timeout as on the goroutine path, so a slow client never
// holds a worker or delays the others; once written it returns to the
// Hub. Heartbeats are timers, and the shutdown and a request ended from
// outside reach the stream through callbacks, so an idle stream is a
// connection, its watch and a small struct.
//
// Only streams on HTTP/1 connections taken over from net/http whose
// socket can be written without waiting (a plain TCP connection, not
// TLS), and whose Source notifies (a keyed qlog watch), are served by a
// Hub; the others take the goroutine path. A Hub needs no starting or
// stopping: its workers run while streams are queued.
//
// A Hub is a prometheus.Collector of its own health: the streams it
// serves, the writes a client did not take at once, and the streams cut
// for taking nothing.
type Hub struct {
	mu       sync.Mutex
	queue    []*hubStream
	workers  int
	streams  int
	stopping map[<-chan struct{}]map[*hubStream]struct{}

	slowWrites, cut atomic.Int64
}

// NewHub returns a Hub; one per server is enough.
func NewHub() *Hub {
	return &Hub{stopping: map[<-chan struct{}]map[*hubStream]struct{}{}}
}

var (
	hubStreamsDesc = prometheus.NewDesc("steward_watch_hub_streams",
		"Watch streams served by the shared writers (no goroutine each).", nil, nil)
	hubSlowDesc = prometheus.NewDesc("steward_watch_hub_slow_writes_total",
		"Writes to a watcher its connection did not take at once: its stream waited on a goroutine of its own.", nil, nil)
	hubCutDesc = prometheus.NewDesc("steward_watch_hub_cut_total",
		"Watch streams ended because a write to the client failed or took nothing for the write timeout.", nil, nil)
)

// Describe implements prometheus.Collector.
func (h *Hub) Describe(ch chan<- *prometheus.Desc) {
	ch <- hubStreamsDesc
	ch <- hubSlowDesc
	ch <- hubCutDesc
}

// Collect implements prometheus.Collector.
func (h *Hub) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(hubStreamsDesc, prometheus.GaugeValue, float64(h.Streams()))
	ch <- prometheus.MustNewConstMetric(hubSlowDesc, prometheus.CounterValue, float64(h.slowWrites.Load()))
	ch <- prometheus.MustNewConstMetric(hubCutDesc, prometheus.CounterValue, float64(h.cut.Load()))
}

// Streams returns how many streams the Hub serves now.
func (h *Hub) Streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams
}

// notifier is a Source that can call a function instead of being waited
// on: a keyed *qlog.Watch.
type notifier interface {
	Notify(f func()) bool
}

// hubBatch is how many queued streams a worker takes at once.
const hubBatch = 64

// reason is why a stream was queued: a set of these.
type reason uint8

const (
	changed reason = 1 << iota // the log applied what may concern it (or closed)
	beat                       // its heartbeat is due
	gone                       // its request was ended from outside
	stop                       // the server shuts down
	begin                      // its first run: the ": watching" comment
)

type streamState uint8

const (
	parked   streamState = iota // caught up, waiting for a reason
	queued                      // in the Hub's queue
	running                     // a worker serves it
	draining                    // its own goroutine waits on a write
	ended
)

// hubStream is one stream served by a Hub.
type hubStream struct {
	hub      *Hub
	s        Stream
	out      *connSink
	stopping <-chan struct{}
	finish   func() // everything the stream holds, given back once
	timer    *time.Timer
	stopGone func() bool
	closing  bool // after this write, the stream ends (touched by its runner only)

	mu      sync.Mutex
	state   streamState
	pending reason
}

// serve hands the stream on out to h, or returns false, having changed
// nothing, if h cannot serve it (see Hub). ctx ends when the request is
// ended from outside; finish gives back what the stream holds.
func (h *Hub) serve(ctx context.Context, s Stream, out *connSink, stopping <-chan struct{}, finish func()) bool {
	sc, ok := out.c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n, ok := s.Watch.(notifier)
	if !ok {
		return false
	}
	st := &hubStream{hub: h, s: s, out: out, stopping: stopping, state: queued, pending: begin | changed}
	if !n.Notify(func() { st.signal(changed) }) {
		return false
	}
	out.raw = raw
	// The connection may keep a deadline from its request: a raw read or
	// write fails at once past one.
	_ = out.c.SetDeadline(time.Time{})
	st.finish = sync.OnceFunc(func() {
		st.mu.Lock()
		st.timer.Stop()
		st.mu.Unlock()
		st.stopGone()
		h.forget(st)
		out.release()
		finish()
	})
	st.mu.Lock()
	st.timer = time.AfterFunc(s.Heartbeat, st.heartbeat)
	st.mu.Unlock()
	st.stopGone = context.AfterFunc(ctx, func() { st.signal(gone) })
	h.mu.Lock()
	h.streams++
	if stopping != nil {
		set := h.stopping[stopping]
		if set == nil {
			set = map[*hubStream]struct{}{}
			h.stopping[stopping] = set
			go h.awaitStop(stopping)
		}
		set[st] = struct{}{}
	}
	h.mu.Unlock()
	h.enqueue(st)
	return true
}

// awaitStop tells the streams of a server that it is shutting down.
func (h *Hub) awaitStop(stopping <-chan struct{}) {
	<-stopping
	h.mu.Lock()
	set := h.stopping[stopping]
	delete(h.stopping, stopping)
	h.mu.Unlock()
	for st := range set {
		st.signal(stop)
	}
}

func (h *Hub) forget(st *hubStream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.streams--
	if set := h.stopping[st.stopping]; set != nil {
		delete(set, st)
	}
}

// enqueue queues st and starts a worker if fewer than GOMAXPROCS run.
// It is called from the log's apply: it must not wait.
func (h *Hub) enqueue(st *hubStream) {
	h.mu.Lock()
	h.queue = append(h.queue, st)
	start := h.workers < runtime.GOMAXPROCS(0)
	if start {
		h.workers++
	}
	h.mu.Unlock()
	if start {
		go h.work()
	}
}

// work serves queued streams until the queue is empty.
func (h *Hub) work() {
	var batch []*hubStream
	for {
		h.mu.Lock()
		if len(h.queue) == 0 {
			h.workers--
			h.queue = nil // what a burst grew is given back
			h.mu.Unlock()
			return
		}
		n := min(len(h.queue), hubBatch)
		batch = append(batch[:0], h.queue[:n]...)
		clear(h.queue[:n])
		h.queue = h.queue[n:]
		h.mu.Unlock()
		for _, st := range batch {
			st.run()
		}
	}
}

// signal records why and queues the stream if it is parked with a reason
// pending; a stream being served sees why when its run ends.
func (st *hubStream) signal(why reason) {
	st.mu.Lock()
	st.pending |= why
	queue := st.state == parked && st.pending != 0
	if queue {
		st.state = queued
	}
	st.mu.Unlock()
	if queue {
		st.hub.enqueue(st)
	}
}

// park leaves the stream to wait for a reason, and queues it again at
// once (at the back) if one came while it was served.
func (st *hubStream) park() {
	st.setState(parked)
	st.signal(0)
}

func (st *hubStream) setState(s streamState) {
	st.mu.Lock()
	st.state = s
	st.mu.Unlock()
}

// heartbeat runs on the stream's timer, and sets it again.
func (st *hubStream) heartbeat() {
	st.signal(beat)
	st.mu.Lock()
	if st.state != ended {
		st.timer.Reset(st.s.Heartbeat)
	}
	st.mu.Unlock()
}

// outcome is how a run ended.
type outcome uint8

const (
	caughtUp outcome = iota // everything written
	blocked                 // the connection did not take everything
	over                    // the stream ends
)

// run serves the stream for the reasons pending. One woken meanwhile goes
// to the back of the queue rather than round again here: a stream whose
// key is written without pause must not keep a worker from the others.
func (st *hubStream) run() {
	st.mu.Lock()
	why := st.pending
	st.pending = 0
	st.state = running
	st.mu.Unlock()
	switch st.write(why) {
	case over:
		st.end()
		return
	case blocked:
		st.hub.slowWrites.Add(1)
		st.setState(draining)
		go st.drain()
		return
	}
	st.park()
}

func (st *hubStream) end() {
	st.setState(ended)
	st.finish()
}

// write does what the loop does on a wake-up, without waiting on the
// connection: it buffers what the log holds for the stream (and the
// heartbeat, or the shutdown event) and writes it without blocking.
func (st *hubStream) write(why reason) outcome {
	out := st.out
	if why&gone != 0 {
		return over
	}
	select {
	case <-st.s.Watch.Done():
		return over
	default:
	}
	if why&begin != 0 {
		_, _ = io.WriteString(out, watchingComment)
	}
	if why&stop != 0 {
		_, _ = io.WriteString(out, shutdownEvent)
		return st.flushLast()
	}
	for {
		evs, err := st.s.Watch.TryNextRevision()
		if err != nil {
			writeWatchError(out, err)
			return st.flushLast()
		}
		if evs == nil {
			break
		}
		if err := st.s.Revision(out, evs); err != nil {
			return over
		}
		if out.buffered() >= maxPooledBuffer {
			// A stream far behind sends its backlog in pieces.
			if o := st.flush(); o != caughtUp {
				return o
			}
		}
	}
	if why&beat != 0 {
		if out.tryProbe() != nil {
			return over
		}
		_, _ = io.WriteString(out, heartbeatComment)
	}
	if st.s.Idle != nil {
		if err := st.s.Idle(out); err != nil {
			return over
		}
	}
	return st.flush()
}

// flush writes what is buffered without waiting.
func (st *hubStream) flush() outcome {
	done, err := st.out.tryFlush()
	switch {
	case err != nil:
		return over
	case !done:
		return blocked
	}
	return caughtUp
}

// flushLast writes the stream's last words and ends it, waiting for the
// connection (drain) if it does not take them at once.
func (st *hubStream) flushLast() outcome {
	st.closing = true
	if o := st.flush(); o != caughtUp {
		return o
	}
	return over
}

// drain writes what the connection did not take, waiting for it under
// the write timeout (connSink.flush), then returns the stream to the Hub
// to catch up.
func (st *hubStream) drain() {
	err := st.out.flush()
	if err == nil {
		// Raw writes fail at once past a deadline: clear it.
		err = st.out.clearDeadline()
	}
	if err != nil {
		st.hub.cut.Add(1)
	}
	if err != nil || st.closing {
		st.end()
		return
	}
	st.setState(parked)
	st.signal(changed)
}

// tryFlush writes what is buffered with one write system call that does
// not wait: what the socket does not take stays buffered, and done is
// false.
func (s *connSink) tryFlush() (done bool, err error) {
	if s.buf == nil {
		return true, nil
	}
	p := *s.buf
	var n int
	var werr error
	if err := s.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), p)
		return true // never wait for the socket
	}); err != nil {
		return false, err
	}
	if errors.Is(werr, syscall.EAGAIN) {
		n, werr = 0, nil
	}
	if werr != nil {
		return false, werr
	}
	if n == len(p) {
		s.release()
		return true, nil
	}
	*s.buf = p[:copy(p, p[n:])]
	return false, nil
}

// tryProbe is probe without waiting: a read system call on the
// connection that answers at once.
func (s *connSink) tryProbe() error {
	var n int
	var rerr error
	if err := s.raw.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), s.one[:])
		return true
	}); err != nil {
		return err
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN):
		return nil
	case rerr != nil:
		return rerr
	case n == 0:
		return io.EOF
	}
	return nil
}

func (s *connSink) clearDeadline() error {
	s.deadline = time.Time{}
	return s.c.SetWriteDeadline(time.Time{})
}
