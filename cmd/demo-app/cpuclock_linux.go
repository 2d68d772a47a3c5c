package main

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// cpuClock measures the CPU time of the calling goroutine's thread, which
// it locks the goroutine to. Counting CPU time rather than wall time makes
// each request cost the same CPU however busy the host is: an overloaded
// replica answers slower instead of doing less work, as a real CPU-bound
// service would, and its CPU use is what the scaler should see.
type cpuClock struct{ start time.Duration }

func startCPUClock() *cpuClock {
	runtime.LockOSThread()
	return &cpuClock{start: threadCPU()}
}

func (c *cpuClock) elapsed() time.Duration { return threadCPU() - c.start }

func (c *cpuClock) stop() { runtime.UnlockOSThread() }

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic("clock_gettime(CLOCK_THREAD_CPUTIME_ID): " + err.Error()) // Linux has had it since 2.6.12
	}
	return time.Duration(ts.Nano())
}
