//go:build !linux

package main

import "time"

// cpuClock measures wall time where the thread's CPU time is not at hand:
// on a busy host a request then burns less than its work.
type cpuClock struct{ start time.Time }

func startCPUClock() *cpuClock { return &cpuClock{start: time.Now()} }

func (c *cpuClock) elapsed() time.Duration { return time.Since(c.start) }

func (c *cpuClock) stop() {}
