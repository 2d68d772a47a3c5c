// Package loadreport is what bench-load prints, one JSON line a run, and
// the gateway section reads.
package loadreport

import (
	"slices"
	"time"
)

// Report is one fixed-rate run.
type Report struct {
	Requests int           `json:"requests"`
	OK       int           `json:"ok"`     // answered 2xx
	Rate     float64       `json:"rate"`   // requests/s sent
	P50      time.Duration `json:"p50_ns"` // of every request, failed ones included
	P99      time.Duration `json:"p99_ns"`
	Max      time.Duration `json:"max_ns"`
	Errors   []string      `json:"errors"` // the first few distinct
}

// SetLatencies sorts lat, every request's latency, and sets the
// percentiles: exact, nearest rank.
func (r *Report) SetLatencies(lat []time.Duration) {
	slices.Sort(lat)
	pct := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		rank := int(q*float64(len(lat))+0.999999) - 1
		return lat[min(max(rank, 0), len(lat)-1)]
	}
	r.P50, r.P99, r.Max = pct(0.50), pct(0.99), pct(1)
}
