package harness

import (
	"slices"
	"time"
)

// Pct is the nearest-rank percentile of unsorted samples.
func Pct(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	slices.Sort(s)
	return Percentile(s, q)
}

// MedianDuration returns the median (the lower middle for an even count).
func MedianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
