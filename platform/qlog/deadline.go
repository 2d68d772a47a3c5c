package qlog

import (
	"sync"
	"sync/atomic"
	"time"
)

// sharedDeadline bounds proposals whose callers set no earlier deadline
// (Config.ProposeTimeout) with one timer per slice of time instead of one
// context and timer each: context.WithTimeout and its cancel were about 3%
// of the CPU of a config PUT at 64 clients. Every caller within a slice of
// after/8 gets the same channel, closed at least after and at most
// after*9/8 from its call.
type sharedDeadline struct {
	after time.Duration
	mu    sync.Mutex // serialises making a slice
	cur   atomic.Pointer[deadlineSlice]
}

type deadlineSlice struct {
	expired chan struct{}
	until   time.Time // handed out until then
}

// channel returns a channel closed between after and after*9/8 from now.
func (d *sharedDeadline) channel() <-chan struct{} {
	now := time.Now()
	if s := d.cur.Load(); s != nil && now.Before(s.until) {
		return s.expired
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s != nil && now.Before(s.until) {
		return s.expired
	}
	slice := d.after / 8
	s := &deadlineSlice{expired: make(chan struct{}), until: now.Add(slice)}
	time.AfterFunc(d.after+slice, func() { close(s.expired) })
	d.cur.Store(s)
	return s.expired
}
