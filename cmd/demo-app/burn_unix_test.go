//go:build unix

package main

import (
	"context"
	"syscall"
	"testing"
	"time"
)

// TestBurnUsesCPU: a burn of d uses at least d of the process's CPU time
// (a sleep would not).
func TestBurnUsesCPU(t *testing.T) {
	const d = 100 * time.Millisecond
	before := processCPU(t)
	if err := burn(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	// rusage is kept in ticks: allow one.
	if got := processCPU(t) - before; got < d-10*time.Millisecond {
		t.Fatalf("burn(%s) used %s of CPU", d, got)
	}
}

func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
