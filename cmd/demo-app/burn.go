package main

import (
	"context"
	"crypto/sha256"
	"time"
)

// burnChunk is how many hashes of a block run between two looks at the
// clock: a few tens of microseconds, so a burn overshoots by no more.
const burnChunk = 16

// burn keeps a CPU busy hashing until d of CPU time has gone (see
// cpuClock) or ctx ends.
func burn(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	clock := startCPUClock()
	defer clock.stop()
	var block [1024]byte
	for {
		for range burnChunk {
			sum := sha256.Sum256(block[:])
			copy(block[:], sum[:]) // each hash depends on the last
		}
		if clock.elapsed() >= d {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
