package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runStats is one measured run of one row.
type runStats struct {
	ops      int
	errs     int
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
}

func (s runStats) rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

// newRunStats sorts lat (every completed operation's latency, exactly: no
// histogram buckets) and takes nearest-rank percentiles.
func newRunStats(lat []time.Duration, errs int, firstErr error, elapsed time.Duration) runStats {
	slices.Sort(lat)
	return runStats{ops: len(lat), errs: errs, firstErr: firstErr, elapsed: elapsed,
		p50: percentile(lat, 0.50), p99: percentile(lat, 0.99)}
}

// percentile is the nearest-rank percentile of sorted.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// result is a row's runs. The table shows the median of the runs that
// completed without error; a failed run ends the row.
type result struct {
	runs []runStats
	err  error // why the row did not run: its setup or warm-up failed
}

// completed returns the runs without error.
func (r result) completed() []runStats {
	var out []runStats
	for _, s := range r.runs {
		if s.errs == 0 {
			out = append(out, s)
		}
	}
	return out
}

// failure says which run failed and why, or nil.
func (r result) failure() error {
	if r.err != nil {
		return r.err
	}
	for i, s := range r.runs {
		if s.errs > 0 {
			return fmt.Errorf("run %d failed %w", i+1, s.firstErr)
		}
	}
	return nil
}

// median returns the completed run with the median throughput (the lower
// middle one for an even count), so that ops/s, p50 and p99 come from the
// same run; ok is false when no run completed.
func (r result) median() (s runStats, ok bool) {
	c := r.completed()
	if len(c) == 0 {
		return runStats{}, false
	}
	slices.SortFunc(c, func(a, b runStats) int { return cmp.Compare(a.rate(), b.rate()) })
	return c[(len(c)-1)/2], true
}

// spread returns the lowest and highest throughput of the completed runs.
func (r result) spread() (lo, hi float64) {
	for i, s := range r.completed() {
		if i == 0 || s.rate() < lo {
			lo = s.rate()
		}
		if i == 0 || s.rate() > hi {
			hi = s.rate()
		}
	}
	return lo, hi
}

// opTimeout bounds how long an operation may take.
const opTimeout = 30 * time.Second

// op is one benchmark operation. seq is unique across every call of every
// run of a row, for unique keys.
type op func(ctx context.Context, seq int64) error

// closedLoop runs op from workers goroutines, each issuing its next
// operation as soon as the previous returns, until d has passed. Every
// operation that completed counts, including those that finished after d;
// elapsed runs until the last one returned. The first error ends the run:
// a row whose operations fail has no throughput worth printing, and the
// table says that it failed and why.
func closedLoop(ctx context.Context, workers int, d time.Duration, seq *atomic.Int64, fn op) runStats {
	// An operation still blocked opTimeout after the run's end fails the
	// run instead of hanging it (a proposal waits for its quorum for as
	// long as its context lets it).
	runCtx, cancel := context.WithTimeout(ctx, d+opTimeout)
	defer cancel()
	var (
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<14)
			for runCtx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				if err := fn(runCtx, seq.Add(1)); err != nil {
					mu.Lock()
					if ctx.Err() == nil && firstErr == nil { // not the caller giving up
						errs, firstErr = 1, fmt.Errorf("after %s: %w", time.Since(start).Round(time.Millisecond), err)
					}
					mu.Unlock()
					cancel()
					break
				}
				lat = append(lat, time.Since(t))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return newRunStats(all, errs, firstErr, time.Since(start))
}

// settings are the knobs every measurement shares.
type settings struct {
	duration time.Duration
	warmup   time.Duration
	runs     int
}

// measure warms up once, then runs closedLoop runs times; it stops at the
// first run that failed.
func measure(ctx context.Context, s settings, workers int, fn op) result {
	var seq atomic.Int64
	if s.warmup > 0 {
		if w := closedLoop(ctx, workers, s.warmup, &seq, fn); w.errs > 0 {
			return result{err: fmt.Errorf("the warm-up failed %w", w.firstErr)}
		}
	}
	var r result
	for range s.runs {
		if ctx.Err() != nil {
			break
		}
		run := closedLoop(ctx, workers, s.duration, &seq, fn)
		r.runs = append(r.runs, run)
		if run.errs > 0 {
			break
		}
	}
	return r
}
