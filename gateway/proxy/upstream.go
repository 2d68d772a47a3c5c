package proxy

import (
	"context"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Per-version signals: every attempt sent to an instance is counted under
// the service and the instance's version (the registry's instance field),
// so that a canary's error rate and latency can be told from the stable
// version's. Attempts, not client requests: a canary's failure that a
// retry hid from the client is still the canary's failure.

// upstreamBounds are the upper bounds, in seconds, of the per-version
// latency histogram: 0.5 ms to about 16 s, doubling, as the per-route one.
// Never written.
var upstreamBounds = prometheus.ExponentialBuckets(0.0005, 2, numBounds)

const numBounds = 16

// UpstreamBounds returns the per-version latency histogram's upper
// bounds in seconds, increasing (VersionCounts.Cumulative's).
func UpstreamBounds() []float64 { return slices.Clone(upstreamBounds) }

// Versions of one service tracked apart; the attempts to any further
// version are counted under OtherVersion, so that a service whose
// instances carry made-up versions cannot grow the series without bound.
const (
	MaxVersions  = 16
	OtherVersion = "other"
	// NoVersion labels the attempts to instances registered without one.
	NoVersion = "none"
)

// outcome is how an attempt ended.
type outcome int

const (
	outcomeOK       outcome = iota // an answer below 500
	outcome5xx                     // an answer of 500 or more
	outcomeError                   // no answer: a transport error or a timeout
	outcomeCanceled                // the client went away first: nobody's failure
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "5xx", "error", "canceled"}

// versionSeries counts the attempts to one version of a service. Its
// counters are plain atomics, exported at scrape time (upstreamCollector)
// and read for the scaler (Proxy.Versions): nothing is looked up or
// allocated per attempt once the version has been seen.
type versionSeries struct {
	version  string
	since    time.Time
	outcomes [numOutcomes]atomic.Uint64
	// buckets counts attempts by latency, not cumulated; the last is
	// beyond every bound. Canceled attempts are not in it.
	buckets  [numBounds + 1]atomic.Uint64
	sumNanos atomic.Int64
}

// record counts one attempt. The outcome goes first: a reader that loads
// the buckets before the outcomes (snapshot) never finds more attempts
// in the histogram than in the counts.
func (s *versionSeries) record(o outcome, latency time.Duration) {
	s.outcomes[o].Add(1)
	if o == outcomeCanceled {
		return
	}
	s.buckets[sort.SearchFloat64s(upstreamBounds, latency.Seconds())].Add(1)
	s.sumNanos.Add(int64(latency))
}

// versionSet is a service's series by version, copied on write: the
// request path scans a slice of at most MaxVersions+1 without a lock.
type versionSet struct {
	mu   sync.Mutex // held to add a version
	list atomic.Pointer[[]*versionSeries]
}

func (v *versionSet) series(version string, now func() time.Time) *versionSeries {
	if version == "" {
		version = NoVersion
	}
	if s := find(v.list.Load(), version); s != nil {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	old := v.list.Load()
	if s := find(old, version); s != nil {
		return s
	}
	var list []*versionSeries
	if old != nil {
		list = *old
	}
	if len(list) >= MaxVersions {
		version = OtherVersion
		if s := find(old, version); s != nil {
			return s
		}
	}
	s := &versionSeries{version: version, since: now()}
	list = append(slices.Clip(list), s)
	v.list.Store(&list)
	return s
}

func find(list *[]*versionSeries, version string) *versionSeries {
	if list == nil {
		return nil
	}
	for _, s := range *list {
		if s.version == version {
			return s
		}
	}
	return nil
}

func (v *versionSet) all() []*versionSeries {
	if l := v.list.Load(); l != nil {
		return *l
	}
	return nil
}

// attemptOutcome classifies an attempt: canceled when the client's own
// context ended (its request context, not the route's timeout or the
// per-try one, which are the upstream's failures).
func attemptOutcome(client context.Context, status int, err error) outcome {
	switch {
	case err != nil && client.Err() != nil:
		return outcomeCanceled
	case err != nil:
		return outcomeError
	case status >= 500:
		return outcome5xx
	}
	return outcomeOK
}

// VersionCounts are the attempts this gateway sent to one version of a
// service, counted since Since (the counts only grow while the gateway
// runs; a restart begins them again with a later Since).
type VersionCounts struct {
	Version string
	Since   time.Time
	// Requests are the attempts answered or failed; canceled ones (the
	// client went away) are not counted. Failures are those answered
	// 5xx or not at all (a transport error or a timeout).
	Requests, Failures uint64
	// Cumulative[i] counts the Requests that ended within
	// UpstreamBounds()[i] seconds (time to the response headers, or to the
	// failure); Requests is the count within +Inf.
	Cumulative []uint64
}

// snapshot reads the counts; the buckets first (see record).
func (s *versionSeries) snapshot() VersionCounts {
	c := VersionCounts{Version: s.version, Since: s.since, Cumulative: make([]uint64, len(upstreamBounds))}
	var n uint64
	for i := range upstreamBounds {
		n += s.buckets[i].Load()
		c.Cumulative[i] = n
	}
	ok, fivexx, failed := s.outcomes[outcomeOK].Load(), s.outcomes[outcome5xx].Load(), s.outcomes[outcomeError].Load()
	c.Requests, c.Failures = ok+fivexx+failed, fivexx+failed
	return c
}

// Versions reports, for every service this gateway has sent attempts to,
// the counts per version, in the order the versions were first seen.
func (p *Proxy) Versions() map[string][]VersionCounts {
	out := map[string][]VersionCounts{}
	p.services.Range(func(k, v any) bool {
		for _, s := range v.(*serviceState).versions.all() {
			out[k.(string)] = append(out[k.(string)], s.snapshot())
		}
		return true
	})
	return out
}

// upstreamCollector exports the per-version series at scrape time.
type upstreamCollector struct {
	p                  *Proxy
	requests, duration *prometheus.Desc
}

func newUpstreamCollector(p *Proxy) *upstreamCollector {
	return &upstreamCollector{p: p,
		requests: prometheus.NewDesc("steward_gateway_upstream_requests_total",
			"Attempts sent to a service's instances, by service, instance version (at most 16 per service, the rest as \"other\"; \"none\" without one) and outcome: ok (an answer below 500), 5xx, error (no answer: a transport error or a timeout), canceled (the client went away).",
			[]string{"service", "version", "outcome"}, nil),
		duration: prometheus.NewDesc("steward_gateway_upstream_request_duration_seconds",
			"Time from sending an attempt to its response headers or its failure, by service and instance version; canceled attempts are not observed.",
			[]string{"service", "version"}, nil),
	}
}

func (c *upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.duration
}

func (c *upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	c.p.services.Range(func(k, v any) bool {
		svc := k.(string)
		for _, s := range v.(*serviceState).versions.all() {
			buckets := make(map[float64]uint64, len(upstreamBounds))
			var n uint64
			for i, le := range upstreamBounds {
				n += s.buckets[i].Load()
				buckets[le] = n
			}
			n += s.buckets[len(upstreamBounds)].Load()
			sum := time.Duration(s.sumNanos.Load()).Seconds()
			for o, name := range outcomeNames {
				ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(s.outcomes[o].Load()), svc, s.version, name)
			}
			ch <- prometheus.MustNewConstHistogram(c.duration, n, sum, buckets, svc, s.version)
		}
		return true
	})
}
