package metrics

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stewardhq/steward/services/registry/catalog"
	"github.com/stewardhq/steward/services/scaler/hpa"
)

// GatewayPrefix starts the names of the signals gateway replicas send:
// one sample per replica, with Instance the replica's ID, each replica
// seeing its own share of the service's traffic.
const GatewayPrefix = "gateway_"

// Store keeps the newest sample of each (service, name, instance) for ttl.
// It is safe for concurrent use.
type Store struct {
	ttl time.Duration

	mu     sync.RWMutex
	series map[series]map[string]Sample // by instance, "" for service-wide
	// upstream holds the gateways' per-version samples (UpstreamName) by
	// service: a ring of pushes per version and gateway replica, kept
	// for MaxVersionWindow rather than ttl.
	upstream map[string]map[versionKey]*ring
}

type series struct{ service, name string }

// NewStore returns a store that holds a sample for ttl after its
// timestamp. ttl must be positive.
func NewStore(ttl time.Duration) *Store {
	if ttl <= 0 {
		panic("metrics: NewStore with a ttl of zero or less")
	}
	return &Store{ttl: ttl, series: make(map[series]map[string]Sample), upstream: map[string]map[versionKey]*ring{}}
}

// Add records samples received at now. A zero Timestamp means now; a
// sample older than the one held for its series is ignored, and so is one
// already older than ttl.
func (s *Store) Add(now time.Time, samples ...Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range samples {
		if x.Timestamp.IsZero() {
			x.Timestamp = now
		}
		if x.Upstream != nil {
			// Kept for windows up to MaxVersionWindow, not ttl.
			if now.Sub(x.Timestamp) <= MaxVersionWindow {
				s.addUpstream(x)
			}
			continue
		}
		if !s.fresh(now, x) {
			continue
		}
		k := series{x.Service, x.Name}
		byInstance := s.series[k]
		if byInstance == nil {
			byInstance = make(map[string]Sample)
			s.series[k] = byInstance
		}
		if held, ok := byInstance[x.Instance]; ok && x.Timestamp.Before(held.Timestamp) {
			continue
		}
		byInstance[x.Instance] = x
	}
}

// Prune drops the samples older than ttl at now, and the per-version
// series with nothing newer than MaxVersionWindow.
func (s *Store) Prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, byInstance := range s.series {
		for id, x := range byInstance {
			if !s.fresh(now, x) {
				delete(byInstance, id)
			}
		}
		if len(byInstance) == 0 {
			delete(s.series, k)
		}
	}
	s.pruneUpstream(now)
}

// Observe builds the observation of metric m of service from the samples
// fresh at now (no older than ttl); ok is false when there are none, which
// the algorithm treats as a failed metric fetch.
//
//   - Names starting with GatewayPrefix are per-replica views of the whole
//     service: the replicas' samples are summed, or for names ending in
//     "_seconds" (latencies) the largest is taken, and the result is a
//     Value whatever the target type.
//   - Otherwise a sample without an instance is a service-wide Value, and
//     samples of instances are used only for instances listed (by ID), so
//     that a deregistered instance's last reading does not count. For a
//     value target they are summed into a Value; for averageValue and
//     utilization they are Samples, sorted by instance.
//   - When both kinds are present, a value target takes the service-wide
//     sample and the other targets the per-instance ones.
func (s *Store) Observe(now time.Time, service string, m hpa.Metric, instances []catalog.Instance) (obs hpa.Observation, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	byInstance := s.series[series{service, m.Name}]

	if strings.HasPrefix(m.Name, GatewayPrefix) {
		// In replica order, not map order: a float sum depends on its
		// order, and a decision must replay from the same samples exactly.
		replicas := slices.Sorted(maps.Keys(byInstance))
		latency := strings.HasSuffix(m.Name, "_seconds")
		var agg float64
		for _, id := range replicas {
			x := byInstance[id]
			if !s.fresh(now, x) {
				continue
			}
			switch {
			case !ok:
				agg = x.Value
			case latency:
				agg = max(agg, x.Value)
			default:
				agg += x.Value
			}
			ok = true
		}
		if !ok {
			return hpa.Observation{}, false
		}
		return hpa.Observation{Value: &agg}, true
	}

	var wide *float64
	if x, found := byInstance[""]; found && s.fresh(now, x) {
		wide = &x.Value
	}
	var samples []hpa.Sample
	for _, inst := range instances {
		if x, found := byInstance[inst.ID]; found && inst.ID != "" && s.fresh(now, x) {
			samples = append(samples, hpa.Sample{Instance: inst.ID, Value: x.Value, Request: x.Request})
		}
	}
	// The registry never lists an ID twice, but a caller's slice might.
	slices.SortFunc(samples, func(a, b hpa.Sample) int { return cmp.Compare(a.Instance, b.Instance) })
	samples = slices.CompactFunc(samples, func(a, b hpa.Sample) bool { return a.Instance == b.Instance })

	switch {
	case m.Target.Type == hpa.Value && wide != nil:
		return hpa.Observation{Value: wide}, true
	case m.Target.Type == hpa.Value && len(samples) > 0:
		var sum float64
		for _, x := range samples {
			sum += x.Value
		}
		return hpa.Observation{Value: &sum}, true
	case m.Target.Type != hpa.Value && len(samples) > 0:
		return hpa.Observation{Samples: samples}, true
	case wide != nil:
		return hpa.Observation{Value: wide}, true
	}
	return hpa.Observation{}, false
}

func (s *Store) fresh(now time.Time, x Sample) bool { return now.Sub(x.Timestamp) <= s.ttl }
