package harness

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RunStats is one measured run of one row.
type RunStats struct {
	ops      int
	errs     int
	firstErr error
	elapsed  time.Duration
	P50, P99 time.Duration
}

func (s RunStats) Rate() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

// NewRunStats sorts lat (every completed operation's latency, exactly: no
// histogram buckets) and takes nearest-rank percentiles.
func NewRunStats(lat []time.Duration, errs int, firstErr error, elapsed time.Duration) RunStats {
	slices.Sort(lat)
	return RunStats{ops: len(lat), errs: errs, firstErr: firstErr, elapsed: elapsed,
		P50: Percentile(lat, 0.50), P99: Percentile(lat, 0.99)}
}

// Percentile is the nearest-rank percentile of sorted.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// Ops counts the operations of every run, completed or not.
func (r Result) Ops() int {
	n := 0
	for _, run := range r.Runs {
		n += run.ops
	}
	return n
}

// Result is a row's runs. The table shows the median of the runs that
// completed without error; a failed run ends the row.
type Result struct {
	Runs []RunStats
	Err  error // why the row did not run: its setup or warm-up failed
}

// completed returns the runs without error.
func (r Result) completed() []RunStats {
	var out []RunStats
	for _, s := range r.Runs {
		if s.errs == 0 {
			out = append(out, s)
		}
	}
	return out
}

// Failure says which run failed and why, or nil.
func (r Result) Failure() error {
	if r.Err != nil {
		return r.Err
	}
	for i, s := range r.Runs {
		if s.errs > 0 {
			return fmt.Errorf("run %d failed %w", i+1, s.firstErr)
		}
	}
	return nil
}

// median returns the completed run with the median throughput (the lower
// middle one for an even count), so that ops/s, p50 and p99 come from the
// same run; ok is false when no run completed.
func (r Result) median() (s RunStats, ok bool) {
	c := r.completed()
	if len(c) == 0 {
		return RunStats{}, false
	}
	slices.SortFunc(c, func(a, b RunStats) int { return cmp.Compare(a.Rate(), b.Rate()) })
	return c[(len(c)-1)/2], true
}

// spread returns the lowest and highest throughput of the completed runs.
func (r Result) spread() (lo, hi float64) {
	for i, s := range r.completed() {
		if i == 0 || s.Rate() < lo {
			lo = s.Rate()
		}
		if i == 0 || s.Rate() > hi {
			hi = s.Rate()
		}
	}
	return lo, hi
}

// opTimeout bounds how long an operation may take.
const opTimeout = 30 * time.Second

// Op is one benchmark operation. seq is unique across every call of every
// run of a row, for unique keys.
type Op func(ctx context.Context, seq int64) error

// closedLoop runs op from workers goroutines, each issuing its next
// operation as soon as the previous returns, until d has passed. Every
// operation that completed counts, including those that finished after d;
// elapsed runs until the last one returned. The first error ends the run:
// a row whose operations fail has no throughput worth printing, and the
// table says that it failed and why.
func closedLoop(ctx context.Context, workers int, d time.Duration, seq *atomic.Int64, fn Op) RunStats {
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
	return NewRunStats(all, errs, firstErr, time.Since(start))
}

// Settings are the knobs every measurement shares.
type Settings struct {
	Duration time.Duration
	Warmup   time.Duration
	Runs     int
}

// Measure warms up once, then runs closedLoop runs times; it stops at the
// first run that failed.
func Measure(ctx context.Context, s Settings, workers int, fn Op) Result {
	var seq atomic.Int64
	return measureFrom(ctx, s, workers, fn, &seq)
}

// Measurer is Measure of fn from workers as a function of the settings,
// numbering its operations on from one call to the next, so that a row
// measured one run at a time (MeasureAlternating) still writes a new key
// with every PUT.
func Measurer(ctx context.Context, workers int, fn Op) func(Settings) Result {
	var seq atomic.Int64
	return func(s Settings) Result { return measureFrom(ctx, s, workers, fn, &seq) }
}

// Alternating is a row MeasureAlternating measures: Measure takes the
// runs its settings ask for, after a warm-up of its own.
type Alternating struct {
	Row     *Row
	Measure func(Settings) Result
}

// MeasureAlternating measures rows (the same workload on systems to be
// compared) run by run, each run after its own warm-up, in an order
// rotated every run so that none always runs first, and leaves each row's
// runs in its Res; a row that failed is measured no more. This VM's speed
// drifts by a tenth or more within a minute, and rows measured one after
// the other took that drift into their ratios. attrs go on every
// "measuring" log line.
func MeasureAlternating(ctx context.Context, log *slog.Logger, s Settings, rows []Alternating, attrs ...any) {
	one := s
	one.Runs = 1
	for run := range s.Runs {
		for k := range rows {
			r := rows[(k+run)%len(rows)]
			if r.Row.Res.Failure() != nil || ctx.Err() != nil {
				continue
			}
			log.Info("measuring", append(attrs[:len(attrs):len(attrs)], "row", r.Row.Group+" "+r.Row.Name, "run", run+1)...)
			got := r.Measure(one)
			r.Row.Res.Runs = append(r.Row.Res.Runs, got.Runs...)
			r.Row.Res.Err = got.Err
		}
	}
}

func measureFrom(ctx context.Context, s Settings, workers int, fn Op, seq *atomic.Int64) Result {
	if s.Warmup > 0 {
		if w := closedLoop(ctx, workers, s.Warmup, seq, fn); w.errs > 0 {
			return Result{Err: fmt.Errorf("the warm-up failed %w", w.firstErr)}
		}
	}
	var r Result
	for range s.Runs {
		if ctx.Err() != nil {
			break
		}
		run := closedLoop(ctx, workers, s.Duration, seq, fn)
		r.Runs = append(r.Runs, run)
		if run.errs > 0 {
			break
		}
	}
	return r
}

// RunStatsOf is a run measured elsewhere (an external load generator
// that reports its own percentiles): ops operations in elapsed.
func RunStatsOf(ops, errs int, firstErr error, elapsed, p50, p99 time.Duration) RunStats {
	return RunStats{ops: ops, errs: errs, firstErr: firstErr, elapsed: elapsed, P50: p50, P99: p99}
}
