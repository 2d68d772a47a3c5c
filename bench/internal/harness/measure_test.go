package harness

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", ms(7), 0.99, 7 * time.Millisecond},
		{"p50 of four is the second", ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{"p99 of a hundred is the 99th", ms(seq(1, 100)...), 0.99, 99 * time.Millisecond},
		{"p99 of ten is the largest", ms(seq(1, 10)...), 0.99, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.sorted, tc.q); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.sorted, tc.q, got, tc.want)
			}
		})
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestMedianSkipsFailedRuns(t *testing.T) {
	run := func(ops int, errs int) RunStats {
		return RunStats{ops: ops, errs: errs, elapsed: time.Second, P50: time.Duration(ops)}
	}
	r := Result{Runs: []RunStats{run(300, 0), run(100, 0), run(5, 1), run(200, 0)}}
	got, ok := r.median()
	if !ok || got.ops != 200 {
		t.Errorf("median() = %d ops, %v; want the 200-op run", got.ops, ok)
	}
	if lo, hi := r.spread(); lo != 100 || hi != 300 {
		t.Errorf("spread() = %v–%v, want 100–300", lo, hi)
	}
	if r.Failure() == nil {
		t.Errorf("failure() = nil, want the failed run")
	}
	if _, ok := (Result{Runs: []RunStats{run(5, 1)}}).median(); ok {
		t.Errorf("median() of only failed runs reported ok")
	}
}

func TestCount(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := Count(n); got != want {
			t.Errorf("count(%d) = %q, want %q", n, got, want)
		}
	}
}
