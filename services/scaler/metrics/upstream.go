package metrics

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/stewardhq/steward/platform/wire"
	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/rollout/analysis"
)

// A gateway's per-version signals, for canary analysis.
//
// Every push interval each gateway replica sends, per service and
// instance version it sent attempts to, one sample named UpstreamName:
// Value is the attempts counted since Upstream.Since, Upstream.Failures
// those answered 5xx or not at all, Upstream.Latency a cumulative latency
// histogram. The counts are cumulative, as Prometheus counters are: a
// lost or repeated push loses or doubles nothing (the next one carries
// everything), and a window is the difference between two pushes. A
// gateway that restarts begins again from zero with a later Since, which
// tells a restart from a counter that went back.
//
// The Store keeps each (service, version, gateway replica)'s pushes in a
// ring of fixed size, one point per versionStep at most (a push that
// comes sooner replaces the newest point), so that the ring spans
// MaxVersionWindow whatever the push interval.

// UpstreamName is the name of a gateway's per-version sample.
const UpstreamName = "gateway_upstream_requests"

// Upstream is the per-version part of an UpstreamName sample.
type Upstream struct {
	// Version is the instances' version (the registry's field).
	Version string `json:"version"`
	// Since is when the gateway began counting: the counts are the
	// attempts since then.
	Since time.Time `json:"since"`
	// Failures are the attempts answered 5xx or not at all (a transport
	// error, a timeout), at most Value.
	Failures float64 `json:"failures"`
	// Latency is a cumulative histogram of the attempts' time to response
	// headers: Latency[i].Count of them took at most Latency[i].Le
	// seconds; the bounds increase, the counts never decrease, and Value
	// is the count within +Inf.
	Latency []Bucket `json:"latency"`
}

// Bucket is one bound of a cumulative histogram.
type Bucket struct {
	Le    float64 `json:"le"`
	Count float64 `json:"count"`
}

// Limits on per-version samples and what the Store keeps of them.
const (
	MaxLatencyBuckets = 64
	// MaxVersionWindow is the longest window Versions answers for: the
	// span of a ring (versionRing points versionStep apart).
	MaxVersionWindow = 10 * time.Minute
	// MaxVersionSeries bounds the (version, gateway replica) series kept
	// per service; a push of a new one beyond it is ignored.
	MaxVersionSeries = 256
	versionStep      = 5 * time.Second
	versionRing      = int(MaxVersionWindow/versionStep) + 2
	// maxCount is the largest count a float64 holds exactly.
	maxCount = 1 << 53
)

// checkUpstream validates an UpstreamName sample (check has validated
// the fields every sample has).
func (s Sample) checkUpstream(now time.Time) (field, problem string) {
	u := s.Upstream
	switch {
	case s.Name != UpstreamName:
		return "upstream", fmt.Sprintf("only a sample named %s has one", UpstreamName)
	case u == nil:
		return "upstream", fmt.Sprintf("a sample named %s needs one", UpstreamName)
	case s.Instance == "":
		return "instance", fmt.Sprintf("a sample named %s needs the gateway replica's ID", UpstreamName)
	case !count(s.Value):
		return "value", fmt.Sprintf("%g: want a count, a whole number from 0 to 2^53", s.Value)
	case u.Version == "" || len(u.Version) > catalog.MaxLabelBytes || !utf8.ValidString(u.Version) || hasControl(u.Version):
		return "upstream.version", fmt.Sprintf("want 1 to %d bytes of UTF-8 without control characters", catalog.MaxLabelBytes)
	case u.Since.IsZero():
		return "upstream.since", "want when the counts began"
	case u.Since.After(now.Add(MaxSkew)) || !s.Timestamp.IsZero() && u.Since.After(s.Timestamp):
		return "upstream.since", fmt.Sprintf("%s is after the sample's timestamp or ahead of the receiver's clock", u.Since.Format(time.RFC3339Nano))
	case !count(u.Failures) || u.Failures > s.Value:
		return "upstream.failures", fmt.Sprintf("%g: want a count at most value (%g)", u.Failures, s.Value)
	case len(u.Latency) == 0 || len(u.Latency) > MaxLatencyBuckets:
		return "upstream.latency", fmt.Sprintf("%d buckets, want 1 to %d", len(u.Latency), MaxLatencyBuckets)
	}
	for i, b := range u.Latency {
		switch {
		case !finite(b.Le) || b.Le <= 0 || i > 0 && b.Le <= u.Latency[i-1].Le:
			return fmt.Sprintf("upstream.latency[%d].le", i), fmt.Sprintf("%g: want finite bounds above 0, increasing", b.Le)
		case !count(b.Count) || b.Count > s.Value || i > 0 && b.Count < u.Latency[i-1].Count:
			return fmt.Sprintf("upstream.latency[%d].count", i), fmt.Sprintf("%g: want cumulative counts, never decreasing, at most value (%g)", b.Count, s.Value)
		}
	}
	return "", ""
}

func count(f float64) bool { return f >= 0 && f <= maxCount && f == math.Trunc(f) }

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// point is one push of a series.
type point struct {
	at, since          time.Time
	requests, failures float64
	bounds             []float64 // shared between points while they agree
	cum                []float64
}

// ring is one (service, version, gateway replica)'s points, oldest
// first, at most versionRing of them.
type ring struct {
	points []point
}

type versionKey struct{ version, instance string }

// addUpstream records an UpstreamName sample; s.mu is held.
func (s *Store) addUpstream(x Sample) {
	byKey := s.upstream[x.Service]
	k := versionKey{x.Upstream.Version, x.Instance}
	r := byKey[k]
	if r == nil {
		if len(byKey) >= MaxVersionSeries {
			return
		}
		if byKey == nil {
			byKey = map[versionKey]*ring{}
			s.upstream[x.Service] = byKey
		}
		r = &ring{}
		byKey[k] = r
	}
	r.add(x)
}

func (r *ring) add(x Sample) {
	p := point{at: x.Timestamp, since: x.Upstream.Since, requests: x.Value, failures: x.Upstream.Failures,
		bounds: make([]float64, len(x.Upstream.Latency)), cum: make([]float64, len(x.Upstream.Latency))}
	for i, b := range x.Upstream.Latency {
		p.bounds[i], p.cum[i] = b.Le, b.Count
	}
	n := len(r.points)
	if n > 0 {
		newest := r.points[n-1]
		if !p.at.After(newest.at) {
			return // a repeat, or older than what is held
		}
		if slices.Equal(p.bounds, newest.bounds) {
			p.bounds = newest.bounds
		}
		// The newest point is within versionStep of the one before it,
		// and of the same run of counts as the new one: it is replaced,
		// so that kept points are versionStep apart or more (the newest
		// aside), whatever the push interval.
		if n > 1 && newest.at.Sub(r.points[n-2].at) < versionStep && p.since.Equal(newest.since) && p.requests >= newest.requests {
			r.points[n-1] = p
			return
		}
	}
	if n == versionRing {
		copy(r.points, r.points[1:])
		r.points = r.points[:n-1]
	}
	r.points = append(r.points, p)
}

// pruneUpstream drops the series with nothing newer than
// MaxVersionWindow at now; s.mu is held.
func (s *Store) pruneUpstream(now time.Time) {
	for svc, byKey := range s.upstream {
		for k, r := range byKey {
			if now.Sub(r.points[len(r.points)-1].at) > MaxVersionWindow {
				delete(byKey, k)
			}
		}
		if len(byKey) == 0 {
			delete(s.upstream, svc)
		}
	}
}

// Versions measures each version of service over the window that ends at
// now, from every gateway replica's pushes: the attempts, the failures,
// the error rate and the p99 of their latency (analysis.VersionSignals).
// A window longer than MaxVersionWindow is cut to it. A series whose
// newest push is older than the window's start adds nothing.
//
// A replica's counts over the window are its newest push less the last
// push at or before the window's start (so the window may reach back up to
// versionStep further); when there is none, less zero if its counts began
// within the window, else less its oldest push held (a shorter window,
// which VersionSignals.Window reports). Across a restart the counts of
// the new run are added whole, as Prometheus's increase() does. The
// replicas' histograms are summed onto the bounds of the first (replicas
// in ID order); one with other bounds is folded in conservatively, each
// count at the next bound up.
func (s *Store) Versions(service string, window time.Duration, now time.Time) map[string]analysis.VersionSignals {
	window = min(window, MaxVersionWindow)
	start := now.Add(-window)
	s.mu.RLock()
	defer s.mu.RUnlock()
	byKey := s.upstream[service]
	keys := slices.SortedFunc(maps.Keys(byKey), func(a, b versionKey) int {
		return cmp.Or(cmp.Compare(a.version, b.version), cmp.Compare(a.instance, b.instance))
	})
	type total struct {
		requests, failures float64
		bounds, cum        []float64
		covered            time.Duration
	}
	totals := map[string]*total{}
	for _, k := range keys {
		d, ok := byKey[k].delta(start, now)
		if !ok {
			continue
		}
		t := totals[k.version]
		if t == nil {
			t = &total{bounds: d.bounds, cum: make([]float64, len(d.bounds))}
			totals[k.version] = t
		}
		t.requests += d.requests
		t.failures += d.failures
		foldInto(t.bounds, t.cum, d.bounds, d.cum)
		t.covered = max(t.covered, d.at.Sub(d.since))
	}
	out := make(map[string]analysis.VersionSignals, len(totals))
	for v, t := range totals {
		sig := analysis.VersionSignals{Requests: int64(t.requests), Failures: int64(t.failures),
			P99: wire.Duration(quantile(0.99, t.bounds, t.cum, t.requests)), Window: wire.Duration(t.covered)}
		if t.requests > 0 {
			sig.ErrorRate = t.failures / t.requests
		}
		out[v] = sig
	}
	return out
}

// delta is the counts of the ring over [start, now]: a point whose since
// is the start of what it counts and at its end.
func (r *ring) delta(start, now time.Time) (point, bool) {
	// The newest point at or before now (a point from a clock a little
	// ahead is past the window).
	end := len(r.points) - 1
	for end >= 0 && r.points[end].at.After(now) {
		end--
	}
	if end < 0 || r.points[end].at.Before(start) {
		return point{}, false
	}
	// The baseline: the last point at or before start.
	base := -1
	for i := end; i >= 0; i-- {
		if !r.points[i].at.After(start) {
			base = i
			break
		}
	}
	newest := r.points[end]
	d := point{at: newest.at, bounds: newest.bounds, cum: make([]float64, len(newest.bounds))}
	first := base + 1
	switch {
	case base >= 0:
		d.since = r.points[base].at
	case !r.points[0].since.Before(start):
		// The counts began within the window: from zero.
		d.since = r.points[0].since
		d.add(r.points[0], nil)
		first = 1
	default:
		d.since = r.points[0].at
		first = 1
	}
	for i := max(first, 1); i <= end; i++ {
		d.add(r.points[i], &r.points[i-1])
	}
	return d, true
}

// add adds what b counted since prev (nil: since b's start). A new run
// (another since, other bounds, or counts that went back) counts whole.
func (d *point) add(b point, prev *point) {
	if prev == nil || !b.since.Equal(prev.since) || b.requests < prev.requests || !slices.Equal(b.bounds, prev.bounds) {
		d.requests += b.requests
		d.failures += b.failures
		foldInto(d.bounds, d.cum, b.bounds, b.cum)
		return
	}
	// Failures only grow with requests; a sender that says otherwise
	// cannot make a window fail more than it served.
	d.requests += b.requests - prev.requests
	d.failures += min(max(0, b.failures-prev.failures), b.requests-prev.requests)
	diff := make([]float64, len(b.cum))
	for i := range b.cum {
		diff[i] = max(0, b.cum[i]-prev.cum[i])
	}
	foldInto(d.bounds, d.cum, b.bounds, diff)
}

// foldInto adds the cumulative histogram (bounds, cum) to (dstBounds,
// dst): at each bound of dst, what src counted within the largest of
// its bounds not above it. With the same bounds that is a plain sum;
// with others it never counts a request as faster than it was.
func foldInto(dstBounds, dst, bounds, cum []float64) {
	j := -1
	for i, le := range dstBounds {
		for j+1 < len(bounds) && bounds[j+1] <= le {
			j++
		}
		if j >= 0 {
			dst[i] += cum[j]
		}
	}
}

// quantile estimates the q-quantile of a cumulative histogram of total
// observations, as Prometheus's histogram_quantile: linearly within the
// bucket that holds it (from 0 for the first). Beyond the last bound it
// is the last bound, the least it can be.
func quantile(q float64, bounds, cum []float64, total float64) time.Duration {
	if total <= 0 || len(bounds) == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, le := range bounds {
		if cum[i] >= rank {
			return seconds(lower + (le-lower)*(rank-below)/(cum[i]-below))
		}
		lower, below = le, cum[i]
	}
	return seconds(bounds[len(bounds)-1])
}

func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }
